package bridge

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/edgehook/edgehook/bridge/webhook"
	"github.com/edgehook/edgehook/rules"
)

// maxConfigSize bounds every config and rule file read (a file replaced by
// something huge must not exhaust memory).
const maxConfigSize = 4 << 20

// Getenv looks up an environment variable; os.LookupEnv fits.
type Getenv func(string) (string, bool)

// Load reads the main config at path and every rule file it names, validates
// everything and compiles the rules. Relative paths inside the config (rule
// globs, secret and TLS files, store.dir) are relative to the config file's
// directory. Every problem found is returned, each a *ConfigError, joined with
// errors.Join; the Config and Set are nil then. Load reads files but starts nothing.
func Load(path string, getenv Getenv) (*Config, *rules.Set, error) {
	if getenv == nil {
		getenv = func(string) (string, bool) { return "", false }
	}
	l := &loader{getenv: getenv, dir: filepath.Dir(path)}
	cfg := Default()
	cfg.File = path
	if d := l.parse(path, &cfg); d != nil {
		l.validate(d, &cfg)
		l.readSecrets(d, &cfg)
	}
	if len(l.errs) > 0 && l.fatalEarly {
		return nil, nil, l.joined()
	}
	set := l.loadRules(&cfg)
	if len(l.errs) > 0 {
		return nil, nil, l.joined()
	}
	return &cfg, set, nil
}

type loader struct {
	getenv     Getenv
	dir        string
	errs       []error
	fatalEarly bool // the main file could not be parsed at all

	mainDecoder *decoder
}

// joined returns every problem, ordered by file (in the order files were read)
// and line, joined with errors.Join.
func (l *loader) joined() error {
	order := map[string]int{}
	for _, e := range l.errs {
		var ce *ConfigError
		if errors.As(e, &ce) {
			if _, ok := order[ce.File]; !ok {
				order[ce.File] = len(order)
			}
		}
	}
	sort.SliceStable(l.errs, func(i, j int) bool {
		var a, b *ConfigError
		if !errors.As(l.errs[i], &a) || !errors.As(l.errs[j], &b) {
			return false
		}
		if order[a.File] != order[b.File] {
			return order[a.File] < order[b.File]
		}
		return a.Line < b.Line
	})
	return errors.Join(l.errs...)
}

// ruleSource remembers where a rule was written, to position its errors.
type ruleSource struct {
	spec  rules.Spec
	dec   *decoder
	index int // index among the file's [[rule]] tables
}

func (l *loader) abs(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(l.dir, p)
}

// parse reads and decodes one TOML file into v, returning the decoder used
// (for positions), or nil when the file could not be read or parsed.
func (l *loader) parse(path string, v any) *decoder {
	data, err := readLimited(path)
	if err != nil {
		l.errs = append(l.errs, &ConfigError{File: path, Err: err})
		l.fatalEarly = true
		return nil
	}
	if line, ok := tooDeep(data); !ok {
		// BurntSushi/toml recurses per level: a hostile file could overflow
		// the stack (fatal, not a panic) or take gigabytes before it fails.
		l.errs = append(l.errs, &ConfigError{File: path, Line: line, Err: fmt.Errorf("arrays and tables nested deeper than %d levels", maxNesting)})
		l.fatalEarly = true
		return nil
	}
	tree, err := parseTOML(data)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			msg := printableMsg(pe.Message)
			if sensitiveKey(pe.LastKey) {
				msg = quotedRE.ReplaceAllString(msg, `"…"`) // the parser quotes what it found: part of a secret
			}
			l.errs = append(l.errs, &ConfigError{File: path, Line: parseErrorLine(data, pe), Key: pe.LastKey, Err: errors.New(msg)})
		} else {
			l.errs = append(l.errs, &ConfigError{File: path, Err: err})
		}
		l.fatalEarly = true
		return nil
	}
	d := &decoder{file: path, pos: indexPositions(string(data)), getenv: l.getenv}
	d.decodeStruct("", tree, reflectValue(v))
	l.errs = append(l.errs, d.errs...)
	d.errs = nil
	return d
}

