package rules

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// Readings per second per core: run with -cpu 1.
//
//	go test -run '^$' -bench . -benchmem -cpu 1 ./rules

func benchRule(b *testing.B, s Spec) *Rule {
	s.Name, s.Topic, s.Endpoints = "r", "home/+/t", []string{"e"}
	r, err := Compile(s)
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// Eval alone: the decision for one reading whose value is already extracted.
func BenchmarkEvalThreshold(b *testing.B) {
	r := benchRule(b, Spec{Below: f64(18), Hysteresis: f64(0.5)})
	var st State
	at := t0
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		at = at.Add(time.Second)
		r.Eval(&st, Reading{Value: float64(10 + i%20), At: at, HasValue: true})
	}
}

func BenchmarkEvalDropWithin(b *testing.B) {
	r := benchRule(b, Spec{Drop: f64(3), Within: dur(10 * time.Minute)})
	var st State
	at := t0
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		at = at.Add(time.Second)
		r.Eval(&st, Reading{Value: float64(20 + (i*7)%11), At: at, HasValue: true})
	}
}

// Feed: the whole path for one MQTT message: topic match, JSON value
// extraction (or expression), evaluation, state bookkeeping.
func benchFeed(b *testing.B, s Spec, payloads [][]byte) {
	r := benchRule(b, s)
	set, _ := NewSet([]*Rule{r})
	e := NewEngine(set)
	at := t0
	fn := func(Result) {}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		at = at.Add(time.Second)
		e.Feed("home/living/t", payloads[i%len(payloads)], at, fn)
		if i%1024 == 0 {
			e.TakeDirty(func(SeriesKey, *State) {})
		}
	}
}

func BenchmarkFeedThreshold(b *testing.B) {
	benchFeed(b, Spec{Value: "temperature", Below: f64(18), Hysteresis: f64(0.5)},
		[][]byte{[]byte(`{"temperature": 17.5, "humidity": 40, "battery": 98}`), []byte(`{"temperature": 19.5, "humidity": 41, "battery": 98}`)})
}

func BenchmarkFeedDropWithin(b *testing.B) {
	benchFeed(b, Spec{Value: "temperature", Drop: f64(3), Within: dur(10 * time.Minute)},
		[][]byte{[]byte(`{"temperature": 21.5, "humidity": 40}`), []byte(`{"temperature": 17.0, "humidity": 41}`), []byte(`{"temperature": 20.0, "humidity": 42}`)})
}

func BenchmarkFeedWhen(b *testing.B) {
	benchFeed(b, Spec{When: strp("contact == false && battery > 10")},
		[][]byte{[]byte(`{"contact": false, "battery": 90, "linkquality": 120}`), []byte(`{"contact": true, "battery": 90, "linkquality": 120}`)})
}

// TestMemoryPerSeries reports the heap held per series (threshold and drop
// rules); it is a measurement, not a limit: -v prints it.
func TestMemoryPerSeries(t *testing.T) {
	for _, c := range []struct {
		name string
		spec Spec
	}{{"threshold", Spec{Value: "t", Below: f64(18)}}, {"drop-within", Spec{Value: "t", Drop: f64(3), Within: dur(10 * time.Minute)}}} {
		r := mustRule(t, c.spec)
		r.Filter, _ = ParseFilter("s/+")
		set, _ := NewSet([]*Rule{r})
		e := NewEngine(set)
		const n = 5000
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := 0; i < n; i++ {
			topic := fmt.Sprintf("s/sensor-%05d", i)
			for k := 0; k < 3; k++ {
				e.Feed(topic, []byte(fmt.Sprintf(`{"t": %d}`, 20-k)), t0.Add(time.Duration(k)*time.Minute), func(Result) {})
			}
		}
		e.TakeDirty(func(SeriesKey, *State) {})
		runtime.GC()
		runtime.ReadMemStats(&after)
		t.Logf("%s: %d bytes of heap per series (%d series, payloads included)", c.name, (after.HeapAlloc-before.HeapAlloc)/n, n)
		runtime.KeepAlive(e)
	}
}
