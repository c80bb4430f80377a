package rules

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"strings"
	"time"

	"github.com/expr-lang/expr/vm"
)

// Condition is the one condition a rule tests. Its String is the config key and
// the "condition" field of events.
type Condition uint8

// The conditions of PRODUCT.md §3.
const (
	Below Condition = iota + 1
	Above
	Drop
	Rise
	When
	Stale
	Forward
)

var condNames = [...]string{"", "below", "above", "drop", "rise", "when", "stale", "forward"}

func (c Condition) String() string {
	if int(c) < len(condNames) {
		return condNames[c]
	}
	return "unknown"
}

// Spec is one [[rule]] table as written in a rule file, before validation.
// Pointer fields are nil when the key is absent. The bridge's strict TOML decoder
// fills it (durations must be strings, floats finite); Compile checks the rest.
type Spec struct {
	Name        string         `toml:"name"`
	Topic       string         `toml:"topic"`
	Value       string         `toml:"value"`
	Key         string         `toml:"key"`
	Below       *float64       `toml:"below"`
	Above       *float64       `toml:"above"`
	Drop        *float64       `toml:"drop"`
	Rise        *float64       `toml:"rise"`
	Within      *time.Duration `toml:"within"`
	When        *string        `toml:"when"`
	Stale       *time.Duration `toml:"stale"`
	Forward     *bool          `toml:"forward"`
	Hysteresis  *float64       `toml:"hysteresis"`
	For         *time.Duration `toml:"for"`
	Cooldown    *time.Duration `toml:"cooldown"`
	Level       *bool          `toml:"level"`
	Resolve     *bool          `toml:"resolve"`
	FireOnFirst *bool          `toml:"fire_on_first"`
	Endpoints   []string       `toml:"endpoints"`
	Body        *string        `toml:"body"`
	Publish     []PublishSpec  `toml:"publish"`
}

// PublishSpec is one [[rule.publish]] MQTT action.
type PublishSpec struct {
	Topic           string  `toml:"topic"`
	Payload         *string `toml:"payload"`
	ResolvedPayload *string `toml:"resolved_payload"`
	QoS             *int    `toml:"qos"`
	Retain          bool    `toml:"retain"`
}

// Rule is one validated rule. It is immutable after Compile and safe for
// concurrent use; per-series memory lives in State.
type Rule struct {
	Name      string
	Filter    Filter
	Value     Path // zero: the payload is the number (or, for forward/stale/when, anything)
	Key       Path // zero: one series per topic
	Cond      Condition
	Threshold float64 // below/above: the threshold; drop/rise: the amount
	Band      float64 // hysteresis (>= 0)
	Within    time.Duration
	StaleFor  time.Duration
	For       time.Duration
	Cooldown  time.Duration
	Level     bool
	Resolve   bool
	FireFirst bool
	Endpoints []string
	Body      *Template // nil: the default envelope
	Publish   []Action
	Expr      string // when: the expression as written

	// Hash identifies the rule's definition: a reload keeps the state of rules
	// whose Hash did not change and resets the others.
	Hash uint64

	clearAt    float64 // below: Threshold+Band; above: Threshold-Band
	prog       *vm.Program
	exprFields []string // the payload fields `when` reads; a reading without one is missing
}

// Action is a validated [[rule.publish]] MQTT action.
type Action struct {
	Topic           *Template
	Payload         *Template // on rule.fired (nil: the event's payload)
	ResolvedPayload *Template // on rule.resolved (nil: publish nothing then)
	QoS             byte
	Retain          bool
}

// FieldError is a problem with one key of a rule. Compile returns them joined
// with errors.Join; the loader turns Key into a file:line.
type FieldError struct {
	Key   string // e.g. "hysteresis" or "publish.topic"
	Index int    // index within an array of tables (publish), else 0
	Err   error
}

