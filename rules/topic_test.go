package rules

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestFilterMatch(t *testing.T) {
	tests := []struct {
		filter, topic string
		want          bool
	}{
		{"home/living/temperature", "home/living/temperature", true},
		{"home/+/temperature", "home/living/temperature", true},
		{"home/+/temperature", "home/living/humidity", false},
		{"home/+/temperature", "home/temperature", false},
		{"home/#", "home/living/temperature", true},
		{"home/#", "home", true},
		{"home/#", "homes/x", false},
		{"#", "anything/at/all", true},
		{"#", "$SYS/broker/uptime", false},
		{"+/broker/uptime", "$SYS/broker/uptime", false},
		{"$SYS/#", "$SYS/broker/uptime", true},
		{"a/+", "a/", true},
		{"a/+", "a", false},
		{"+/+", "/x", true},
		{"a/b", "a/b/c", false},
		{"a/b/c", "a/b", false},
	}
	for _, tt := range tests {
		f, err := ParseFilter(tt.filter)
		if err != nil {
			t.Fatalf("ParseFilter(%q): %v", tt.filter, err)
		}
		if got := f.Match(tt.topic); got != tt.want {
			t.Errorf("%q.Match(%q) = %v, want %v", tt.filter, tt.topic, got, tt.want)
		}
	}
}

func TestParseFilterErrors(t *testing.T) {
	for _, s := range []string{"", "a/#/b", "a/b#", "a+/b", "a/\x00", "a/\xff", strings.Repeat("a", MaxTopicLen+1)} {
		if _, err := ParseFilter(s); err == nil {
			t.Errorf("ParseFilter(%q) accepted", clip(s))
		}
	}
}

func TestCovers(t *testing.T) {
	tests := []struct {
		f, g string
		want bool
	}{
		{"home/#", "home/+/t", true},
		{"home/+/t", "home/#", false},
		{"#", "a/b", true},
		{"#", "$SYS/x", false},
		{"+/+", "a/b", true},
		{"+/+", "a/b/c", false},
		{"a/#", "a", true},
		{"a/+", "a/#", false},
		{"a/b", "a/b", true},
	}
	for _, tt := range tests {
		f, _ := ParseFilter(tt.f)
		g, _ := ParseFilter(tt.g)
		if got := f.Covers(g); got != tt.want {
			t.Errorf("%q.Covers(%q) = %v, want %v", tt.f, tt.g, got, tt.want)
		}
	}
}

func TestCheckPublishTopic(t *testing.T) {
	good := []string{"home/heating/living/set", "a", "a/b c/d"}
	for _, s := range good {
		if err := CheckPublishTopic(s, true); err != nil {
			t.Errorf("CheckPublishTopic(%q) = %v", s, err)
		}
	}
	bad := []string{"", "#", "home/+/set", "a/#", "a//b", "/a", "a/", "$SYS/x", "a/$x", "a\x00b", "a/\xff", strings.Repeat("x", 70000)}
	for _, s := range bad {
		if err := CheckPublishTopic(s, true); err == nil {
			t.Errorf("CheckPublishTopic(%q, strict) accepted", clip(s))
		}
	}
	// Without strict, empty levels and a $ inside are allowed (a configured,
	// trusted topic); a leading $ never is: the broker drops such a publish.
	for _, s := range []string{"a//b", "a/$x"} {
		if err := CheckPublishTopic(s, false); err != nil {
			t.Errorf("non-strict %q: %v", s, err)
		}
	}
	for _, s := range []string{"$SYS/x", "$share/g/t"} {
		if err := CheckPublishTopic(s, false); err == nil {
			t.Errorf("non-strict %q accepted", s)
		}
	}
}

func TestTopicPart(t *testing.T) {
	for _, tt := range []struct {
		n    int
		want string
	}{{0, "home"}, {1, "living"}, {2, "temperature"}, {3, ""}, {-1, ""}} {
		if got := TopicPart("home/living/temperature", tt.n); got != tt.want {
			t.Errorf("TopicPart(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func FuzzFilter(f *testing.F) {
	for _, s := range []string{"home/+/t", "#", "a/#", "$SYS/#", "+/+", "a//b"} {
		f.Add(s, "home/living/t")
	}
	f.Fuzz(func(t *testing.T, filter, topic string) {
		fl, err := ParseFilter(filter)
		if err != nil {
			return
		}
		m := fl.Match(topic)
		if filter == topic && !m && CheckPublishTopic(topic, false) == nil {
			t.Fatalf("%q does not match itself", topic)
		}
		if fl.Covers(fl) != true {
			t.Fatalf("%q does not cover itself", filter)
		}
	})
}

func FuzzCheckPublishTopic(f *testing.F) {
	for _, s := range []string{"a/b", "#", "a/+/b", "", "$SYS/x", "a\x00", "\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, topic string) {
		if CheckPublishTopic(topic, true) != nil {
			return
		}
		// Anything accepted must be safe to hand to a broker.
		if topic == "" || strings.ContainsAny(topic, "+#\x00") || !utf8.ValidString(topic) || len(topic) > MaxTopicLen {
			t.Fatalf("accepted unsafe topic %q", topic)
		}
		for _, l := range strings.Split(topic, "/") {
			if l == "" || l[0] == '$' {
				t.Fatalf("accepted topic with bad level %q", topic)
			}
		}
	})
}
