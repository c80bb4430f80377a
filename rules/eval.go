package rules

import (
	"time"
)

// Reading is one valid value of one series at one time.
type Reading struct {
	Topic    string
	Value    float64
	HasValue bool // false when the rule has no number to read (forward, stale, when)
	At       time.Time
	Payload  []byte // the raw MQTT payload; referenced by State, never modified
	Truth    bool   // when: the expression's result (the Engine computes it)
}

// State is the memory of one rule for one series. Its zero value is ready for
// the first reading. The caller persists it; Eval and Tick mutate it in place.
type State struct {
	Seen      bool      // a valid reading has been seen
	Active    bool      // the condition is established (crossed and not yet cleared)
	Fired     bool      // this active period produced a Fired outcome (so a clear may resolve)
	Held      bool      // the current run of the condition has lasted at least For
	HasLast   bool      // Last is a number
	Since     time.Time // start of the current uninterrupted run of the condition; zero if it does not hold
	LastFired time.Time // for cooldown
	LastAt    time.Time // time of the last valid reading
	Last      float64   // the last valid value
	LastTopic string    // topic of the last valid reading
	// LastPayload is the payload of the last valid reading, referenced (not copied)
	// so that a timer firing can report it.
	LastPayload []byte
	// Window holds the drop/rise samples that can still be the window's extreme.
	Window []Sample

	scheduled time.Time // the deadline an Engine has queued a timer for
}

// Event is what an evaluation produced.
type Event uint8

// Events.
const (
	None Event = iota
	Fired
	Resolved
)

func (e Event) String() string {
	switch e {
	case Fired:
		return "rule.fired"
	case Resolved:
		return "rule.resolved"
	}
	return "none"
}

// Why says what an evaluation decided and why, for people (test-rule, debug logs).
type Why uint8

// Reasons. See Explain for the wording.
const (
	WhyNone     Why = iota
	WhyCrossed      // fired: the condition became true
	WhyLevel        // fired: level mode, the condition holds
	WhyHeld         // fired: the `for` wait ended (timer)
	WhyForward      // fired: forward rule
	WhyFirst        // first reading: state set without firing
	WhyPending      // the condition holds, waiting for `for`
	WhyActive       // the condition still holds, already fired
	WhyBand         // inside the hysteresis band
	WhyClear        // the condition does not hold
	WhyResolved     // resolved: cleared (past the hysteresis band)
	WhyCleared      // cleared (no resolve event: resolve off, or nothing fired)
	WhyCooldown     // the condition was met but the cooldown suppressed the firing
	WhyStale        // fired: silent for `stale`
	WhyAlive        // stale rule: a sign of life
)

var whyNames = [...]string{"", "crossed", "level", "held", "forward", "first", "pending", "active", "band", "clear",
	"resolved", "cleared", "cooldown", "stale", "alive"}

// String returns a short name for the reason ("crossed", "pending", "cooldown", …).
func (w Why) String() string {
	if int(w) < len(whyNames) {
		return whyNames[w]
	}
	return "unknown"
}

// Outcome is the result of Eval or Tick.
type Outcome struct {
	Event Event
	Why   Why
	At    time.Time // the time the outcome refers to: the reading's, or the deadline's for a timer
}

// breach reports whether v satisfies a below/above threshold.
func (r *Rule) breach(v float64) bool {
	if r.Cond == Below {
		return v < r.Threshold
	}
	return v > r.Threshold
}

// cleared reports whether v is past the hysteresis band.
func (r *Rule) cleared(v float64) bool {
	if r.Cond == Below {
		return v >= r.clearAt
	}
	return v <= r.clearAt
}

// ClearAt returns the value at which an active below/above rule clears.
func (r *Rule) ClearAt() float64 { return r.clearAt }

