package bridge

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// decoder turns the generic tree BurntSushi/toml parses (map[string]any) into
// config structs, strictly: unknown keys, wrong types, integer durations,
// NaN/Inf and unset ${VARS} are all errors. Unlike toml.Decode it does not stop
// at the first problem: every one is recorded with its file and line.
type decoder struct {
	file   string
	pos    positions
	getenv func(string) (string, bool)
	errs   []error
	failed map[string]bool // top-level elements ("rule[2]", "mqtt") with a value that did not decode
	bad    map[string]bool // the paths of those values ("rule[2].below")
	// unknown maps the path of each unknown key to the known key it is
	// probably a typo of ("" when none is close). An unknown key does not
	// spoil the values beside it, so it does not mark its element failed.
	unknown map[string]string
}

// fail records a problem at path (e.g. "endpoint[1].timeout").
func (d *decoder) fail(path string, format string, args ...any) {
	if d.failed == nil {
		d.failed, d.bad = map[string]bool{}, map[string]bool{}
	}
	top, _, _ := strings.Cut(path, ".")
	d.failed[top] = true
	d.bad[path] = true
	d.record(path, format, args...)
}

// record adds a problem at path without marking anything failed.
func (d *decoder) record(path string, format string, args ...any) {
	d.errs = append(d.errs, &ConfigError{File: d.file, Line: d.pos.line(path), Key: keyName(path), Err: fmt.Errorf(format, args...)})
}

// problemsUnder returns the keys directly under element base (such as
// "rule[2]") whose values failed to decode, without indices ("below",
// "publish"), and the known keys that its unknown keys look like typos of.
func (d *decoder) problemsUnder(base string) (bad, meant map[string]bool) {
	bad, meant = map[string]bool{}, map[string]bool{}
	first := func(path string) (string, bool) {
		rest, ok := strings.CutPrefix(path, base+".")
		if !ok {
			return "", false
		}
		k, _, _ := strings.Cut(rest, ".")
		k, _, _ = strings.Cut(k, "[")
		return k, true
	}
	for p := range d.bad {
		if k, ok := first(p); ok {
			bad[k] = true
		}
	}
	for p, s := range d.unknown {
		if _, ok := first(p); ok && s != "" {
			meant[s] = true
		}
	}
	return bad, meant
}

// keyName strips array indices: "rule[2].publish[0].topic" → "rule.publish.topic".
func keyName(path string) string {
	var b strings.Builder
	depth := 0
	for _, c := range path {
		switch {
		case c == '[':
			depth++
		case c == ']':
			depth--
		case depth == 0:
			b.WriteRune(c)
		}
	}
	return b.String()
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	sizeType     = reflect.TypeFor[Size]()
	secretType   = reflect.TypeFor[Secret]()
)

type defaulter interface{ setDefaults() }

// decodeStruct fills the struct rv from table m. Keys are matched exactly to
// `toml` tags; a Secret field named X also accepts X_file.
func (d *decoder) decodeStruct(path string, m map[string]any, rv reflect.Value) {
	rt := rv.Type()
	known := map[string]bool{}
	for i := 0; i < rt.NumField(); i++ {
		f := rt.Field(i)
		name := f.Tag.Get("toml")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		fv := rv.Field(i)
		if f.Type == secretType {
			known[name], known[name+"_file"] = true, true
			d.decodeSecret(path, name, m, fv)
			continue
		}
		known[name] = true
		raw, ok := m[name]
		if !ok {
			continue
		}
		d.decodeValue(join(path, name), raw, fv)
	}
	var unknown []string
	for k := range m {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		if k == "" {
			d.record(join(path, k), "an empty key is not allowed")
			continue
		}
		s := suggest(k, known)
		if d.unknown == nil {
			d.unknown = map[string]string{}
		}
		d.unknown[join(path, k)] = s
		if s != "" {
			d.record(join(path, k), "unknown key (did you mean %q?)", s)
		} else {
			d.record(join(path, k), "unknown key")
		}
	}
}

