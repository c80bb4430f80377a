package rules

import (
	"fmt"
	"strconv"
	"time"
)

// Explain says in words what an outcome means for rule r, given the series
// state after it and the reading's value (if any). `edgehook test-rule` prints it.
func (r *Rule) Explain(o Outcome, st *State, v float64, hasV bool) string {
	val := "-"
	if hasV {
		val = num(v)
	}
	cond := r.condText()
	switch o.Why {
	case WhyCrossed:
		return fmt.Sprintf("FIRED: %s (value %s)", cond, val)
	case WhyLevel:
		return fmt.Sprintf("FIRED: %s (value %s; level mode fires on every such reading)", cond, val)
	case WhyHeld:
		return fmt.Sprintf("FIRED: %s held for %v", cond, r.For)
	case WhyForward:
		return "FIRED: forwarded"
	case WhyStale:
		return fmt.Sprintf("FIRED: no valid reading for %v (last at %s)", r.StaleFor, st.LastAt.UTC().Format(time.RFC3339))
	case WhyFirst:
		return fmt.Sprintf("no event: first reading of this series and %s already; it starts active without firing (fire_on_first = true changes that)", cond)
	case WhyPending:
		return fmt.Sprintf("no event yet: %s since %s; fires at %s unless that changes (for = %v)",
			cond, st.Since.UTC().Format(time.RFC3339), st.Since.Add(r.For).UTC().Format(time.RFC3339), r.For)
	case WhyActive:
		return fmt.Sprintf("no event: %s still; it already fired", cond)
	case WhyBand:
		return fmt.Sprintf("no event: inside the hysteresis band (clears at %s %s)", r.clearDir(), num(r.clearAt))
	case WhyClear:
		return fmt.Sprintf("no event: not %s", cond)
	case WhyResolved:
		return fmt.Sprintf("RESOLVED: no longer %s (value %s)", cond, val)
	case WhyCleared:
		if r.Resolve {
			return fmt.Sprintf("cleared: no longer %s (no resolve event: nothing was fired for it)", cond)
		}
		return fmt.Sprintf("cleared: no longer %s (resolve = false)", cond)
	case WhyCooldown:
		return fmt.Sprintf("suppressed: %s, but the cooldown of %v runs until %s", cond, r.Cooldown,
			st.LastFired.Add(r.Cooldown).UTC().Format(time.RFC3339))
	case WhyAlive:
		return fmt.Sprintf("no event: a sign of life (stale after %v of silence)", r.StaleFor)
	}
	return "no event"
}

func (r *Rule) condText() string {
	switch r.Cond {
	case Below:
		return "below " + num(r.Threshold)
	case Above:
		return "above " + num(r.Threshold)
	case Drop:
		return fmt.Sprintf("dropped %s below the highest reading of the last %v", num(r.Threshold), r.Within)
	case Rise:
		return fmt.Sprintf("rose %s above the lowest reading of the last %v", num(r.Threshold), r.Within)
	case When:
		return "`" + r.Expr + "` is true"
	case Stale:
		return fmt.Sprintf("silent for %v", r.StaleFor)
	}
	return "forwarded"
}

func (r *Rule) clearDir() string {
	if r.Cond == Below {
		return ">="
	}
	return "<="
}

func num(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
