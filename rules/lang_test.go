package rules

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestWindowStaysSmallAndBounded(t *testing.T) {
	var w []Sample
	// A steady or rising series keeps one sample for a max-window.
	for i := 0; i < 1000; i++ {
		w, _ = pushWindow(w, Sample{At: t0.Add(time.Duration(i) * time.Second), V: float64(i)}, time.Hour, true)
	}
	if len(w) != 1 {
		t.Fatalf("rising series keeps %d samples", len(w))
	}
	// A strictly falling series inside the window is capped.
	w = nil
	var max float64
	for i := 0; i < 5000; i++ {
		w, max = pushWindow(w, Sample{At: t0.Add(time.Duration(i) * time.Millisecond), V: -float64(i)}, time.Hour, true)
	}
	if len(w) != windowCap {
		t.Fatalf("falling series keeps %d samples, cap %d", len(w), windowCap)
	}
	if max != -float64(5000-windowCap) {
		t.Fatalf("max %v", max)
	}
	// Old samples leave the window.
	w, max = pushWindow(w, Sample{At: t0.Add(2 * time.Hour), V: -10000}, time.Hour, true)
	if len(w) != 1 || max != -10000 {
		t.Fatalf("after the window passed: %d samples, max %v", len(w), max)
	}
}

func TestTemplates(t *testing.T) {
	tpl, err := ParseTemplate("body", `{"room": {{ json (topicPart 1) }}, "t": {{ round 1 .Value }}, "raw": {{ json .Payload }}, "p2": {{ json (topicPart 2 "a/b/c") }}}`)
	if err != nil {
		t.Fatal(err)
	}
	d := &EventData{Topic: "home/living/temperature", Value: 17.456, Payload: map[string]any{"t": 17.456}}
	got, err := tpl.Render(d)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != `{"room": "living", "t": 17.5, "raw": {"t":17.456}, "p2": "c"}` {
		t.Fatalf("rendered %s", got)
	}
	// Rendering for another topic uses that topic (no leak between events).
	d.Topic = "home/kitchen/temperature"
	if got, _ := tpl.Render(d); !strings.Contains(string(got), `"kitchen"`) {
		t.Fatalf("topicPart not bound per event: %s", got)
	}
	for _, bad := range []string{`{{ .Nope }}`, `{{ round 1 .Value }}`} {
		tp, err := ParseTemplate("x", bad)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tp.Render(&EventData{}); err == nil {
			t.Errorf("%s rendered without error", bad)
		}
	}
	if _, err := ParseTemplate("x", "{{ shout .Value }}"); err == nil || !strings.Contains(err.Error(), `line 1: function "shout" not defined`) {
		t.Errorf("unknown function: %v", err)
	}
}

func TestExprCompile(t *testing.T) {
	for _, src := range []string{"contact == false", "temperature < 18 && window == 'closed'", "len(name) > 2", "a.b > 1 or c"} {
		if _, _, err := compileExpr(src); err != nil {
			t.Errorf("%q: %v", src, err)
		}
	}
	// The fields an expression reads: top-level names, not let-bound names,
	// closure pointers or member names.
	for src, want := range map[string]string{
		"temperature < 18 && window == 'closed'": "[temperature window]",
		"let limit = 18; t < limit":              "[t]",
		"all(items, {# > 1}) && a.b == 2":        "[a items]",
		"true":                                   "[]",
	} {
		_, fields, err := compileExpr(src)
		if got := fmt.Sprint(fields); err != nil || got != want {
			t.Errorf("%q reads %s (%v), want %s", src, got, err, want)
		}
	}
	for src, want := range map[string]string{
		"":               "empty expression",
		"temperature <":  "unexpected token EOF",
		"shout(x) > 1":   `unknown function "shout"`,
		"1 + 1":          "expected bool",
		"temperature<<2": "",
		strings.Repeat("(", 3000) + "t < 1" + strings.Repeat(")", 3000): "longer than 4096 bytes",
	} {
		_, _, err := compileExpr(src)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", src, err, want)
		}
	}
}

// A topic over MaxSeriesLen is a rejected reading (the store could not keep
// its state), and it leaves no series behind.
func TestSeriesTooLong(t *testing.T) {
	r := mustRule(t, Spec{Name: "r", Topic: "t/+/temp", Below: f64(18), FireOnFirst: yes()})
	set, _ := NewSet([]*Rule{r})
	e := NewEngine(set)
	long := "t/" + strings.Repeat("x", MaxSeriesLen) + "/temp"
	var got []Reject
	e.Feed(long, []byte("10"), t0, func(res Result) { got = append(got, res.Reject) })
	e.Feed("t/ok/temp", []byte("10"), t0, func(res Result) { got = append(got, res.Reject) })
	if fmt.Sprint(got) != "[series_too_long ok]" || len(e.states) != 1 {
		t.Fatalf("got %v, %d series", got, len(e.states))
	}
}

func TestSeriesCap(t *testing.T) {
	r := mustRule(t, Spec{Name: "k", Topic: "t", Key: "id", Value: "v", Below: f64(1)})
	set, _ := NewSet([]*Rule{r})
	e := NewEngine(set)
	rejected := 0
	for i := 0; i < MaxSeriesPerRule+10; i++ {
		e.Feed("t", []byte(fmt.Sprintf(`{"id": %d, "v": 5}`, i)), t0, func(res Result) {
			if res.Reject == TooManySeries {
				rejected++
			}
		})
	}
	if rejected != 10 {
		t.Fatalf("%d rejected past the cap", rejected)
	}
}

