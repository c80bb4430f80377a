package rules

import (
	"fmt"
	"sort"
)

// Set is every rule of a configuration, in file order. It is immutable: a reload
// builds a new Set and swaps it whole. Safe for concurrent use.
type Set struct {
	rules  []*Rule
	byName map[string]*Rule
}

// NewSet builds a Set. Rule names must be unique.
func NewSet(rs []*Rule) (*Set, error) {
	s := &Set{rules: rs, byName: make(map[string]*Rule, len(rs))}
	for _, r := range rs {
		if _, dup := s.byName[r.Name]; dup {
			return nil, fmt.Errorf("duplicate rule name %q", r.Name)
		}
		s.byName[r.Name] = r
	}
	return s, nil
}

// Rules returns the rules in file order. The slice must not be modified.
func (s *Set) Rules() []*Rule {
	if s == nil {
		return nil
	}
	return s.rules
}

// Rule returns the rule with the given name, or nil.
func (s *Set) Rule(name string) *Rule {
	if s == nil {
		return nil
	}
	return s.byName[name]
}

// Match appends to dst the rules whose filter matches topic, in file order.
func (s *Set) Match(dst []*Rule, topic string) []*Rule {
	if s == nil {
		return dst
	}
	for _, r := range s.rules {
		if r.Filter.Match(topic) {
			dst = append(dst, r)
		}
	}
	return dst
}

// Filters returns the smallest list of filters that covers every rule's topic:
// a filter covered by another (home/+/t under home/#) is left out, so that a
// broker never delivers one message twice for overlapping subscriptions.
func (s *Set) Filters() []Filter {
	var all []Filter
	seen := map[string]bool{}
	for _, r := range s.Rules() {
		if !seen[r.Filter.s] {
			seen[r.Filter.s] = true
			all = append(all, r.Filter)
		}
	}
	var out []Filter
	for i, f := range all {
		covered := false
		for j, g := range all {
			if i != j && g.Covers(f) && !(f.Covers(g) && j > i) {
				covered = true
				break
			}
		}
		if !covered {
			out = append(out, f)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].s < out[j].s })
	return out
}
