package configs_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgehook/edgehook/bridge"
	"github.com/edgehook/edgehook/configs"
	"github.com/edgehook/edgehook/rules"
)

func noEnv(string) (string, bool) { return "", false }

// Every example configuration loads with the real loader.
func TestExamplesLoad(t *testing.T) {
	for _, f := range []string{"edgehook.toml", "demo.toml"} {
		if _, _, err := bridge.Load(f, noEnv); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	onDisk, err := os.ReadFile("demo.toml")
	if err != nil {
		t.Fatal(err)
	}
	if string(onDisk) != string(configs.Demo) {
		t.Error("embedded demo config differs from demo.toml")
	}
}

// The example rules load, together, with an endpoint named home-assistant,
// and each does what its comment says on a short simulated scenario.
func TestExampleRules(t *testing.T) {
	files, _ := filepath.Glob("rules/*.toml")
	if len(files) < 6 {
		t.Fatalf("only %d example rule files", len(files))
	}
	dir := t.TempDir()
	abs, _ := filepath.Abs("rules")
	main := filepath.Join(dir, "edgehook.toml")
	os.WriteFile(main, []byte(`
[rules]
files = ["`+abs+`/*.toml"]
[[endpoint]]
name = "home-assistant"
url = "http://127.0.0.1:8123/api/webhook/x"
signing = "none"
`), 0o600)
	_, set, err := bridge.Load(main, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 25, 7, 0, 0, 0, time.UTC)
	type reading struct {
		after          time.Duration
		topic, payload string
	}
	scenarios := map[string]struct {
		readings []reading
		until    time.Duration
		want     []string // rule.fired / rule.resolved, in order
	}{
		"living-room-cold": {[]reading{{0, "home/living/temperature", `{"temperature": 19}`}, {time.Minute, "home/living/temperature", `{"temperature": 17.5}`},
			{10 * time.Minute, "home/living/temperature", `{"temperature": 18.7}`}}, 0, []string{"rule.fired", "rule.resolved"}},
		"window-open": {[]reading{{0, "home/bed/temperature", `{"temperature": 21}`}, {4 * time.Minute, "home/bed/temperature", `{"temperature": 17.8}`}}, 0,
			[]string{"rule.fired"}},
		"freezer-warm": {[]reading{{0, "kitchen/freezer/temperature", "-18"}, {time.Minute, "kitchen/freezer/temperature", "-8"}}, 7 * time.Minute,
			[]string{"rule.fired"}},
		"sensor-silent": {[]reading{{0, "home/attic/temperature", `{"temperature": 12}`}}, time.Hour, []string{"rule.fired"}},
		"door-left-open": {[]reading{{0, "zigbee2mqtt/front", `{"contact": true, "battery": 80}`}, {time.Minute, "zigbee2mqtt/front", `{"contact": false, "battery": 80}`}},
			20 * time.Minute, []string{"rule.fired"}},
		"doorbell": {[]reading{{0, "home/doorbell/press", `ding`}, {time.Second, "home/doorbell/press", `ding`}, {10 * time.Second, "home/doorbell/press", `ding`}}, 0,
			[]string{"rule.fired", "rule.fired"}},
	}
	for _, r := range set.Rules() {
		sc, ok := scenarios[r.Name]
		if !ok {
			t.Errorf("example rule %q has no scenario here", r.Name)
			continue
		}
		one, _ := rules.NewSet([]*rules.Rule{r})
		e := rules.NewEngine(one)
		var got []string
		collect := func(res rules.Result) {
			if res.Outcome.Event != rules.None {
				got = append(got, res.Outcome.Event.String())
			}
		}
		for _, rd := range sc.readings {
			e.Feed(rd.topic, []byte(rd.payload), t0.Add(rd.after), collect)
		}
		if sc.until > 0 {
			e.Advance(t0.Add(sc.until), collect)
		}
		if strings.Join(got, ",") != strings.Join(sc.want, ",") {
			t.Errorf("%s: events %v, want %v", r.Name, got, sc.want)
		}
	}
}
