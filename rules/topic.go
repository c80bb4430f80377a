package rules

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxTopicLen is the MQTT limit on a topic or filter, in bytes (a 16-bit length prefix).
const MaxTopicLen = 65535

// Filter is a validated MQTT subscription filter such as "home/+/temperature" or "home/#".
// The zero Filter matches nothing.
type Filter struct {
	s string
}

// ParseFilter validates an MQTT 3.1.1 topic filter: non-empty, valid UTF-8 without NUL,
// at most MaxTopicLen bytes, '+' only as a whole level and '#' only as the whole last level.
func ParseFilter(s string) (Filter, error) {
	if err := checkTopicText(s); err != nil {
		return Filter{}, err
	}
	levels := strings.Split(s, "/")
	for i, l := range levels {
		switch {
		case l == "#" && i != len(levels)-1:
			return Filter{}, errors.New(`"#" must be the last level`)
		case strings.Contains(l, "#") && l != "#":
			return Filter{}, errors.New(`"#" must be a whole level`)
		case strings.Contains(l, "+") && l != "+":
			return Filter{}, errors.New(`"+" must be a whole level`)
		}
	}
	return Filter{s: s}, nil
}

// String returns the filter as written.
func (f Filter) String() string { return f.s }

// Match reports whether the concrete topic matches the filter. Topics starting
// with '$' (such as $SYS/...) never match a filter whose first level is a wildcard.
// It does not allocate.
func (f Filter) Match(topic string) bool {
	if f.s == "" {
		return false
	}
	if len(topic) > 0 && topic[0] == '$' && (f.s[0] == '+' || f.s[0] == '#') {
		return false
	}
	fs, ts := f.s, topic
	for {
		fl, frest, fmore := strings.Cut(fs, "/")
		if fl == "#" {
			return true
		}
		tl, trest, tmore := strings.Cut(ts, "/")
		if fl != "+" && fl != tl {
			return false
		}
		switch {
		case !fmore && !tmore:
			return true
		case !tmore:
			// "a/#" matches "a" too: the parent level is included.
			return frest == "#"
		case !fmore:
			return false
		}
		fs, ts = frest, trest
	}
}

// Covers reports whether every topic matched by g is also matched by f. The
// bridge uses it to avoid overlapping subscriptions, which brokers may answer
// with duplicate deliveries.
func (f Filter) Covers(g Filter) bool {
	if f.s == "" || g.s == "" {
		return false
	}
	if f.s == g.s {
		return true
	}
	fl := strings.Split(f.s, "/")
	gl := strings.Split(g.s, "/")
	// A '$' topic is matched by a literal first level only.
	if (fl[0] == "+" || fl[0] == "#") && gl[0] != "+" && gl[0] != "#" && strings.HasPrefix(gl[0], "$") {
		return false
	}
	if (gl[0] == "+" || gl[0] == "#") && fl[0] != "+" && fl[0] != "#" {
		return false
	}
	for i, l := range fl {
		if l == "#" {
			return true
		}
		if i >= len(gl) {
			return false
		}
		switch {
		case gl[i] == "#":
			return false
		case l == "+":
			continue
		case gl[i] == "+" || gl[i] != l:
			return false
		}
	}
	return len(fl) == len(gl)
}

// CheckPublishTopic reports why topic cannot be published to, or nil. A PUBLISH
// topic must be non-empty, valid UTF-8 without NUL, at most MaxTopicLen bytes,
// and contain no wildcard. Brokers such as Mosquitto treat a violation as a
// malformed packet and disconnect the client, so this runs before any publish.
// With strict set it also refuses empty levels and levels starting with '$'
// (used for topics rendered from untrusted input).
func CheckPublishTopic(topic string, strict bool) error {
	if err := checkTopicText(topic); err != nil {
		return err
	}
	if strings.ContainsAny(topic, "+#") {
		return errors.New(`topic contains a wildcard ("+" or "#")`)
	}
	if topic[0] == '$' {
		// $SYS/… and $share/… are the broker's: it accepts a publish there
		// and drops it, so it would count as delivered and reach nobody.
		return fmt.Errorf("topic starts with '$' (reserved for the broker)")
	}
	if strict {
		for _, l := range strings.Split(topic, "/") {
			if l == "" {
				return errors.New("topic has an empty level")
			}
			if l[0] == '$' {
				return fmt.Errorf("topic level %q starts with '$'", clip(l))
			}
		}
	}
	return nil
}

func checkTopicText(s string) error {
	switch {
	case s == "":
		return errors.New("topic is empty")
	case len(s) > MaxTopicLen:
		return fmt.Errorf("topic is %d bytes, over the MQTT limit of %d", len(s), MaxTopicLen)
	case !utf8.ValidString(s):
		return errors.New("topic is not valid UTF-8")
	case strings.IndexByte(s, 0) >= 0:
		return errors.New("topic contains NUL")
	}
	return nil
}

// TopicPart returns the 0-based level n of topic, or "" when there is no such level.
func TopicPart(topic string, n int) string {
	if n < 0 {
		return ""
	}
	for i := 0; ; i++ {
		l, rest, more := strings.Cut(topic, "/")
		if i == n {
			return l
		}
		if !more {
			return ""
		}
		topic = rest
	}
}

// clip shortens s for use in an error message.
func clip(s string) string {
	const max = 40
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}
