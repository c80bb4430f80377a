package bridge

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/edgehook/edgehook/rules"
)

func noEnv(string) (string, bool) { return "", false }

// TestLoadBad loads every testdata/bad/*.toml and compares the problems found
// with the file's "# want:" lines, exactly and in order.
func TestLoadBad(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad/*.toml")
	if len(files) == 0 {
		t.Fatal("no testdata")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, line := range strings.Split(string(data), "\n") {
				if w, ok := strings.CutPrefix(line, "# want: "); ok {
					want = append(want, w)
				}
			}
			_, _, err = Load(file, noEnv)
			if err == nil {
				t.Fatal("accepted")
			}
			var got []string
			for _, e := range flatten(err) {
				var ce *ConfigError
				if !errors.As(e, &ce) {
					t.Errorf("not a *ConfigError: %v", e)
				}
				got = append(got, strings.TrimPrefix(e.Error(), "testdata/bad/"))
			}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestLoadDefaultsAndRuleFiles(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "secrets/ha"), "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n", 0o600)
	writeFile(t, filepath.Join(dir, "edgehook.toml"), `
[store]
dir = "state"
[rules]
files = ["rules.d/*.toml"]
[[endpoint]]
name = "home-assistant"
url = "${HA_URL:-http://127.0.0.1:8123/api/webhook/heating}"
secret_file = "secrets/ha"
headers = { Authorization = "Bearer ${HA_TOKEN}" }
`, 0o644)
	writeFile(t, filepath.Join(dir, "rules.d/a.toml"), `
[[rule]]
name = "living-room-cold"
topic = "home/+/temperature"
value = "temperature"
below = 18.0
hysteresis = 0.5
for = "2m"
endpoints = ["home-assistant"]
`, 0o644)
	writeFile(t, filepath.Join(dir, "rules.d/b.toml"), `
[[rule]]
name = "doorbell"
topic = "home/doorbell"
forward = true
endpoints = ["home-assistant"]
`, 0o644)
	env := func(k string) (string, bool) {
		if k == "HA_TOKEN" {
			return "t0ken", true
		}
		return "", false
	}
	cfg, set, err := Load(filepath.Join(dir, "edgehook.toml"), env)
	if err != nil {
		t.Fatal(err)
	}
	d := Default()
	if cfg.MQTT != d.MQTT || cfg.HTTP.Listen != d.HTTP.Listen || cfg.Store.Sync != "fsync" || cfg.Store.MaxBytes != 256<<20 {
		t.Errorf("defaults not applied: %+v", cfg)
	}
	if cfg.Store.Dir != filepath.Join(dir, "state") {
		t.Errorf("store.dir not relative to the config: %s", cfg.Store.Dir)
	}
	e := cfg.Endpoints[0]
	if e.Method != "POST" || e.Signing != "standard-webhooks" || e.Timeout != 15*time.Second || e.Concurrency != 4 || e.MaxAge != 24*time.Hour {
		t.Errorf("endpoint defaults: %+v", e)
	}
	if e.URL != "http://127.0.0.1:8123/api/webhook/heating" || e.Headers["Authorization"] != "Bearer t0ken" {
		t.Errorf("substitution: %q %q", e.URL, e.Headers["Authorization"])
	}
	if e.Secret.Reveal() != "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" {
		t.Errorf("secret file not read (trailing newline must be trimmed)")
	}
	if len(set.Rules()) != 2 || set.Rule("living-room-cold").For != 2*time.Minute {
		t.Errorf("rules: %+v", set.Rules())
	}
}

func TestSecretFileMode(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "ha"), "s3cret", 0o644)
	writeFile(t, filepath.Join(dir, "c.toml"), `
[rules]
files = []
[[endpoint]]
name = "ha"
url = "http://127.0.0.1:1/x"
secret_file = "ha"
`, 0o644)
	_, _, err := Load(filepath.Join(dir, "c.toml"), noEnv)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "ha")) || !strings.Contains(err.Error(), "group or others") {
		t.Fatalf("world-readable secret file accepted or not named: %v", err)
	}
	if strings.Contains(err.Error(), "s3cret") {
		t.Fatal("error shows the secret")
	}
	if !strings.HasPrefix(err.Error(), filepath.Join(dir, "c.toml")+":7: endpoint.secret_file: ") {
		t.Fatalf("error not positioned: %v", err)
	}
}

func TestRuleFileErrorsArePositioned(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "c.toml"), `
[rules]
files = ["r/*.toml"]
[[endpoint]]
name = "ha"
url = "http://127.0.0.1:1/x"
signing = "none"
`, 0o644)
	writeFile(t, filepath.Join(dir, "r/one.toml"), "[[rule]]\nname = \"x\"\ntopic = \"t\"\nbelow = 1.0\nendpoints = [\"ha\"]\n", 0o644)
	writeFile(t, filepath.Join(dir, "r/two.toml"), "# dup\n[[rule]]\nname = \"x\"\ntopic = \"t\"\nabove = 1.0\nendpoints = [\"ha\"]\ntreshold = 3\n", 0o644)
	_, _, err := Load(filepath.Join(dir, "c.toml"), noEnv)
	want := filepath.Join(dir, "r/two.toml") + ":3: rule.name: duplicate rule name \"x\" (first defined at " + filepath.Join(dir, "r/one.toml") + ":2)\n" +
		filepath.Join(dir, "r/two.toml") + ":7: rule.treshold: unknown key"
	if err == nil || err.Error() != want {
		t.Fatalf("got:\n%v\nwant:\n%s", err, want)
	}
}

func TestExpandEnv(t *testing.T) {
	env := func(k string) (string, bool) {
		m := map[string]string{"A": "1", "EMPTY": ""}
		v, ok := m[k]
		return v, ok
	}
	tests := []struct{ in, want, err string }{
		{"plain", "plain", ""},
		{"${A}", "1", ""},
		{"x${A}y${A}", "x1y1", ""},
		{"${B:-def}", "def", ""},
		{"${EMPTY:-def}", "def", ""},
		{"${EMPTY}", "", ""},
		{"$$5 and $x", "$5 and $x", ""},
		{"${B}", "", "environment variable B is not set"},
		{"${A", "", "unterminated"},
		{"${1A}", "", "invalid variable name"},
	}
	for _, tt := range tests {
		got, err := expandEnv(tt.in, env)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("expandEnv(%q) error = %v, want %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("expandEnv(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"64KiB": 64 << 10, "256MiB": 256 << 20, "1.5MiB": 3 << 19, "10MB": 10e6, "512": 512, "1 GiB": 1 << 30} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "KiB", "-1MiB", "5 parsecs"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) accepted", bad)
		}
	}
}

func TestSecretNeverPrints(t *testing.T) {
	s := NewSecret("hunter2")
	for _, got := range []string{s.String(), s.GoString(), s.LogValue().String(), fmtAll(s)} {
		if strings.Contains(got, "hunter2") {
			t.Fatalf("secret printed: %q", got)
		}
	}
}

func TestPositions(t *testing.T) {
	src := `top = 1
[mqtt]
broker = "x" # comment
[mqtt.tls]
ca_file = """
multi
line"""
[[rule]]
name = "a"
publish = [{ topic = "t" },
  { topic = "u" }]
[[rule]]
"name" = 'b'
[[rule.publish]]
topic = "p"
[[rule.publish]]
topic = "q"
[[endpoint]]
headers = { A = "1", B = "2" }
dotted.key = 3
`
	p := indexPositions(src)
	want := map[string]int{
		"top": 1, "mqtt": 2, "mqtt.broker": 3, "mqtt.tls": 4, "mqtt.tls.ca_file": 5,
		"rule[0]": 8, "rule[0].name": 9, "rule[0].publish[0].topic": 10, "rule[0].publish[1].topic": 11,
		"rule[1]": 12, "rule[1].name": 13, "rule[1].publish[0]": 14, "rule[1].publish[0].topic": 15,
		"rule[1].publish[1].topic": 17, "endpoint[0].headers.B": 19, "endpoint[0].dotted.key": 20,
	}
	for k, l := range want {
		if p[k] != l {
			t.Errorf("%s at line %d, want %d", k, p[k], l)
		}
	}
	if p.line("rule[1].publish[1].nope") != 16 {
		t.Errorf("fallback to the table header: %d", p.line("rule[1].publish[1].nope"))
	}
}

func FuzzPositions(f *testing.F) {
	f.Add("[[rule]]\nname = \"x\"\n")
	f.Add("a = [1, [2, {b = 3}]]\n'q' = \"\"\"x\"\"\"")
	f.Add("[a.\"b.c\"]\nx='''\n'''")
	f.Fuzz(func(t *testing.T, src string) {
		indexPositions(src)
	})
}

// FuzzLoad: any main config file gives either a valid config or positioned
// errors, and never panics.
func FuzzLoad(f *testing.F) {
	for _, file := range mustGlob(f, "testdata/bad/*.toml") {
		b, _ := os.ReadFile(file)
		f.Add(string(b))
	}
	f.Add("[rules]\nfiles = []\n")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, src string) {
		path := filepath.Join(dir, "c.toml")
		if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		var (
			cfg  *Config
			set  *rules.Set
			err  error
			done = make(chan struct{})
		)
		go func() {
			defer close(done)
			cfg, set, err = Load(path, noEnv)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("Load blocked on %q:\n%s", src, buf[:n])
		}
		if err == nil {
			if cfg == nil || set == nil {
				t.Fatal("nil config without error")
			}
			return
		}
		for _, e := range flatten(err) {
			var ce *ConfigError
			if !errors.As(e, &ce) || ce.File == "" {
				t.Fatalf("unpositioned error: %v", e)
			}
		}
	})
}

func mustGlob(f *testing.F, p string) []string {
	m, err := filepath.Glob(p)
	if err != nil {
		f.Fatal(err)
	}
	return m
}

// FuzzRuleFile: any rule file gives either a valid rule set or errors that
// each name a file and line, and never panics or hangs.
func FuzzRuleFile(f *testing.F) {
	for _, file := range mustGlob(f, "../configs/rules/*.toml") {
		b, _ := os.ReadFile(file)
		f.Add(string(b))
	}
	for _, file := range mustGlob(f, "../rules/testdata/scenarios/*.txtar") {
		b, _ := os.ReadFile(file)
		if _, rest, ok := strings.Cut(string(b), "-- rules.toml --\n"); ok {
			rules, _, _ := strings.Cut(rest, "-- ")
			f.Add(rules)
		}
	}
	dir := f.TempDir()
	main := filepath.Join(dir, "edgehook.toml")
	os.WriteFile(main, []byte(`[rules]
files = ["r.toml"]
[[endpoint]]
name = "ha"
url = "http://127.0.0.1:1/x"
signing = "none"
`), 0o600)
	f.Fuzz(func(t *testing.T, src string) {
		if err := os.WriteFile(filepath.Join(dir, "r.toml"), []byte(src), 0o600); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		var err error
		var set *rules.Set
		go func() {
			defer close(done)
			_, set, err = Load(main, noEnv)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("Load blocked on %q", src)
		}
		if err == nil {
			if set == nil {
				t.Fatal("nil set without error")
			}
			return
		}
		for _, e := range flatten(err) {
			var ce *ConfigError
			if !errors.As(e, &ce) || ce.File == "" || (ce.Line == 0 && !strings.Contains(ce.Error(), "TOML parser")) {
				t.Fatalf("error without file:line: %v", e)
			}
		}
	})
}

// tooDeep counts only brackets outside strings and comments.
func TestTooDeep(t *testing.T) {
	deep := strings.Repeat("[", maxNesting+1)
	for src, want := range map[string]int{
		"a = " + strings.Repeat("[", maxNesting) + strings.Repeat("]", maxNesting): 0,
		"a = \"" + deep + "\"":                            0,
		"a = '" + deep + "'":                              0,
		"a = \"\"\"\n" + deep + "\n\"\"\"":                0,
		"a = '''\n" + deep + "'''":                        0,
		"a = \"esc \\\" " + deep + "\"":                   0,
		"# " + deep + "\na = 1":                           0,
		"a = \"unterminated\n" + deep:                     2,
		"a = \"\"\"\nx\n\"\"\"\nb = " + deep:              4,
		"[t]\nx = {a = {b = " + deep + "}}":               2,
		"a = '''\n'''\n[[r]]\n" + strings.Repeat("{", 40): 4,
	} {
		line, ok := tooDeep([]byte(src))
		if ok != (want == 0) || line != want {
			t.Errorf("%.40q: line %d ok %v, want line %d", src, line, ok, want)
		}
	}
}

// Every Secret field is a sensitive key for parse errors, found from the
// config's types, so a new secret cannot be forgotten in a list.
func TestSensitiveKeys(t *testing.T) {
	for _, k := range []string{"mqtt.password", "mqtt.password_file", "http.admin_token", "endpoint.secret", "inbound.secret", "endpoint.headers.Authorization"} {
		if !sensitiveKey(k) {
			t.Errorf("%s is not sensitive", k)
		}
	}
	for _, k := range []string{"mqtt.broker", "endpoint.url", "rule.name"} {
		if sensitiveKey(k) {
			t.Errorf("%s is sensitive", k)
		}
	}
}