func (e *FieldError) Error() string { return e.Key + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// windowCap bounds the samples a drop/rise series keeps (see window.go).
const windowCap = 1024

// Problems Compile reports that a config loader may want to recognise: each
// can be only the consequence of another key that failed to decode.
var (
	ErrNoCondition     = errors.New("needs exactly one condition: below, above, drop, rise, when, stale or forward")
	ErrNoTarget        = errors.New("rule needs at least one of endpoints or [[rule.publish]]")
	ErrNotForCondition = errors.New("key does not fit the rule's condition") // matched by errors.Is; the message says which
	ErrNeedsWithin     = errors.New("needs within, e.g. within = \"10m\": the trailing window to compare against")
)

// fitError is a problem that is an ErrNotForCondition, in its own words.
type fitError string

func (e fitError) Error() string        { return string(e) }
func (e fitError) Is(target error) bool { return target == ErrNotForCondition }

// Compile validates a Spec and returns the Rule. Every problem found is returned,
// each as a *FieldError, joined with errors.Join.
func Compile(s Spec) (*Rule, error) {
	var errs []error
	bad := func(key string, format string, args ...any) {
		errs = append(errs, &FieldError{Key: key, Err: fmt.Errorf(format, args...)})
	}
	badFit := func(key string, format string, args ...any) {
		errs = append(errs, &FieldError{Key: key, Err: fitError(fmt.Sprintf(format, args...))})
	}
	r := &Rule{Name: s.Name, Endpoints: s.Endpoints}

	switch {
	case s.Name == "":
		bad("name", "required")
	case strings.TrimSpace(s.Name) != s.Name || strings.ContainsAny(s.Name, "\x00\n\r\t"):
		bad("name", "must not contain leading/trailing spaces or control characters")
	case len(s.Name) > 256:
		bad("name", "longer than 256 bytes")
	}
	if s.Topic == "" {
		bad("topic", "required")
	} else if f, err := ParseFilter(s.Topic); err != nil {
		bad("topic", "%v", err)
	} else {
		r.Filter = f
	}
	if p, err := ParsePath(s.Value); err != nil {
		bad("value", "%v", err)
	} else {
		r.Value = p
	}
	if p, err := ParsePath(s.Key); err != nil {
		bad("key", "%v", err)
	} else {
		r.Key = p
	}

	// Exactly one condition.
	var conds []string
	setCond := func(c Condition) {
		conds = append(conds, c.String())
		r.Cond = c
	}
	if s.Below != nil {
		setCond(Below)
		r.Threshold = *s.Below
	}
	if s.Above != nil {
		setCond(Above)
		r.Threshold = *s.Above
	}
	if s.Drop != nil {
		setCond(Drop)
		r.Threshold = *s.Drop
	}
	if s.Rise != nil {
		setCond(Rise)
		r.Threshold = *s.Rise
	}
	if s.When != nil {
		setCond(When)
		r.Expr = *s.When
		if p, fields, err := compileExpr(*s.When); err != nil {
			bad("when", "%v", err)
		} else {
			r.prog, r.exprFields = p, fields
		}
	}
	if s.Stale != nil {
		setCond(Stale)
		r.StaleFor = *s.Stale
		if *s.Stale <= 0 {
			bad("stale", "must be positive")
		}
	}
	if s.Forward != nil {
		if !*s.Forward {
			bad("forward", "set forward = true or remove it")
		}
		setCond(Forward)
	}
	switch len(conds) {
	case 0:
		bad("name", "rule %q %w", s.Name, ErrNoCondition)
	case 1:
	default:
		bad(conds[1], "rule has more than one condition (%s); use one rule per condition", strings.Join(conds, ", "))
	}
	for _, f := range []struct {
		key string
		v   *float64
	}{{"below", s.Below}, {"above", s.Above}, {"drop", s.Drop}, {"rise", s.Rise}, {"hysteresis", s.Hysteresis}} {
		if f.v != nil && (math.IsNaN(*f.v) || math.IsInf(*f.v, 0)) {
			bad(f.key, "must be a finite number")
		}
	}
	if (r.Cond == Drop || r.Cond == Rise) && r.Threshold <= 0 {
		bad(r.Cond.String(), "must be a positive amount")
	}

	if s.Hysteresis != nil {
		switch {
		case *s.Hysteresis < 0:
			bad("hysteresis", "must be >= 0")
		case r.Cond != Below && r.Cond != Above:
			badFit("hysteresis", "only applies to below and above")
		default:
			r.Band = *s.Hysteresis
		}
	}
	durOpt := func(key string, d *time.Duration, dst *time.Duration) {
		if d == nil {
			return
		}
		if *d < 0 {
			bad(key, "must not be negative")
			return
		}
		*dst = *d
	}
	durOpt("for", s.For, &r.For)
	durOpt("cooldown", s.Cooldown, &r.Cooldown)
	durOpt("within", s.Within, &r.Within)
	r.Level = s.Level != nil && *s.Level
	r.Resolve = s.Resolve != nil && *s.Resolve
	r.FireFirst = s.FireOnFirst != nil && *s.FireOnFirst

	// Keys that do not apply to the condition are errors, not silent no-ops.
	notFor := func(key string, set bool, conds ...Condition) {
		if !set {
			return
		}
		for _, c := range conds {
			if r.Cond == c {
				badFit(key, "does not apply to %s rules", c)
				return
			}
		}
	}
	notFor("for", s.For != nil, Forward, Stale)
	notFor("level", s.Level != nil, Forward, Stale)
	notFor("resolve", s.Resolve != nil, Forward)
	notFor("fire_on_first", s.FireOnFirst != nil, Forward, Stale, Drop, Rise)
	switch {
	case (r.Cond == Drop || r.Cond == Rise) && s.Within == nil:
		bad(r.Cond.String(), "%w", ErrNeedsWithin)
	case (r.Cond == Drop || r.Cond == Rise) && r.Within <= 0:
		bad("within", "must be positive")
	case s.Within != nil && r.Cond != Drop && r.Cond != Rise:
		badFit("within", "only applies to drop and rise")
	}

	seen := map[string]bool{}
	for _, e := range s.Endpoints {
		switch {
		case e == "":
			bad("endpoints", "empty endpoint name")
		case seen[e]:
			bad("endpoints", "endpoint %q listed twice", e)
		}
		seen[e] = true
	}
	if s.Body != nil && strings.TrimSpace(*s.Body) != "" { // body = "" (as in PRODUCT.md's example) means the default envelope
		if t, err := ParseTemplate("body", *s.Body); err != nil {
			bad("body", "template does not compile: %v", err)
		} else {
			r.Body = t
		}
	}
	for i, p := range s.Publish {
		pbad := func(key, format string, args ...any) {
			errs = append(errs, &FieldError{Key: "publish." + key, Index: i, Err: fmt.Errorf(format, args...)})
		}
		a := Action{QoS: 1, Retain: p.Retain}
		if p.Topic == "" {
			pbad("topic", "required")
		} else if t, err := ParseTemplate("topic", p.Topic); err != nil {
			pbad("topic", "template does not compile: %v", err)
		} else {
			a.Topic = t
			if t.Static() {
				if err := CheckPublishTopic(p.Topic, false); err != nil {
					pbad("topic", "%v", err)
				}
			}
		}
		for _, pl := range []struct {
			key string
			src *string
			dst **Template
		}{{"payload", p.Payload, &a.Payload}, {"resolved_payload", p.ResolvedPayload, &a.ResolvedPayload}} {
			if pl.src == nil {
				continue
			}
			if t, err := ParseTemplate(pl.key, *pl.src); err != nil {
				pbad(pl.key, "template does not compile: %v", err)
			} else {
				*pl.dst = t
			}
		}
		if p.QoS != nil {
			if *p.QoS < 0 || *p.QoS > 2 {
				pbad("qos", "must be 0, 1 or 2")
			} else {
				a.QoS = byte(*p.QoS)
			}
		}
		r.Publish = append(r.Publish, a)
	}
	if len(s.Endpoints) == 0 && len(s.Publish) == 0 {
		bad("endpoints", "%w", ErrNoTarget)
	}

	switch r.Cond {
	case Below:
		r.clearAt = r.Threshold + r.Band
	case Above:
		r.clearAt = r.Threshold - r.Band
	}
	r.Hash = specHash(s)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return r, nil
}

// specHash fingerprints everything in a Spec that changes how the rule
// evaluates. Endpoints, bodies and publish actions are excluded: editing where
// and how a rule reports does not reset its state.
func specHash(s Spec) uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%q|%q|%q|", s.Topic, s.Value, s.Key)
	for _, f := range []*float64{s.Below, s.Above, s.Drop, s.Rise, s.Hysteresis} {
		if f == nil {
			fmt.Fprint(h, "-|")
		} else {
			fmt.Fprintf(h, "%v|", *f)
		}
	}
	for _, d := range []*time.Duration{s.Within, s.Stale, s.For, s.Cooldown} {
		if d == nil {
			fmt.Fprint(h, "-|")
		} else {
			fmt.Fprintf(h, "%d|", *d)
		}
	}
	for _, b := range []*bool{s.Forward, s.Level, s.Resolve, s.FireOnFirst} {
		fmt.Fprintf(h, "%v|", b != nil && *b)
	}
	if s.When != nil {
		fmt.Fprintf(h, "%q", *s.When)
	}
	return h.Sum64()
}
