package rules

import (
	"container/heap"
	"strconv"
	"time"
	"unicode/utf8"
)

// SeriesKey names the state of one rule for one series.
type SeriesKey struct {
	Rule   string
	Series string
}

// Result is one rule's evaluation of one message or timer.
type Result struct {
	Rule     *Rule
	Series   string
	Topic    string
	Outcome  Outcome
	Value    float64
	HasValue bool
	Payload  []byte
	Reject   Reject // not OK: this rule could not read the payload
	Detail   string // for a rejected `when` expression: expr's message
}

// MaxSeriesPerRule bounds the series one rule tracks: a `key` or a `+`
// filter fed by a hostile or broken publisher cannot grow memory without end.
const MaxSeriesPerRule = 10_000

// MaxSeriesLen bounds a series name (the topic, with its key): the state is
// stored under it, and the store refuses keys over 32 KiB. MQTT allows 64 KiB
// topics, so a longer one is a rejected reading, not a store that stops.
const MaxSeriesLen = 4096

// maxKeyLen bounds a `key` value.
const maxKeyLen = 256

// Engine evaluates messages against a Set: it matches topics, extracts values,
// keeps every series' State and the pending timers. It is pure (time comes in as
// arguments) and not safe for concurrent use: one goroutine owns it. The daemon's
// ingest loop and `edgehook test-rule` both drive an Engine, so they decide alike.
type Engine struct {
	set    *Set
	states map[SeriesKey]*State
	count  map[string]int // series per rule
	timers timerHeap
	dirty  map[SeriesKey]struct{}
	match  map[string][]*Rule // topic → matching rules; reset when it grows large
	buf    []*Rule
	hold   time.Time // stale timers do not fire before this
}

// maxMatchCache bounds the topic→rules cache.
const maxMatchCache = 4096

// NewEngine returns an Engine for set with no state.
func NewEngine(set *Set) *Engine {
	return &Engine{
		set:    set,
		states: map[SeriesKey]*State{},
		count:  map[string]int{},
		dirty:  map[SeriesKey]struct{}{},
		match:  map[string][]*Rule{},
	}
}

// Set returns the rules the engine evaluates.
func (e *Engine) Set() *Set { return e.set }

// Restore installs a persisted state, e.g. at start-up. States of rules that are
// not in the set are ignored.
func (e *Engine) Restore(k SeriesKey, st State) {
	r := e.set.Rule(k.Rule)
	if r == nil {
		return
	}
	s := st
	if e.states[k] == nil {
		e.count[k.Rule]++
	}
	e.states[k] = &s
	e.schedule(r, k, &s)
}

// State returns the state of a series, or nil.
func (e *Engine) State(k SeriesKey) *State { return e.states[k] }

// States calls fn for every series state (in no particular order).
func (e *Engine) States(fn func(SeriesKey, *State)) {
	for k, s := range e.states {
		fn(k, s)
	}
}

// HoldStale keeps `stale` timers from firing before until: while the broker
// connection is down, or just after it comes back and queued messages are
// still arriving, silence says nothing about the sensors. A zero until
// releases the hold.
func (e *Engine) HoldStale(until time.Time) {
	if until.Equal(e.hold) {
		return
	}
	e.hold = until
	for k, st := range e.states {
		if r := e.set.Rule(k.Rule); r != nil && r.Cond == Stale {
			st.scheduled = time.Time{}
			e.schedule(r, k, st)
		}
	}
}

// Feed evaluates one MQTT message received at time at against every matching
// rule and calls fn with each rule's result, in rule order. Timers due at or
// before at fire first (through fn), so results come in time order.
func (e *Engine) Feed(topic string, payload []byte, at time.Time, fn func(Result)) {
	e.Advance(at, fn)
	rs, ok := e.match[topic]
	if !ok {
		e.buf = e.set.Match(e.buf[:0], topic)
		rs = append([]*Rule(nil), e.buf...)
		if len(e.match) >= maxMatchCache {
			clear(e.match)
		}
		e.match[topic] = rs
	}
	var fields map[string]any // parsed once, for `when` rules
	fieldsRej := Reject(255)
	for _, r := range rs {
		res := Result{Rule: r, Series: topic, Topic: topic, Payload: payload}
		if !r.Key.IsZero() {
			k, rej := keyValue(payload, r.Key)
			if rej != OK {
				res.Reject = rej
				fn(res)
				continue
			}
			res.Series = topic + "[" + k + "]"
		}
		in := Reading{Topic: topic, At: at, Payload: payload}
		switch r.Cond {
		case Below, Above, Drop, Rise:
			v, rej := Extract(payload, r.Value)
			if rej != OK {
				res.Reject = rej
				fn(res)
				continue
			}
			in.Value, in.HasValue = v, true
		case When:
			if fieldsRej == 255 {
				fields, fieldsRej = payloadFields(payload)
			}
			if fieldsRej != OK {
				res.Reject = fieldsRej
				fn(res)
				continue
			}
			if name := r.missingField(fields); name != "" {
				res.Reject, res.Detail = Missing, name
				fn(res)
				continue
			}
			truth, err := r.evalExpr(fields)
			if err != nil {
				res.Reject, res.Detail = ExprError, err.Error()
				fn(res)
				continue
			}
			in.Truth = truth
			if v, rej := Extract(payload, r.Value); rej == OK && !r.Value.IsZero() {
				in.Value, in.HasValue = v, true
			}
		case Stale, Forward:
			v, rej := Extract(payload, r.Value)
			switch {
			case rej == OK:
				in.Value, in.HasValue = v, true
			case !r.Value.IsZero() || rej == InvalidUTF8 || r.Cond == Stale:
				// A value was asked for, the payload cannot go into JSON, or
				// this is stale: only a valid reading (a bare number when
				// there is no value path) is a sign of life.
				res.Reject = rej
				fn(res)
				continue
			}
		}
		res.Value, res.HasValue = in.Value, in.HasValue
		k := SeriesKey{Rule: r.Name, Series: res.Series}
		st := e.states[k]
		if st == nil {
			if len(res.Series) > MaxSeriesLen {
				res.Reject = SeriesTooLong
				fn(res)
				continue
			}
			if e.count[r.Name] >= MaxSeriesPerRule {
				res.Reject = TooManySeries
				fn(res)
				continue
			}
			st = &State{}
			e.states[k] = st
			e.count[r.Name]++
		}
		res.Outcome = r.Eval(st, in)
		e.dirty[k] = struct{}{}
		e.schedule(r, k, st)
		fn(res)
	}
}