func (d *decoder) decodeSecret(path, name string, m map[string]any, fv reflect.Value) {
	v, hasV := m[name]
	f, hasF := m[name+"_file"]
	if hasV && hasF {
		d.fail(join(path, name+"_file"), "secret given twice: use %s or %s_file, not both", name, name)
		fv.Set(reflect.ValueOf(Secret{Set: true, value: "(invalid)"}))
		return
	}
	var s Secret
	switch {
	case hasV:
		str, ok := d.str(join(path, name), v)
		if !ok {
			return
		}
		s = NewSecret(str)
	case hasF:
		str, ok := d.str(join(path, name+"_file"), f)
		if !ok || str == "" {
			return // an empty *_file means "not set", as in PRODUCT.md's example
		}
		s = Secret{File: str, Set: true}
	default:
		return
	}
	fv.Set(reflect.ValueOf(s))
}

// str reads a TOML string and expands ${VAR} references in it.
func (d *decoder) str(path string, raw any) (string, bool) {
	s, ok := raw.(string)
	if !ok {
		d.fail(path, "must be a string, not %s", tomlType(raw))
		return "", false
	}
	out, err := expandEnv(s, d.getenv)
	if err != nil {
		d.fail(path, "%v", err)
		return "", false
	}
	return out, true
}

func (d *decoder) decodeValue(path string, raw any, fv reflect.Value) {
	if fv.Kind() == reflect.Pointer {
		nv := reflect.New(fv.Type().Elem())
		before := len(d.errs)
		d.decodeValue(path, raw, nv.Elem())
		if len(d.errs) == before {
			fv.Set(nv)
		}
		return
	}
	switch fv.Type() {
	case durationType:
		s, ok := raw.(string)
		if !ok {
			if _, isInt := raw.(int64); isInt {
				d.fail(path, "durations must be strings with a unit, like \"30s\" or \"5m\" (a bare number is ambiguous)")
			} else {
				d.fail(path, "must be a duration string like \"30s\", not %s", tomlType(raw))
			}
			return
		}
		s, ok = d.str(path, s)
		if !ok {
			return
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			d.fail(path, "invalid duration %q (use a number with a unit: ms, s, m, h)", s)
			return
		}
		if v < 0 {
			d.fail(path, "must not be negative")
			return
		}
		fv.SetInt(int64(v))
		return
	case sizeType:
		s, ok := raw.(string)
		if !ok {
			d.fail(path, "sizes must be strings with a unit, like \"64KiB\" or \"256MiB\"")
			return
		}
		if s, ok = d.str(path, s); !ok {
			return
		}
		v, err := parseSize(s)
		if err != nil {
			d.fail(path, "%v", err)
			return
		}
		fv.SetInt(v)
		return
	}
	switch fv.Kind() {
	case reflect.String:
		if s, ok := d.str(path, raw); ok {
			fv.SetString(s)
		}
	case reflect.Bool:
		b, ok := raw.(bool)
		if !ok {
			d.fail(path, "must be true or false, not %s", tomlType(raw))
			return
		}
		fv.SetBool(b)
	case reflect.Int:
		n, ok := raw.(int64)
		if !ok {
			d.fail(path, "must be an integer, not %s", tomlType(raw))
			return
		}
		if n < math.MinInt32 || n > math.MaxInt32 {
			d.fail(path, "%d is out of range", n)
			return
		}
		fv.SetInt(n)
	case reflect.Float64:
		var f float64
		switch v := raw.(type) {
		case float64:
			f = v
		case int64:
			f = float64(v)
		default:
			d.fail(path, "must be a number, not %s", tomlType(raw))
			return
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			d.fail(path, "must be a finite number (nan and inf are not allowed)")
			return
		}
		fv.SetFloat(f)
	case reflect.Slice:
		d.decodeSlice(path, raw, fv)
	case reflect.Map:
		m, ok := raw.(map[string]any)
		if !ok {
			d.fail(path, "must be a table, not %s", tomlType(raw))
			return
		}
		out := reflect.MakeMapWithSize(fv.Type(), len(m))
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			ev := reflect.New(fv.Type().Elem()).Elem()
			d.decodeValue(join(path, k), m[k], ev)
			out.SetMapIndex(reflect.ValueOf(k), ev)
		}
		fv.Set(out)
	case reflect.Struct:
		m, ok := raw.(map[string]any)
		if !ok {
			d.fail(path, "must be a table, not %s", tomlType(raw))
			return
		}
		d.decodeStruct(path, m, fv)
	default:
		d.fail(path, "cannot decode into %s (edgehook bug)", fv.Type())
	}
}