func TestHoldStale(t *testing.T) {
	r := mustRule(t, Spec{Name: "s", Topic: "t", Stale: dur(time.Minute)})
	set, _ := NewSet([]*Rule{r})
	e := NewEngine(set)
	e.Feed("t", []byte("1"), t0, func(Result) {})
	e.HoldStale(t0.Add(10 * time.Minute)) // e.g. the broker connection is down
	fired := 0
	e.Advance(t0.Add(5*time.Minute), func(res Result) { fired += int(res.Outcome.Event) })
	if fired != 0 {
		t.Fatal("stale fired during the hold")
	}
	if d, _ := e.NextDeadline(); !d.Equal(t0.Add(10 * time.Minute)) {
		t.Fatalf("next deadline %v", d)
	}
	e.HoldStale(time.Time{})
	e.Advance(t0.Add(5*time.Minute), func(res Result) {
		if res.Outcome.Event == Fired && res.Outcome.At.Equal(t0.Add(time.Minute)) {
			fired++
		}
	})
	if fired != 1 {
		t.Fatal("stale did not fire once the hold was released")
	}
}

func TestCompileConditionErrors(t *testing.T) {
	tests := []struct {
		spec Spec
		key  string
	}{
		{Spec{Drop: f64(3)}, "drop"},                              // no within
		{Spec{Drop: f64(-3), Within: dur(time.Minute)}, "drop"},   // not positive
		{Spec{Below: f64(1), Within: dur(time.Minute)}, "within"}, // within only for drop/rise
		{Spec{Stale: dur(time.Minute), Level: yes()}, "level"},    // level not for stale
		{Spec{When: strp("x >")}, "when"},                         // syntax
		{Spec{Rise: f64(1), Within: dur(1), FireOnFirst: yes()}, "fire_on_first"},
		{Spec{Below: f64(1), Body: strp("{{ .X ")}, "body"},
		{Spec{Below: f64(1), Publish: []PublishSpec{{Topic: "a/#"}}}, "publish.topic"},
		{Spec{Below: f64(1), Publish: []PublishSpec{{Topic: "a", QoS: intp(3)}}}, "publish.qos"},
	}
	for _, tt := range tests {
		s := tt.spec
		s.Name, s.Topic, s.Endpoints = "r", "t", []string{"e"}
		_, err := Compile(s)
		var fe *FieldError
		if err == nil || !errorsAs(err, &fe) || fe.Key != tt.key {
			t.Errorf("%+v: %v, want key %q", tt.spec, err, tt.key)
		}
	}
}

// body = "" (PRODUCT.md's example) is the default envelope, not a template
// that renders nothing.
func TestEmptyBodyIsTheEnvelope(t *testing.T) {
	for _, body := range []string{"", "  \n"} {
		r := mustRule(t, Spec{Name: "r", Topic: "t", Below: f64(1), Endpoints: []string{"e"}, Body: strp(body)})
		if r.Body != nil {
			t.Errorf("body %q compiled to a template", body)
		}
	}
}

func strp(s string) *string { return &s }
func intp(i int) *int       { return &i }

func FuzzExpr(f *testing.F) {
	f.Add("contact == false", []byte(`{"contact": false}`))
	f.Add("temperature < 18 && window == 'closed'", []byte(`{"temperature": 17, "window": "closed"}`))
	f.Add("len(a) > 2 || b in [1, 2]", []byte(`{"a": "xyz", "b": 2}`))
	f.Add("a.b.c == nil", []byte(`{"a": {"b": {}}}`))
	f.Fuzz(func(t *testing.T, src string, payload []byte) {
		if len(src) > 500 {
			return
		}
		p, names, err := compileExpr(src)
		if err != nil {
			return
		}
		r := &Rule{prog: p, exprFields: names}
		fields, rej := payloadFields(payload)
		if rej == OK && r.missingField(fields) == "" {
			r.evalExpr(fields)
		}
	})
}

func FuzzTemplate(f *testing.F) {
	f.Add(`{"v": {{ round 2 .Value }}, "room": {{ json (topicPart 1) }}}`, "home/a/t")
	f.Add(`{{ json .Payload }}`, "x")
	f.Fuzz(func(t *testing.T, src, topic string) {
		if len(src) > 500 || strings.Contains(src, "range") || strings.Contains(src, "template") {
			return // bounded loops only; a template cannot call itself from rule configs by accident
		}
		tp, err := ParseTemplate("f", src)
		if err != nil {
			return
		}
		tp.Render(&EventData{Topic: topic, Value: 1.5, Payload: map[string]any{"a": 1}})
	})
}

// Objects and arrays render as JSON, a null is an error naming the field
// (never "<no value>"), and the json helper still encodes null as null.
func TestTemplateJSONValues(t *testing.T) {
	payload := map[string]any{"o": map[string]any{"a": 1.0}, "l": []any{1.0, "x"}, "n": nil, "s": "v"}
	for src, want := range map[string]string{
		`{{ .Payload.o }} {{ .Payload.l }} {{ .Payload.s }} {{ .Payload.o.a }} {{ index .Payload.l 1 }}`: `{"a":1} [1,"x"] v 1 x`,
		`{{ json .Payload.n }} {{ json .Payload }}`:                                                      `null {"l":[1,"x"],"n":null,"o":{"a":1},"s":"v"}`,
		`{{ .Payload.n }}`:         `error: field "n" is null`,
		`{{ round 1 .Payload.n }}`: `error`,
		`{{ .Payload.missing }}`:   `error`,
	} {
		tp, err := ParseTemplate("t", src)
		if err != nil {
			t.Fatal(err)
		}
		out, err := tp.Render(&EventData{Payload: payload})
		got := string(out)
		if err != nil {
			got = "error"
			if strings.HasPrefix(want, "error:") {
				got = "error: " + err.Error()
			}
		}
		if got != want {
			t.Errorf("%s: got %q, want %q", src, got, want)
		}
	}
}