// keyValue reads a `key`: a JSON string (without quotes) or number, at most
// maxKeyLen bytes of valid UTF-8.
func keyValue(payload []byte, p Path) (string, Reject) {
	raw := ValueAt(payload, p)
	if len(raw) == 0 {
		if !utf8.Valid(payload) {
			return "", InvalidUTF8
		}
		return "", Missing
	}
	var k string
	switch c := raw[0]; {
	case c == '"':
		s, err := strconv.Unquote(string(raw))
		if err != nil {
			// JSON escapes that Go's Unquote does not know (\/): decode as JSON.
			var ok bool
			if s, ok = unquoteJSON(raw); !ok {
				return "", Malformed
			}
		}
		k = s
	case c == '-' || (c >= '0' && c <= '9'):
		k = string(raw)
	default:
		return "", NotNumber
	}
	if k == "" || len(k) > maxKeyLen || !utf8.ValidString(k) {
		return "", Missing
	}
	return k, OK
}

// NextDeadline returns the earliest pending timer, or false when none is pending.
func (e *Engine) NextDeadline() (time.Time, bool) {
	for len(e.timers) > 0 {
		t := e.timers[0]
		if e.valid(t) {
			return t.at, true
		}
		heap.Pop(&e.timers)
	}
	return time.Time{}, false
}

// Advance fires every timer due at or before now, in deadline order, calling fn
// with each result.
func (e *Engine) Advance(now time.Time, fn func(Result)) {
	for len(e.timers) > 0 && !e.timers[0].at.After(now) {
		t := heap.Pop(&e.timers).(timer)
		if !e.valid(t) {
			continue
		}
		r, st := e.set.Rule(t.key.Rule), e.states[t.key]
		st.scheduled = time.Time{}
		out := r.Tick(st, now)
		e.dirty[t.key] = struct{}{}
		e.schedule(r, t.key, st)
		fn(Result{Rule: r, Series: t.key.Series, Topic: st.LastTopic, Outcome: out,
			Value: st.Last, HasValue: st.HasLast, Payload: st.LastPayload})
	}
}

// TakeDirty calls fn for every state changed since the last call and forgets them.
func (e *Engine) TakeDirty(fn func(SeriesKey, *State)) {
	for k := range e.dirty {
		if st := e.states[k]; st != nil {
			fn(k, st)
		}
	}
	clear(e.dirty)
}

// Swap replaces the rule set (a reload). The state of a rule whose definition
// (Hash) is unchanged is kept; states of changed or removed rules are dropped.
// It returns the keys whose state was dropped, so the caller can delete them.
func (e *Engine) Swap(set *Set) []SeriesKey {
	var dropped []SeriesKey
	for k := range e.states {
		old, nu := e.set.Rule(k.Rule), set.Rule(k.Rule)
		if nu == nil || old == nil || nu.Hash != old.Hash {
			dropped = append(dropped, k)
			delete(e.states, k)
			delete(e.dirty, k)
			e.count[k.Rule]--
		}
	}
	e.set = set
	clear(e.match)
	e.timers = e.timers[:0]
	for k, st := range e.states {
		st.scheduled = time.Time{}
		e.schedule(set.Rule(k.Rule), k, st)
	}
	return dropped
}

// due is a series' deadline with the stale hold applied.
func (e *Engine) due(r *Rule, st *State) time.Time {
	d := r.Deadline(st)
	if r.Cond == Stale && !d.IsZero() && d.Before(e.hold) {
		return e.hold
	}
	return d
}

func (e *Engine) schedule(r *Rule, k SeriesKey, st *State) {
	if d := e.due(r, st); !d.IsZero() && !d.Equal(st.scheduled) {
		st.scheduled = d
		heap.Push(&e.timers, timer{at: d, key: k})
	}
}

// valid reports whether a heap entry still matches its series' current deadline
// (entries are not removed when a deadline changes; stale ones are skipped).
func (e *Engine) valid(t timer) bool {
	r, st := e.set.Rule(t.key.Rule), e.states[t.key]
	return r != nil && st != nil && e.due(r, st).Equal(t.at)
}

type timer struct {
	at  time.Time
	key SeriesKey
}

type timerHeap []timer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h timerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)        { *h = append(*h, x.(timer)) }
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}
