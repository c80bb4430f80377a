package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// Reject says why a payload gave no valid reading. Its String is used as a
// metrics label and in logs.
type Reject uint8

// Reasons a payload is rejected. The zero value means "accepted".
const (
	OK            Reject = iota
	Malformed            // not valid JSON (or an ambiguous duplicate key on the path)
	Missing              // the JSON path does not exist
	NotNumber            // the value is a string, bool, null, object or array
	NonFinite            // NaN or ±Inf, as text
	OutOfRange           // a number too large for float64, such as 1e999
	InvalidUTF8          // the payload is not valid UTF-8
	TooLarge             // over the configured payload size (checked by the caller)
	ExprError            // a `when` expression could not be evaluated on this payload
	TooManySeries        // the rule already tracks MaxSeriesPerRule series
	SeriesTooLong        // the topic (with its key) is over MaxSeriesLen bytes
)

var rejectNames = [...]string{"ok", "malformed", "missing", "not_number", "non_finite", "out_of_range", "invalid_utf8", "too_large",
	"expression", "too_many_series", "series_too_long"}

func (r Reject) String() string {
	if int(r) < len(rejectNames) {
		return rejectNames[r]
	}
	return "unknown"
}

// Rejects lists every rejection reason (not OK), for metrics that want all labels up front.
func Rejects() []Reject {
	return []Reject{Malformed, Missing, NotNumber, NonFinite, OutOfRange, InvalidUTF8, TooLarge, ExprError, TooManySeries, SeriesTooLong}
}

// Path is a compiled JSON path such as "temperature", "sensor.temp" or
// "readings.0.value" (array indices as numeric levels; "a[0].b" is accepted too).
// The zero Path means "the payload itself is the number".
type Path struct {
	raw   string
	parts []string
}

// ParsePath compiles a dotted JSON path. An empty string gives the zero Path.
func ParsePath(s string) (Path, error) {
	if s == "" {
		return Path{}, nil
	}
	norm := strings.NewReplacer("[", ".", "]", "").Replace(s)
	parts := strings.Split(norm, ".")
	for _, p := range parts {
		if p == "" {
			return Path{}, fmt.Errorf("path %q has an empty element", s)
		}
	}
	return Path{raw: s, parts: parts}, nil
}

// String returns the path as written.
func (p Path) String() string { return p.raw }

// IsZero reports whether the path selects the whole payload.
func (p Path) IsZero() bool { return len(p.parts) == 0 }

// Extract returns the number at path p in payload. A payload is accepted when it
// is valid UTF-8, valid JSON when a path is set, and the selected value is a
// finite JSON number or a string holding one ("21.5"). With the zero Path the whole
// payload must be such a number, bare ("21.5") or as JSON. Extract does not allocate
// and never panics; it does not check the payload size (the caller does).
func Extract(payload []byte, p Path) (float64, Reject) {
	if !utf8.Valid(payload) {
		return 0, InvalidUTF8
	}
	if p.IsZero() {
		v := bytes.TrimSpace(payload)
		if len(v) > 0 && v[0] == '"' {
			if !json.Valid(v) {
				return 0, Malformed
			}
			return numberFromString(v)
		}
		return parseNumber(v)
	}
	if !json.Valid(payload) {
		return 0, Malformed
	}
	v, r := find(payload, p.parts)
	if r != OK {
		return 0, r
	}
	switch {
	case len(v) == 0:
		return 0, Missing
	case v[0] == '"':
		return numberFromString(v)
	case v[0] == '-' || (v[0] >= '0' && v[0] <= '9'):
		return parseNumber(v)
	default:
		return 0, NotNumber
	}
}

// ValueAt returns the raw JSON value at path p, or nil when the payload is not JSON
// or the path is missing. It is used to read the `key` that splits a topic into series.
func ValueAt(payload []byte, p Path) []byte {
	if p.IsZero() || !json.Valid(payload) {
		return nil
	}
	v, r := find(payload, p.parts)
	if r != OK {
		return nil
	}
	return v
}

