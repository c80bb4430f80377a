package rules

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 25, 7, 0, 0, 0, time.UTC)

func f64(v float64) *float64             { return &v }
func dur(d time.Duration) *time.Duration { return &d }
func yes() *bool                         { b := true; return &b }

func mustRule(t testing.TB, s Spec) *Rule {
	t.Helper()
	if s.Name == "" {
		s.Name = "r"
	}
	if s.Topic == "" {
		s.Topic = "t"
	}
	if s.Endpoints == nil {
		s.Endpoints = []string{"e"}
	}
	r, err := Compile(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// step is one reading (or a timer tick when tick is set) and the expected outcome.
type step struct {
	at    time.Duration
	v     float64
	tick  bool
	event Event
	why   Why
}

func run(t *testing.T, r *Rule, steps []step) {
	t.Helper()
	var st State
	for i, s := range steps {
		var out Outcome
		if s.tick {
			out = r.Tick(&st, t0.Add(s.at))
		} else {
			out = r.Eval(&st, Reading{Topic: "t", Value: s.v, HasValue: true, At: t0.Add(s.at)})
		}
		if out.Event != s.event || out.Why != s.why {
			t.Fatalf("step %d (at %v, v=%v, tick=%v): got %v/%v, want %v/%v", i, s.at, s.v, s.tick, out.Event, out.Why, s.event, s.why)
		}
	}
}

func TestBelowEdge(t *testing.T) {
	r := mustRule(t, Spec{Below: f64(18)})
	run(t, r, []step{
		{at: 0, v: 19, why: WhyClear},
		{at: 1, v: 17.9, event: Fired, why: WhyCrossed},
		{at: 2, v: 17, why: WhyActive},
		{at: 3, v: 18, why: WhyCleared}, // no hysteresis: 18 clears (not below 18)
		{at: 4, v: 17.5, event: Fired, why: WhyCrossed},
	})
}

func TestAboveHysteresis(t *testing.T) {
	r := mustRule(t, Spec{Above: f64(30), Hysteresis: f64(2), Resolve: yes()})
	run(t, r, []step{
		{at: 0, v: 25, why: WhyClear},
		{at: 1, v: 31, event: Fired, why: WhyCrossed},
		{at: 2, v: 29, why: WhyBand},
		{at: 3, v: 30.5, why: WhyActive}, // back above inside the band: no second fire
		{at: 4, v: 28.5, why: WhyBand},
		{at: 5, v: 28, event: Resolved, why: WhyResolved}, // <= 30 - 2
		{at: 6, v: 30.1, event: Fired, why: WhyCrossed},
	})
}

func TestBelowHysteresisChatter(t *testing.T) {
	r := mustRule(t, Spec{Below: f64(18), Hysteresis: f64(0.5)})
	run(t, r, []step{
		{at: 0, v: 19, why: WhyClear},
		{at: 1, v: 17.9, event: Fired, why: WhyCrossed},
		{at: 2, v: 18.1, why: WhyBand},
		{at: 3, v: 17.9, why: WhyActive},
		{at: 4, v: 18.4, why: WhyBand},
		{at: 5, v: 18.5, why: WhyCleared},
		{at: 6, v: 17.9, event: Fired, why: WhyCrossed},
	})
}

func TestFirstReading(t *testing.T) {
	r := mustRule(t, Spec{Below: f64(18), Resolve: yes()})
	run(t, r, []step{
		{at: 0, v: 10, why: WhyFirst},
		{at: 1, v: 9, why: WhyActive},
		{at: 2, v: 20, why: WhyCleared}, // nothing fired, so nothing to resolve
		{at: 3, v: 10, event: Fired, why: WhyCrossed},
	})
	r = mustRule(t, Spec{Below: f64(18), FireOnFirst: yes()})
	run(t, r, []step{{at: 0, v: 10, event: Fired, why: WhyCrossed}})
}

func TestForFiresOnTimer(t *testing.T) {
	r := mustRule(t, Spec{Below: f64(18), For: dur(2 * time.Minute)})
	var st State
	r.Eval(&st, Reading{Value: 19, At: t0})
	if out := r.Eval(&st, Reading{Value: 17, At: t0.Add(time.Minute)}); out.Why != WhyPending {
		t.Fatalf("got %v", out.Why)
	}
	d := r.Deadline(&st)
	if !d.Equal(t0.Add(3 * time.Minute)) {
		t.Fatalf("deadline %v", d)
	}
	if out := r.Tick(&st, d.Add(-time.Nanosecond)); out.Event != None {
		t.Fatalf("early tick fired: %+v", out)
	}
	out := r.Tick(&st, d.Add(time.Hour)) // a late tick (e.g. after a restart) reports the deadline
	if out.Event != Fired || out.Why != WhyHeld || !out.At.Equal(d) {
		t.Fatalf("tick: %+v", out)
	}
	if !r.Deadline(&st).IsZero() {
		t.Fatal("deadline still pending after firing")
	}
	if out := r.Tick(&st, d.Add(2*time.Hour)); out.Event != None {
		t.Fatalf("second tick fired: %+v", out)
	}
}

func TestForInterrupted(t *testing.T) {
	r := mustRule(t, Spec{Below: f64(18), Hysteresis: f64(1), For: dur(time.Minute)})
	m := time.Minute
	run(t, r, []step{
		{at: 0, v: 19.5, why: WhyClear},
		{at: 10 * time.Second, v: 17, why: WhyPending},
		{at: 50 * time.Second, v: 18.2, why: WhyClear}, // in the band but not below: restarts the wait
		{at: 70 * time.Second, tick: true},             // the old deadline is gone
		{at: 80 * time.Second, v: 17, why: WhyPending},
		{at: 80*time.Second + m, tick: true, event: Fired, why: WhyHeld},
	})
}

func TestForReachedByReading(t *testing.T) {
	r := mustRule(t, Spec{Below: f64(18), For: dur(time.Minute)})
	run(t, r, []step{
		{at: 0, v: 19, why: WhyClear},
		{at: time.Second, v: 17, why: WhyPending},
		{at: 61 * time.Second, v: 17, event: Fired, why: WhyCrossed}, // a reading past the deadline fires too
	})
}

func TestCooldown(t *testing.T) {
	r := mustRule(t, Spec{Below: f64(18), Cooldown: dur(10 * time.Minute), Resolve: yes()})
	m := time.Minute
	run(t, r, []step{
		{at: 0, v: 19, why: WhyClear},
		{at: m, v: 17, event: Fired, why: WhyCrossed},
		{at: 2 * m, v: 19, event: Resolved, why: WhyResolved},
		{at: 3 * m, v: 17, why: WhyCooldown}, // crossing consumed inside the cooldown
		{at: 4 * m, v: 19, why: WhyCleared},  // its clear does not resolve
		{at: 12 * m, v: 17, event: Fired, why: WhyCrossed},
	})
}

func TestLevel(t *testing.T) {
	r := mustRule(t, Spec{Below: f64(18), Level: yes(), Resolve: yes()})
	run(t, r, []step{
		{at: 0, v: 17, event: Fired, why: WhyLevel}, // level mode fires on the first reading too
		{at: 1, v: 16, event: Fired, why: WhyLevel},
		{at: 2, v: 20, event: Resolved, why: WhyResolved},
		{at: 3, v: 21, why: WhyClear},
		{at: 4, v: 10, event: Fired, why: WhyLevel},
	})
}

func TestLevelCooldown(t *testing.T) {
	r := mustRule(t, Spec{Above: f64(5), Level: yes(), Cooldown: dur(time.Minute)})
	run(t, r, []step{
		{at: 0, v: 6, event: Fired, why: WhyLevel},
		{at: 30 * time.Second, v: 7, why: WhyCooldown},
		{at: 60 * time.Second, v: 7, event: Fired, why: WhyLevel},
	})
}

func TestForward(t *testing.T) {
	r := mustRule(t, Spec{Forward: yes()})
	run(t, r, []step{
		{at: 0, v: 1, event: Fired, why: WhyForward},
		{at: 1, v: 1, event: Fired, why: WhyForward},
	})
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		key  string
	}{
		{"no condition", Spec{Name: "a", Topic: "t", Endpoints: []string{"e"}}, "name"},
		{"two conditions", Spec{Name: "a", Topic: "t", Below: f64(1), Above: f64(2), Endpoints: []string{"e"}}, "above"},
		{"bad topic", Spec{Name: "a", Topic: "a/#/b", Below: f64(1), Endpoints: []string{"e"}}, "topic"},
		{"negative hysteresis", Spec{Name: "a", Topic: "t", Below: f64(1), Hysteresis: f64(-1), Endpoints: []string{"e"}}, "hysteresis"},
		{"no endpoint", Spec{Name: "a", Topic: "t", Below: f64(1)}, "endpoints"},
		{"forward with for", Spec{Name: "a", Topic: "t", Forward: yes(), For: dur(1), Endpoints: []string{"e"}}, "for"},
		{"missing name", Spec{Topic: "t", Below: f64(1), Endpoints: []string{"e"}}, "name"},
		{"negative for", Spec{Name: "a", Topic: "t", Below: f64(1), For: dur(-1), Endpoints: []string{"e"}}, "for"},
	}
	for _, tt := range tests {
		_, err := Compile(tt.spec)
		if err == nil {
			t.Errorf("%s: accepted", tt.name)
			continue
		}
		var fe *FieldError
		if !errorsAs(err, &fe) || fe.Key != tt.key {
			t.Errorf("%s: error %v, want key %q", tt.name, err, tt.key)
		}
	}
}

func TestStateRoundTrip(t *testing.T) {
	r := mustRule(t, Spec{Below: f64(18), For: dur(time.Minute)})
	st := State{Seen: true, Held: false, Since: t0, LastAt: t0, Last: 17.25, LastTopic: "home/x/t", LastPayload: []byte(`{"t":17.25}`)}
	b := MarshalState(r, &st)
	got, hash, err := UnmarshalState(b)
	if err != nil || hash != r.Hash {
		t.Fatal(err, hash)
	}
	if !got.Since.Equal(st.Since) || got.Last != st.Last || string(got.LastPayload) != string(st.LastPayload) || got.LastTopic != st.LastTopic || !got.Seen {
		t.Fatalf("round trip: %+v", got)
	}
	// Without a pending timer the payload is not stored.
	st.Held = true
	got, _, _ = UnmarshalState(MarshalState(r, &st))
	if got.LastPayload != nil || !got.Held {
		t.Fatalf("payload kept without a timer: %+v", got)
	}
}

func FuzzUnmarshalState(f *testing.F) {
	r := &Rule{Cond: Below}
	f.Add(MarshalState(r, &State{Seen: true, LastTopic: "a", Since: t0, LastPayload: []byte("x")}))
	f.Fuzz(func(t *testing.T, b []byte) {
		UnmarshalState(b)
	})
}

func TestEvalDoesNotAllocate(t *testing.T) {
	r := mustRule(t, Spec{Below: f64(18), Hysteresis: f64(0.5)})
	var st State
	v := 0.0
	at := t0
	allocs := testing.AllocsPerRun(1000, func() {
		v = 35 - v
		at = at.Add(time.Second)
		r.Eval(&st, Reading{Value: v, At: at})
	})
	if allocs != 0 {
		t.Fatalf("Eval allocates %v times per reading", allocs)
	}
}
