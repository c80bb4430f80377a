package rules

import (
	"container/heap"
	"time"
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
	Reject   Reject // not OK: this rule could not read a value from the payload
}

// Engine evaluates messages against a Set: it matches topics, extracts values,
// keeps every series' State and the pending timers. It is pure (time comes in as
// arguments) and not safe for concurrent use: one goroutine owns it. The daemon's
// ingest loop and `edgehook test-rule` both drive an Engine, so they decide alike.
type Engine struct {
	set    *Set
	states map[SeriesKey]*State
	timers timerHeap
	dirty  map[SeriesKey]struct{}
	match  map[string][]*Rule // topic → matching rules; reset when it grows large
	buf    []*Rule
}

// maxMatchCache bounds the topic→rules cache.
const maxMatchCache = 4096

// NewEngine returns an Engine for set with no state.
func NewEngine(set *Set) *Engine {
	return &Engine{
		set:    set,
		states: map[SeriesKey]*State{},
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
	for _, r := range rs {
		e.eval(r, topic, payload, at, fn)
	}
}

func (e *Engine) eval(r *Rule, topic string, payload []byte, at time.Time, fn func(Result)) {
	res := Result{Rule: r, Series: topic, Topic: topic, Payload: payload}
	v, rej := Extract(payload, r.Value)
	if rej != OK {
		if r.Cond != Forward || !r.Value.IsZero() {
			res.Reject = rej
			fn(res)
			return
		}
		rej = OK // forward without a value path: any payload is forwarded
	} else {
		res.Value, res.HasValue = v, true
	}
	k := SeriesKey{Rule: r.Name, Series: res.Series}
	st := e.states[k]
	if st == nil {
		st = &State{}
		e.states[k] = st
	}
	res.Outcome = r.Eval(st, Reading{Topic: topic, Value: v, HasValue: res.HasValue, At: at, Payload: payload})
	e.dirty[k] = struct{}{}
	e.schedule(r, k, st)
	fn(res)
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
		out := r.Tick(st, now)
		e.dirty[t.key] = struct{}{}
		e.schedule(r, t.key, st)
		fn(Result{Rule: r, Series: t.key.Series, Topic: st.LastTopic, Outcome: out,
			Value: st.Last, HasValue: true, Payload: st.LastPayload})
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

func (e *Engine) schedule(r *Rule, k SeriesKey, st *State) {
	if d := r.Deadline(st); !d.IsZero() && !d.Equal(st.scheduled) {
		st.scheduled = d
		heap.Push(&e.timers, timer{at: d, key: k})
	}
}

// valid reports whether a heap entry still matches its series' current deadline
// (entries are not removed when a deadline changes; stale ones are skipped).
func (e *Engine) valid(t timer) bool {
	r, st := e.set.Rule(t.key.Rule), e.states[t.key]
	return r != nil && st != nil && r.Deadline(st).Equal(t.at)
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