// find walks valid JSON data along parts and returns the raw value found.
func find(data []byte, parts []string) ([]byte, Reject) {
	v := trimWS(data)
	for _, part := range parts {
		if len(v) == 0 {
			return nil, Missing
		}
		switch v[0] {
		case '{':
			var found []byte
			i := 1
			for {
				i = skipWS(v, i)
				if v[i] == '}' {
					break
				}
				kend := skipString(v, i)
				key := v[i:kend]
				i = skipWS(v, kend)
				i = skipWS(v, i+1) // ':'
				vend := skipValue(v, i)
				if keyEquals(key, part) {
					if found != nil {
						return nil, Malformed // duplicate key: ambiguous, refuse it
					}
					found = v[i:vend]
				}
				i = skipWS(v, vend)
				if v[i] == ',' {
					i++
					continue
				}
				break // '}'
			}
			if found == nil {
				return nil, Missing
			}
			v = found
		case '[':
			n, err := strconv.Atoi(part)
			if err != nil || n < 0 {
				return nil, Missing
			}
			var found []byte
			i := 1
			for k := 0; ; k++ {
				i = skipWS(v, i)
				if v[i] == ']' {
					break
				}
				vend := skipValue(v, i)
				if k == n {
					found = v[i:vend]
					break
				}
				i = skipWS(v, vend)
				if v[i] == ',' {
					i++
					continue
				}
				break
			}
			if found == nil {
				return nil, Missing
			}
			v = found
		default:
			return nil, Missing
		}
	}
	return v, OK
}

// keyEquals compares a raw JSON string token (with quotes) with name.
func keyEquals(raw []byte, name string) bool {
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner) == name
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return false
	}
	return s == name
}

func numberFromString(raw []byte) (float64, Reject) {
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') >= 0 {
		return 0, NotNumber // numbers do not need escapes
	}
	inner = bytes.TrimSpace(inner)
	if isNonFiniteWord(inner) {
		return 0, NonFinite
	}
	f, r := parseNumber(inner)
	if r == Malformed {
		return 0, NotNumber
	}
	return f, r
}

// parseNumber accepts exactly the JSON number grammar (no hex, no underscores,
// no "Inf") and rejects values outside float64's range.
func parseNumber(b []byte) (float64, Reject) {
	if len(b) == 0 {
		return 0, Malformed
	}
	if isNonFiniteWord(b) {
		return 0, NonFinite
	}
	if !isJSONNumber(b) {
		switch b[0] {
		case '{', '[', 't', 'f', 'n':
			if json.Valid(b) {
				return 0, NotNumber
			}
		}
		return 0, Malformed
	}
	f, err := strconv.ParseFloat(unsafe.String(&b[0], len(b)), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, OutOfRange
	}
	return f, OK
}

func isNonFiniteWord(b []byte) bool {
	if len(b) > 0 && (b[0] == '+' || b[0] == '-') {
		b = b[1:]
	}
	return len(b) <= 8 && (asciiEqualFold(b, "nan") || asciiEqualFold(b, "inf") || asciiEqualFold(b, "infinity"))
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

func isJSONNumber(b []byte) bool {
	i := 0
	if b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return false
	}
	switch {
	case b[i] == '0':
		i++
	case b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == start {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		start := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == start {
			return false
		}
	}
	return i == len(b)
}

// The skip helpers below assume data already passed json.Valid.

func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func trimWS(b []byte) []byte {
	for len(b) > 0 && isWS(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isWS(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func skipWS(b []byte, i int) int {
	for i < len(b) && isWS(b[i]) {
		i++
	}
	return i
}

// skipString returns the index just past the string starting at b[i] == '"'.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// skipValue returns the index just past the value starting at b[i].
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	default:
		for i < len(b) && !isWS(b[i]) && b[i] != ',' && b[i] != '}' && b[i] != ']' {
			i++
		}
		return i
	}
}

// unquoteJSON decodes a JSON string token.
func unquoteJSON(raw []byte) (string, bool) {
	var s string
	return s, json.Unmarshal(raw, &s) == nil
}
