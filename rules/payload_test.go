package rules

import (
	"math"
	"strings"
	"testing"
)

func TestExtract(t *testing.T) {
	tests := []struct {
		name    string
		path    string
		payload string
		want    float64
		reject  Reject
	}{
		{"bare number", "", "17.4", 17.4, OK},
		{"bare with spaces", "", " 17.4\n", 17.4, OK},
		{"bare negative exp", "", "-1.5e1", -15, OK},
		{"bare quoted", "", `"21.5"`, 21.5, OK},
		{"field", "temperature", `{"temperature": 17.4, "seq": 41}`, 17.4, OK},
		{"nested", "sensor.temp", `{"sensor": {"temp": -3}}`, -3, OK},
		{"array index", "readings.1", `{"readings": [1, 2, 3]}`, 2, OK},
		{"array brackets", "r[0].v", `{"r": [{"v": 5}]}`, 5, OK},
		{"numeric string field", "t", `{"t": "19.25"}`, 19.25, OK},
		{"escaped key", "t", `{"\u0074": 4}`, 4, OK},
		{"malformed json", "t", `{"t": 1`, 0, Malformed},
		{"trailing garbage", "t", `{"t": 1} x`, 0, Malformed},
		{"empty payload", "t", ``, 0, Malformed},
		{"empty bare", "", ``, 0, Malformed},
		{"hot", "t", `{"t": "hot"}`, 0, NotNumber},
		{"bare hot", "", `hot`, 0, Malformed},
		{"bare quoted hot", "", `"hot"`, 0, NotNumber},
		{"null", "t", `{"t": null}`, 0, NotNumber},
		{"bare null", "", `null`, 0, NotNumber},
		{"bool", "t", `{"t": true}`, 0, NotNumber},
		{"object", "t", `{"t": {}}`, 0, NotNumber},
		{"array", "t", `{"t": [1]}`, 0, NotNumber},
		{"missing", "t", `{"u": 1}`, 0, Missing},
		{"missing nested", "a.b", `{"a": 1}`, 0, Missing},
		{"index out of range", "a.5", `{"a": [1]}`, 0, Missing},
		{"NaN string", "t", `{"t": "NaN"}`, 0, NonFinite},
		{"Infinity string", "t", `{"t": "-Infinity"}`, 0, NonFinite},
		{"bare NaN", "", `NaN`, 0, NonFinite},
		{"bare inf", "", `+inf`, 0, NonFinite},
		{"out of range", "t", `{"t": 1e999}`, 0, OutOfRange},
		{"bare out of range", "", `-1e400`, 0, OutOfRange},
		{"hex is not JSON", "", `0x1p-2`, 0, Malformed},
		{"underscore is not JSON", "", `1_000`, 0, Malformed},
		{"leading zero", "", `01`, 0, Malformed},
		{"duplicate key", "t", `{"t": 1, "t": 99}`, 0, Malformed},
		{"case variant is another key", "t", `{"T": 1}`, 0, Missing},
		{"invalid utf8", "t", "{\"t\": 1, \"x\": \"\xff\"}", 0, InvalidUTF8},
		{"bare invalid utf8", "", "1\xff", 0, InvalidUTF8},
		{"negative zero", "", "-0", 0, OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePath(tt.path)
			if err != nil {
				t.Fatal(err)
			}
			got, rej := Extract([]byte(tt.payload), p)
			if rej != tt.reject || (rej == OK && got != tt.want) {
				t.Errorf("Extract(%q, %q) = %v, %v; want %v, %v", tt.payload, tt.path, got, rej, tt.want, tt.reject)
			}
		})
	}
}

func TestExtractDeepNesting(t *testing.T) {
	deep := strings.Repeat("[", 10000) + strings.Repeat("]", 10000)
	p, _ := ParsePath("t")
	if _, rej := Extract([]byte(deep), p); rej == OK {
		t.Fatal("deeply nested array accepted as a reading")
	}
}

func TestExtractDoesNotAllocate(t *testing.T) {
	p, _ := ParsePath("temperature")
	payload := []byte(`{"temperature": 17.4, "seq": 41}`)
	allocs := testing.AllocsPerRun(100, func() { Extract(payload, p) })
	if allocs != 0 {
		t.Fatalf("Extract allocates %v times per call", allocs)
	}
}

func TestParsePath(t *testing.T) {
	for _, bad := range []string{".", "a..b", "a.", "[0]x["} {
		if _, err := ParsePath(bad); err == nil {
			t.Errorf("ParsePath(%q) accepted", bad)
		}
	}
}

func FuzzExtract(f *testing.F) {
	for _, s := range []string{`{"t": 1}`, `17.4`, `{"t": "NaN"}`, `{"t": 1e999}`, `{"a":{"t":[1,2]}}`, `"5"`, `{"t":1,"t":2}`, "\xff"} {
		f.Add([]byte(s), "t")
		f.Add([]byte(s), "")
		f.Add([]byte(s), "a.t.1")
	}
	f.Fuzz(func(t *testing.T, payload []byte, path string) {
		p, err := ParsePath(path)
		if err != nil {
			return
		}
		v, rej := Extract(payload, p)
		if rej == OK && (math.IsNaN(v) || math.IsInf(v, 0)) {
			t.Fatalf("accepted non-finite %v from %q", v, payload)
		}
		ValueAt(payload, p)
	})
}
