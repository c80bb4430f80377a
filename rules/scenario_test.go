package rules

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

var update = flag.Bool("update", false, "rewrite the want section of golden scenario files")

// TestScenarios runs every testdata/scenarios/*.txtar file: a rules.toml section, a
// readings section ("OFFSET TOPIC PAYLOAD" lines, "tick OFFSET" to advance the
// clock) and a want section listing every event and rejection. Run with -update
// to rewrite the want sections after a deliberate change, then review the diff.
func TestScenarios(t *testing.T) {
	files, _ := filepath.Glob("testdata/scenarios/*.txtar")
	if len(files) == 0 {
		t.Fatal("no scenarios")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			ar := parseTxtar(data)
			got := runScenario(t, ar.file("rules.toml"), ar.file("readings"))
			if *update {
				ar.set("want", got)
				if err := os.WriteFile(file, ar.format(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if want := ar.file("want"); got != want {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func runScenario(t *testing.T, rulesTOML, readings string) string {
	t.Helper()
	var doc struct{ Rule []Spec }
	if _, err := toml.Decode(rulesTOML, &doc); err != nil {
		t.Fatal(err)
	}
	var rs []*Rule
	for _, s := range doc.Rule {
		r, err := Compile(s)
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	set, err := NewSet(rs)
	if err != nil {
		t.Fatal(err)
	}
	e := NewEngine(set)
	var out bytes.Buffer
	var now time.Duration
	emit := func(res Result) {
		off := res.Outcome.At.Sub(t0)
		switch {
		case res.Reject != OK:
			fmt.Fprintf(&out, "%v %s %s reject %v\n", now, res.Rule.Name, res.Series, res.Reject)
		case res.Outcome.Event != None:
			v := "null"
			if res.HasValue {
				v = strconv.FormatFloat(res.Value, 'g', -1, 64)
			}
			fmt.Fprintf(&out, "%v %s %s %v value=%s (%v)\n", off, res.Rule.Name, res.Series, res.Outcome.Event, v, res.Outcome.Why)
		}
	}
	for i, line := range strings.Split(readings, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		first, rest := cutField(line)
		if first == "tick" {
			d, err := time.ParseDuration(rest)
			if err != nil {
				t.Fatalf("readings line %d: %v", i+1, err)
			}
			now = d
			e.Advance(t0.Add(d), emit)
			continue
		}
		topic, payload := cutField(rest)
		if topic == "" {
			t.Fatalf("readings line %d: want OFFSET TOPIC PAYLOAD", i+1)
		}
		d, err := time.ParseDuration(first)
		if err != nil {
			t.Fatalf("readings line %d: %v", i+1, err)
		}
		if d < now {
			t.Fatalf("readings line %d: time goes backwards", i+1)
		}
		now = d
		e.Feed(topic, []byte(payload), t0.Add(d), emit)
	}
	return out.String()
}

// cutField splits off the first space-separated field.
func cutField(s string) (string, string) {
	f, rest, _ := strings.Cut(strings.TrimSpace(s), " ")
	return f, strings.TrimSpace(rest)
}

// txtar is a minimal reader/writer for the txtar format (golang.org/x/tools/txtar).
type txtar struct {
	comment string
	names   []string
	files   map[string]string
}

func parseTxtar(data []byte) *txtar {
	a := &txtar{files: map[string]string{}}
	cur := ""
	var b strings.Builder
	flush := func() {
		if cur == "" {
			a.comment = b.String()
		} else {
			a.files[cur] = b.String()
		}
		b.Reset()
	}
	for _, line := range strings.SplitAfter(string(data), "\n") {
		trimmed := strings.TrimRight(line, "\n")
		if strings.HasPrefix(trimmed, "-- ") && strings.HasSuffix(trimmed, " --") && len(trimmed) > 6 {
			flush()
			cur = trimmed[3 : len(trimmed)-3]
			a.names = append(a.names, cur)
			continue
		}
		b.WriteString(line)
	}
	flush()
	return a
}

func (a *txtar) file(name string) string { return a.files[name] }

func (a *txtar) set(name, content string) {
	if _, ok := a.files[name]; !ok {
		a.names = append(a.names, name)
	}
	a.files[name] = content
}

func (a *txtar) format() []byte {
	var b bytes.Buffer
	b.WriteString(a.comment)
	for _, n := range a.names {
		fmt.Fprintf(&b, "-- %s --\n%s", n, a.files[n])
	}
	return b.Bytes()
}
