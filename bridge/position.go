package bridge

import (
	"strconv"
	"strings"
)

// positions maps a key path such as "endpoint[1].timeout" or
// "rule[0].publish[2].topic" to the 1-based line where it is written. Table
// headers are recorded under their own path ("rule[0]").
//
// BurntSushi/toml reports positions only for its own errors, so checks that
// span keys (a duplicate name, an unknown endpoint) use this index. It is built
// by a small scanner over text that toml has already parsed successfully; on
// any other input it returns a partial index and never panics.
type positions map[string]int

// line returns the line of path, or of its nearest recorded parent, or 0.
func (p positions) line(path string) int {
	if l, ok := p[path]; ok {
		return l
	}
	for path != "" {
		if l, ok := p[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return 0
		}
		path = path[:i]
	}
	return 0
}

// indexPositions scans TOML source and records where each key is written.
func indexPositions(src string) positions {
	s := &posScanner{src: src, line: 1, out: positions{}, arrays: map[string]int{}}
	s.document()
	return s.out
}

type posScanner struct {
	src    string
	i      int
	line   int
	out    positions
	arrays map[string]int // resolved array-table path → number of elements seen
	table  string         // resolved path of the current table ("" at top level)
}

func (s *posScanner) eof() bool { return s.i >= len(s.src) }

func (s *posScanner) peek() byte {
	if s.eof() {
		return 0
	}
	return s.src[s.i]
}

func (s *posScanner) advance(n int) {
	for k := 0; k < n && !s.eof(); k++ {
		if s.src[s.i] == '\n' {
			s.line++
		}
		s.i++
	}
}

// skipSpace skips blanks, and also newlines and comments when nl is set.
func (s *posScanner) skipSpace(nl bool) {
	for !s.eof() {
		switch c := s.peek(); {
		case c == ' ' || c == '\t' || c == '\r':
			s.advance(1)
		case c == '\n' && nl:
			s.advance(1)
		case c == '#' && nl:
			s.skipLine()
		default:
			return
		}
	}
}

func (s *posScanner) skipLine() {
	for !s.eof() && s.peek() != '\n' {
		s.advance(1)
	}
}

func (s *posScanner) document() {
	for !s.eof() {
		start := s.i
		s.skipSpace(true)
		if s.eof() {
			return
		}
		line := s.line
		switch {
		case strings.HasPrefix(s.src[s.i:], "[["):
			s.advance(2)
			keys := s.keyPath()
			path := s.resolve(keys)
			idx := s.arrays[path]
			s.arrays[path] = idx + 1
			s.table = path + "[" + strconv.Itoa(idx) + "]"
			s.out[s.table] = line
			s.parents(path, line)
			s.skipLine()
		case s.peek() == '[':
			s.advance(1)
			s.table = s.resolve(s.keyPath())
			s.out[s.table] = line
			s.parents(s.table, line)
			s.skipLine()
		default:
			s.keyValue(s.table)
			s.skipLine() // trailing comment
		}
		if s.i == start { // no progress on malformed input
			s.advance(1)
		}
	}
}

// parents records path itself and every ancestor a header creates implicitly
// ([[a.b]] creates table a), where not recorded yet, so "unknown key" and
// other problems with them have a line.
func (s *posScanner) parents(path string, line int) {
	for p := path; p != ""; {
		if _, ok := s.out[p]; !ok {
			s.out[p] = line
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			return
		}
		p = p[:i]
	}
}

// resolve turns header keys into a path, inserting the current index of every
// array table along the way ([[rule.publish]] → rule[3].publish).
func (s *posScanner) resolve(keys []string) string {
	path := ""
	for i, k := range keys {
		if path != "" {
			path += "."
		}
		path += k
		if n := s.arrays[path]; n > 0 && i < len(keys)-1 {
			path += "[" + strconv.Itoa(n-1) + "]"
		}
	}
	return path
}

// keyPath reads a dotted key (bare, "quoted" or 'literal' parts).
func (s *posScanner) keyPath() []string {
	var keys []string
	for !s.eof() {
		s.skipSpace(false)
		switch c := s.peek(); {
		case c == '"' || c == '\'':
			keys = append(keys, s.str())
		case isBareKey(c):
			start := s.i
			for !s.eof() && isBareKey(s.peek()) {
				s.advance(1)
			}
			keys = append(keys, s.src[start:s.i])
		default:
			return keys
		}
		s.skipSpace(false)
		if s.peek() != '.' {
			return keys
		}
		s.advance(1)
	}
	return keys
}

func isBareKey(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// keyValue reads "key = value" and records the key under table.
func (s *posScanner) keyValue(table string) {
	line := s.line
	keys := s.keyPath()
	if len(keys) == 0 {
		return
	}
	path := table
	for _, k := range keys {
		if path != "" {
			path += "."
		}
		path += k
	}
	s.out[path] = line
	s.parents(path, line) // a.b = 1 creates table a
	s.skipSpace(false)
	if s.peek() != '=' {
		return
	}
	s.advance(1)
	s.skipSpace(false)
	s.value(path)
}

// value skips one value, recording keys inside inline tables and arrays of them.
func (s *posScanner) value(path string) {
	switch c := s.peek(); {
	case c == '"' || c == '\'':
		s.str()
	case c == '[':
		s.advance(1)
		for n := 0; !s.eof(); n++ {
			s.skipSpace(true)
			if s.peek() == ']' {
				s.advance(1)
				return
			}
			before := s.i
			s.value(path + "[" + strconv.Itoa(n) + "]")
			s.skipSpace(true)
			if s.peek() == ',' {
				s.advance(1)
			} else if s.i == before {
				s.advance(1)
			}
		}
	case c == '{':
		s.out[path] = s.line
		s.advance(1)
		for !s.eof() {
			s.skipSpace(true)
			if s.peek() == '}' {
				s.advance(1)
				return
			}
			before := s.i
			s.keyValue(path)
			s.skipSpace(true)
			if s.peek() == ',' {
				s.advance(1)
			} else if s.i == before {
				s.advance(1)
			}
		}
	default:
		for !s.eof() {
			switch s.peek() {
			case ',', ']', '}', '\n', '#':
				return
			}
			s.advance(1)
		}
	}
}

// str reads a basic, literal or multi-line string and returns its raw content
// (escapes are not decoded: keys that need them are rare and only lose their line).
func (s *posScanner) str() string {
	q := s.peek()
	if strings.HasPrefix(s.src[s.i:], strings.Repeat(string(q), 3)) {
		s.advance(3)
		start := s.i
		end := strings.Index(s.src[s.i:], strings.Repeat(string(q), 3))
		if end < 0 {
			s.advance(len(s.src))
			return s.src[start:]
		}
		s.advance(end + 3)
		// Up to two more quotes may belong to the content ("""a"""").
		for k := 0; k < 2 && s.peek() == q; k++ {
			s.advance(1)
		}
		return s.src[start : start+end]
	}
	s.advance(1)
	start := s.i
	for !s.eof() {
		c := s.peek()
		switch {
		case c == '\\' && q == '"':
			s.advance(2)
		case c == q:
			v := s.src[start:s.i]
			s.advance(1)
			return v
		case c == '\n':
			return s.src[start:s.i]
		default:
			s.advance(1)
		}
	}
	return s.src[start:]
}