// maxNesting bounds how deep arrays and inline tables may nest in a config
// file; ours need 3.
const maxNesting = 32

// tooDeep scans TOML text (skipping strings and comments) and reports the
// line where brackets and braces nest deeper than maxNesting, and false; or
// 0, true. It only counts: the parser reports any syntax error.
func tooDeep(data []byte) (line int, ok bool) {
	depth, line := 0, 1
	for i := 0; i < len(data); i++ {
		switch c := data[i]; c {
		case '\n':
			line++
		case '#':
			for i+1 < len(data) && data[i+1] != '\n' {
				i++
			}
		case '"', '\'':
			var lines int
			i, lines = skipString(data, i)
			line += lines
		case '[', '{':
			if depth++; depth > maxNesting {
				return line, false
			}
		case ']', '}':
			depth--
		}
	}
	return 0, true
}

// skipString returns the index of the last byte of the string that opens at
// data[i] (a quote), and the newlines inside it. A one-line string that is
// not closed ends before the newline, so the caller still counts it.
func skipString(data []byte, i int) (end, lines int) {
	q := data[i]
	delim := []byte{q}
	if bytes.HasPrefix(data[i:], []byte{q, q, q}) {
		delim = []byte{q, q, q}
	}
	for j := i + len(delim); j < len(data); j++ {
		switch {
		case bytes.HasPrefix(data[j:], delim):
			return j + len(delim) - 1, lines
		case data[j] == '\n':
			if len(delim) == 1 {
				return j - 1, lines
			}
			lines++
		case data[j] == '\\' && q == '"':
			if j+1 < len(data) && data[j+1] == '\n' {
				lines++
			}
			j++ // an escape: skip the escaped byte
		}
	}
	return len(data) - 1, lines
}

// sensitiveKey reports whether a parse error at key may quote a secret: a
// key of type Secret anywhere in the config (or its _file twin), or a header
// value (Authorization).
func sensitiveKey(key string) bool {
	last := key[strings.LastIndexByte(key, '.')+1:]
	return secretKeys(reflect.TypeFor[Config]())[strings.TrimSuffix(last, "_file")] || strings.Contains(key, "headers")
}

// secretKeys collects the toml names of the Secret fields under t.
func secretKeys(t reflect.Type) map[string]bool {
	keys := map[string]bool{}
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Slice || t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return
		}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if f.Type == secretType {
				keys[f.Tag.Get("toml")] = true
				continue
			}
			walk(f.Type)
		}
	}
	walk(t)
	return keys
}

var quotedRE = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// parseTOML parses data into a generic tree, converting a parser panic (a
// library bug on hostile input) into an error.
func parseTOML(data []byte) (tree map[string]any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("TOML parser failed: %v", r)
		}
	}()
	tree = map[string]any{}
	_, err = toml.Decode(string(data), &tree)
	return tree, err
}

// parseErrorLine is the line of a TOML syntax error. BurntSushi/toml (v1.6.0)
// reports one line too few for an error at the end of the file; the byte
// offset it gives is right, so count from that.
func parseErrorLine(data []byte, pe toml.ParseError) int {
	if st := pe.Position.Start; st > 0 && st <= len(data) {
		return 1 + strings.Count(string(data[:st]), "\n")
	}
	return max(1, pe.Position.Line)
}

// printableMsg escapes control characters (the parser quotes raw bytes).
func printableMsg(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' {
			return '?'
		}
		return r
	}, s)
}