func (d *decoder) decodeSlice(path string, raw any, fv reflect.Value) {
	var items []any
	switch v := raw.(type) {
	case []any:
		items = v
	case []map[string]any:
		for _, m := range v {
			items = append(items, m)
		}
	default:
		d.fail(path, "must be an array, not %s", tomlType(raw))
		return
	}
	out := reflect.MakeSlice(fv.Type(), len(items), len(items))
	for i, it := range items {
		ev := out.Index(i)
		if df, ok := ev.Addr().Interface().(defaulter); ok {
			df.setDefaults()
		}
		d.decodeValue(fmt.Sprintf("%s[%d]", path, i), it, ev)
	}
	fv.Set(out)
}

func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case time.Time:
		return "a date/time"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprintf("%T", v)
}

var sizeRE = regexp.MustCompile(`^\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*$`)

// parseSize reads "64KiB", "1.5MiB", "10MB", "512B" or "512".
func parseSize(s string) (int64, error) {
	m := sizeRE.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("invalid size %q (use a number with a unit: B, KiB, MiB, GiB, KB, MB, GB)", s)
	}
	units := map[string]float64{"": 1, "b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "kb": 1e3, "mb": 1e6, "gb": 1e9, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
	u, ok := units[strings.ToLower(m[2])]
	if !ok {
		return 0, fmt.Errorf("invalid size unit %q in %q (use B, KiB, MiB, GiB, KB, MB, GB)", m[2], s)
	}
	n, err := strconv.ParseFloat(m[1], 64)
	if err != nil || n*u > math.MaxInt64/2 {
		return 0, fmt.Errorf("size %q is out of range", s)
	}
	return int64(n * u), nil
}

// expandEnv replaces ${VAR} and ${VAR:-default} with environment values.
// $$ stands for a literal $. An unset variable without a default is an error,
// so that a missing token never silently becomes an empty string.
func expandEnv(s string, getenv func(string) (string, bool)) (string, error) {
	if !strings.Contains(s, "$") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' {
			b.WriteByte(c)
			continue
		}
		switch {
		case i+1 < len(s) && s[i+1] == '$':
			b.WriteByte('$')
			i++
			continue
		case i+1 >= len(s) || s[i+1] != '{':
			b.WriteByte('$')
			continue
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return "", fmt.Errorf("unterminated ${ in %q", s)
		}
		expr := s[i+2 : i+end]
		name, def, hasDef := strings.Cut(expr, ":-")
		if !validEnvName(name) {
			return "", fmt.Errorf("invalid variable name %q in ${%s}", name, expr)
		}
		v, set := getenv(name)
		switch {
		case hasDef && v == "":
			v = def
		case !set:
			return "", fmt.Errorf("environment variable %s is not set (use ${%s:-default} for a default)", name, name)
		}
		b.WriteString(v)
		i += end
	}
	return b.String(), nil
}

func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// suggest returns the known key closest to k (edit distance <= 2), or "".
func suggest(k string, known map[string]bool) string {
	best, bestD := "", 3
	for c := range known {
		if d := editDistance(k, c); d < bestD || d == bestD && c < best {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// errNotDir is returned when store.dir exists but is not a directory.
var errNotDir = errors.New("not a directory")
