package rules

import "time"

// Sample is one reading kept in a drop/rise window.
type Sample struct {
	At time.Time
	V  float64
}

// window keeps what a drop (rise) rule needs of its trailing window: the
// readings that could still be the window's maximum (minimum), in time order
// and decreasing (increasing) value — a monotonic queue. A reading that is
// out-valued by a newer one can never be the extreme again and is dropped, so
// a steady series keeps one or two samples. At most windowCap samples are
// kept; past that the oldest is dropped (only a long, strictly monotonic run
// of more than windowCap readings within the window reaches the cap).
//
// push returns the extreme over [at-within, at], the new reading included.
func pushWindow(w []Sample, s Sample, within time.Duration, keepMax bool) ([]Sample, float64) {
	for len(w) > 0 {
		last := w[len(w)-1].V
		if (keepMax && last <= s.V) || (!keepMax && last >= s.V) {
			w = w[:len(w)-1]
			continue
		}
		break
	}
	w = append(w, s)
	cut := s.At.Add(-within)
	drop := 0
	for drop < len(w)-1 && w[drop].At.Before(cut) {
		drop++
	}
	if len(w)-drop > windowCap {
		drop = len(w) - windowCap
	}
	if drop > 0 {
		w = append(w[:0], w[drop:]...)
	}
	return w, w[0].V
}