func readLimited(path string) ([]byte, error) {
	// Stat before opening: opening a FIFO or some devices would block.
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read: %w", unwrapPathError(err))
	}
	switch {
	case fi.IsDir():
		return nil, errors.New("is a directory, not a file")
	case !fi.Mode().IsRegular():
		return nil, errors.New("is not a regular file")
	case fi.Size() > maxConfigSize:
		return nil, fmt.Errorf("file is %d bytes, over the %d byte limit", fi.Size(), maxConfigSize)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read: %w", unwrapPathError(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read: %w", err)
	}
	if len(data) > maxConfigSize {
		return nil, fmt.Errorf("file is over the %d byte limit", maxConfigSize)
	}
	return data, nil
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// readSecrets reads every *_file secret, refusing files that group or others can access.
func (l *loader) readSecrets(d *decoder, cfg *Config) {
	read := func(path string, s *Secret) {
		if !s.Set || s.File == "" {
			return
		}
		file := l.abs(s.File)
		fi, err := os.Stat(file)
		if err != nil {
			d.fail(path, "secret file %s: %v", file, unwrapPathError(err))
			return
		}
		if !fi.Mode().IsRegular() {
			d.fail(path, "secret file %s is not a regular file", file)
			return
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			d.fail(path, "secret file %s is accessible by group or others (mode %04o); run: chmod 600 %s", file, perm, file)
			return
		}
		if fi.Size() > 64<<10 {
			d.fail(path, "secret file %s is larger than 64KiB", file)
			return
		}
		b, err := os.ReadFile(file)
		if err != nil {
			d.fail(path, "secret file %s: %v", file, unwrapPathError(err))
			return
		}
		v := strings.TrimRight(string(b), "\r\n")
		*s = Secret{value: v, File: file, Set: true}
	}
	read("mqtt.password_file", &cfg.MQTT.Password)
	read("http.admin_token_file", &cfg.HTTP.AdminToken)
	for i := range cfg.Endpoints {
		read(fmt.Sprintf("endpoint[%d].secret_file", i), &cfg.Endpoints[i].Secret)
	}
	for i := range cfg.Inbound {
		read(fmt.Sprintf("inbound[%d].secret_file", i), &cfg.Inbound[i].Secret)
	}
	l.errs = append(l.errs, d.errs...)
	d.errs = nil
	l.mainDecoder = d
	// Secrets that need decoding are checked once their value is known.
	for i, e := range cfg.Endpoints {
		if e.Signing == "standard-webhooks" && e.Secret.Set && !d.failed[fmt.Sprintf("endpoint[%d]", i)] {
			if _, err := webhook.DecodeKeys(e.Secret.Reveal()); err != nil {
				d.fail(fmt.Sprintf("endpoint[%d].secret", i), "%v", err)
			}
		}
	}
	for i, in := range cfg.Inbound {
		if in.Verify == "standard-webhooks" && in.Secret.Set && !d.failed[fmt.Sprintf("inbound[%d]", i)] {
			if _, err := webhook.DecodeKeys(in.Secret.Reveal()); err != nil {
				d.fail(fmt.Sprintf("inbound[%d].secret", i), "%v", err)
			}
		}
	}
	l.errs = append(l.errs, d.errs...)
	d.errs = nil
}

// followsFrom reports whether a Compile problem is only a consequence of keys
// that failed to decode (bad) or of unknown keys that look like typos of known
// ones (meant): a missing value, a missing condition, a modifier that "only
// applies to" the condition that did not decode.
func followsFrom(fe *rules.FieldError, bad, meant map[string]bool) bool {
	key, _, _ := strings.Cut(fe.Key, ".")
	if bad[key] {
		return true
	}
	condLost := false
	for _, c := range []string{"below", "above", "drop", "rise", "when", "stale", "forward", "within"} {
		condLost = condLost || bad[c] || meant[c]
	}
	switch {
	case errors.Is(fe.Err, rules.ErrNoCondition):
		return condLost
	case errors.Is(fe.Err, rules.ErrNoTarget):
		return bad["publish"] || bad["endpoints"] || meant["publish"] || meant["endpoints"]
	case errors.Is(fe.Err, rules.ErrNotForCondition), errors.Is(fe.Err, rules.ErrNeedsWithin):
		return condLost
	}
	return false
}