// Eval applies one valid reading to the series state. It does no I/O and
// reads no clock; on the below/above path it does not allocate.
func (r *Rule) Eval(st *State, in Reading) Outcome {
	first := !st.Seen
	st.Seen = true
	st.LastAt = in.At
	st.LastTopic = in.Topic
	st.LastPayload = in.Payload
	st.Last, st.HasLast = in.Value, in.HasValue

	var holds, clears bool
	switch r.Cond {
	case Forward:
		return r.fire(st, in.At, WhyForward)
	case Stale:
		if st.Active {
			return r.clear(st, in.At) // it reported again
		}
		return Outcome{Why: WhyAlive, At: in.At}
	case Below, Above:
		holds, clears = r.breach(in.Value), r.cleared(in.Value)
	case Drop:
		var max float64
		st.Window, max = pushWindow(st.Window, Sample{At: in.At, V: in.Value}, r.Within, true)
		holds = in.Value <= max-r.Threshold
		clears = !holds
	case Rise:
		var min float64
		st.Window, min = pushWindow(st.Window, Sample{At: in.At, V: in.Value}, r.Within, false)
		holds = in.Value >= min+r.Threshold
		clears = !holds
	case When:
		holds, clears = in.Truth, !in.Truth
	}

	if !holds {
		st.Since, st.Held = time.Time{}, false
	} else if st.Since.IsZero() {
		st.Since, st.Held = in.At, r.For == 0
	}
	if holds && !st.Held && !in.At.Before(st.Since.Add(r.For)) {
		st.Held = true
	}

	if st.Active {
		switch {
		case clears:
			return r.clear(st, in.At)
		case holds && r.Level && st.Held:
			return r.fire(st, in.At, WhyLevel)
		case holds && r.Level:
			return Outcome{Why: WhyPending, At: in.At}
		case holds:
			return Outcome{Why: WhyActive, At: in.At}
		default:
			return Outcome{Why: WhyBand, At: in.At}
		}
	}
	switch {
	case !holds:
		return Outcome{Why: WhyClear, At: in.At}
	case first && !r.FireFirst && !r.Level:
		// No change was observed: the series starts out active, silently.
		st.Active, st.Held, st.Fired = true, true, false
		return Outcome{Why: WhyFirst, At: in.At}
	case !st.Held:
		return Outcome{Why: WhyPending, At: in.At}
	}
	st.Active, st.Fired = true, false
	if r.Level {
		return r.fire(st, in.At, WhyLevel)
	}
	return r.fire(st, in.At, WhyCrossed)
}

// Deadline returns when Tick must next be called for this series, or the zero
// time when no timer is pending.
func (r *Rule) Deadline(st *State) time.Time {
	switch r.Cond {
	case Stale:
		if st.Seen && !st.Active {
			return st.LastAt.Add(r.StaleFor)
		}
	case Forward:
	default:
		if r.For > 0 && !st.Active && !st.Since.IsZero() && !st.Held {
			return st.Since.Add(r.For)
		}
	}
	return time.Time{}
}

// Tick fires a pending timer whose deadline is at or before now. The outcome's At
// is the deadline, so a restart long after a deadline reports when it was due.
// Calling Tick early, or with nothing pending, returns an empty Outcome.
func (r *Rule) Tick(st *State, now time.Time) Outcome {
	d := r.Deadline(st)
	if d.IsZero() || now.Before(d) {
		return Outcome{}
	}
	st.Active, st.Fired = true, false
	if r.Cond == Stale {
		return r.fire(st, d, WhyStale)
	}
	st.Held = true
	return r.fire(st, d, WhyHeld)
}

// fire emits Fired unless the cooldown suppresses it.
func (r *Rule) fire(st *State, at time.Time, why Why) Outcome {
	if r.Cooldown > 0 && !st.LastFired.IsZero() && at.Before(st.LastFired.Add(r.Cooldown)) {
		return Outcome{Why: WhyCooldown, At: at}
	}
	st.LastFired = at
	st.Fired = true
	return Outcome{Event: Fired, Why: why, At: at}
}

// clear ends an active period, resolving if a fire was sent and resolve is on.
func (r *Rule) clear(st *State, at time.Time) Outcome {
	fired := st.Fired
	st.Active, st.Fired = false, false
	if fired && r.Resolve {
		return Outcome{Event: Resolved, Why: WhyResolved, At: at}
	}
	return Outcome{Why: WhyCleared, At: at}
}