// loadRules reads every rule file, compiles every rule (from those files and
// the main file) and checks names and endpoint references across files.
func (l *loader) loadRules(cfg *Config) *rules.Set {
	var sources []ruleSource
	for i, s := range cfg.Rule {
		sources = append(sources, ruleSource{spec: s, dec: l.mainDecoder, index: i})
	}
	seenFile := map[string]bool{}
	for i, pattern := range cfg.Rules.Files {
		p := l.abs(pattern)
		matches, err := filepath.Glob(p)
		if err != nil {
			l.mainFail(fmt.Sprintf("rules.files[%d]", i), "bad pattern %q: %v", pattern, err)
			continue
		}
		if len(matches) == 0 && !hasMeta(p) {
			l.mainFail(fmt.Sprintf("rules.files[%d]", i), "rule file %s does not exist", p)
			continue
		}
		sort.Strings(matches)
		for _, file := range matches {
			if seenFile[file] {
				continue
			}
			seenFile[file] = true
			cfg.RuleFiles = append(cfg.RuleFiles, file)
			var doc struct {
				Rule []rules.Spec `toml:"rule"`
			}
			d := l.parse(file, &doc)
			l.fatalEarly = false
			if d == nil {
				continue
			}
			for j, s := range doc.Rule {
				sources = append(sources, ruleSource{spec: s, dec: d, index: j})
			}
		}
	}

	endpoints := map[string]bool{}
	var names []string
	for _, e := range cfg.Endpoints {
		endpoints[e.Name] = true
		names = append(names, e.Name)
	}
	firstDef := map[string]string{}
	var compiled []*rules.Rule
	for _, src := range sources {
		base := fmt.Sprintf("rule[%d]", src.index)
		// Every rule is compiled, so that check prints all of its problems, but
		// a problem that only repeats a decode error in other words (a value
		// that did not decode is missing to Compile) is left out.
		r, err := rules.Compile(src.spec)
		bad, meant := src.dec.problemsUnder(base)
		if err != nil {
			for _, e := range flatten(err) {
				var fe *rules.FieldError
				if errors.As(e, &fe) {
					if followsFrom(fe, bad, meant) {
						continue
					}
					key := base + "." + fe.Key
					if strings.HasPrefix(fe.Key, "publish") {
						key = fmt.Sprintf("%s.publish[%d]%s", base, fe.Index, strings.TrimPrefix(fe.Key, "publish"))
					}
					src.dec.fail(key, "%v", fe.Err)
				} else {
					src.dec.fail(base, "%v", e)
				}
			}
		}
		if name := src.spec.Name; name != "" {
			here := fmt.Sprintf("%s:%d", src.dec.file, src.dec.pos.line(base+".name"))
			if first, dup := firstDef[name]; dup {
				src.dec.fail(base+".name", "duplicate rule name %q (first defined at %s)", name, first)
			} else {
				firstDef[name] = here
			}
		}
		for _, ep := range src.spec.Endpoints {
			if ep != "" && !endpoints[ep] {
				if len(names) == 0 {
					src.dec.fail(base+".endpoints", "unknown endpoint %q (no [[endpoint]] is defined)", ep)
				} else {
					src.dec.fail(base+".endpoints", "unknown endpoint %q (defined: %s)", ep, strings.Join(names, ", "))
				}
			}
		}
		l.errs = append(l.errs, src.dec.errs...)
		src.dec.errs = nil
		if r != nil {
			compiled = append(compiled, r)
		}
	}
	if len(l.errs) > 0 {
		return nil
	}
	set, err := rules.NewSet(compiled)
	if err != nil {
		l.errs = append(l.errs, &ConfigError{File: cfg.File, Err: err})
	}
	return set
}

func (l *loader) mainFail(path, format string, args ...any) {
	d := l.mainDecoder
	if d == nil {
		l.errs = append(l.errs, &ConfigError{Key: keyName(path), Err: fmt.Errorf(format, args...)})
		return
	}
	d.fail(path, format, args...)
	l.errs = append(l.errs, d.errs...)
	d.errs = nil
}

func hasMeta(p string) bool { return strings.ContainsAny(p, `*?[\`) }

// flatten undoes errors.Join.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}
