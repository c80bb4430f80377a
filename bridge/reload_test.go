package bridge

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const twoRules = `
[[rule]]
name = "kept"
topic = "a/temperature"
below = 18.0
resolve = true
endpoints = ["rx"]

[[rule]]
name = "changed"
topic = "b/temperature"
below = %v
resolve = true
endpoints = ["rx"]
`

// A reload keeps the state of a rule whose definition did not change and
// resets only the changed one.
func TestReloadKeepsUnchangedState(t *testing.T) {
	b := startBroker(t)
	rx := newReceiver(t)
	store := t.TempDir()
	cfg := testConfig(store, b.URL(), rx.URL(), fmt.Sprintf(twoRules, 18.0))
	d := startDaemon(t, cfg)
	p := newPublisher(t, b.URL())
	for _, topic := range []string{"a/temperature", "b/temperature"} {
		p.pub(topic, "20")
		p.pub(topic, "10")
	}
	rx.waitHits(2, 10*time.Second) // both fired

	if rs := d.reload(t, testConfig(store, b.URL(), rx.URL(), fmt.Sprintf(twoRules, 15.0))); !rs.OK {
		t.Fatalf("reload: %+v", rs)
	}
	// "kept" still knows it fired: a warm reading resolves it.
	p.pub("a/temperature", "25")
	// "changed" starts afresh: 10 is its first reading (no event), then 20 clears silently, 10 fires.
	p.pub("b/temperature", "10")
	p.pub("b/temperature", "20")
	p.pub("b/temperature", "10")
	hits := rx.waitHits(4, 10*time.Second)
	rx.quiet(4, 300*time.Millisecond)
	// The two series are delivered independently, so their order at the
	// receiver is not fixed: look the events up by rule.
	after := map[string]hit{}
	for _, h := range hits[2:] {
		after[fmt.Sprint(h.Event["rule"])] = h
	}
	if got := fmt.Sprintf("kept %v / changed %v", after["kept"].Event["type"], after["changed"].Event["type"]); got != "kept rule.resolved / changed rule.fired" {
		t.Fatalf("after reload: %s%s", got, describe(hits))
	}
	if after["changed"].Event["threshold"] != 15.0 {
		t.Fatalf("new threshold not used: %s", after["changed"].Body)
	}
}

// A broken file keeps the old rules running; /readyz and the metric say why.
func TestReloadBrokenFileKeepsOldRules(t *testing.T) {
	b := startBroker(t)
	rx := newReceiver(t)
	store := t.TempDir()
	cfg := testConfig(store, b.URL(), rx.URL(), fmt.Sprintf(twoRules, 18.0))
	d := startDaemon(t, cfg)
	rs := d.reload(t, cfg+"\n[[rule]]\nname = \"broken\"\ntopic = \"c\"\nbelow = \"cold\"\nendpoints = [\"rx\"]\n")
	if rs.OK || !strings.Contains(rs.Error, "rule.below") || !strings.Contains(rs.Error, "edgehook.toml:") {
		t.Fatalf("reload status: %+v", rs)
	}
	p := newPublisher(t, b.URL())
	p.pub("a/temperature", "20")
	p.pub("a/temperature", "10")
	rx.waitHits(1, 10*time.Second)
	resp, err := http.Get(d.httpURL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(fmt.Sprint(body["details"]), "rule.below") {
		t.Fatalf("/readyz: %d %v", resp.StatusCode, body)
	}
	if got := d.metric(t, `edgehook_config_reloads_total{result="error"}`); got != 1 {
		t.Fatalf("reload error counter = %v", got)
	}
}

// A reload adds an endpoint, an inbound route and a subscription.
func TestReloadAddsEndpointRouteAndTopic(t *testing.T) {
	b := startBroker(t)
	rx := newReceiver(t)
	rx2 := newReceiver(t)
	store := t.TempDir()
	d := startDaemon(t, testConfig(store, b.URL(), rx.URL(), coldRule))
	extra := fmt.Sprintf(`
[[endpoint]]
name = "second"
url = %q
secret = %q

[[rule]]
name = "humid"
topic = "bath/humidity"
above = 70.0
fire_on_first = true
endpoints = ["second"]
`, rx2.URL(), testSecret) + inboundRoutes
	if rs := d.reload(t, testConfig(store, b.URL(), rx.URL(), coldRule+extra)); !rs.OK {
		t.Fatalf("reload: %+v", rs)
	}
	newPublisher(t, b.URL()).pub("bath/humidity", "80")
	if h := rx2.waitHits(1, 10*time.Second); h[0].Event["rule"] != "humid" || h[0].Verified != nil {
		t.Fatalf("new endpoint: %s", h[0].Body)
	}
	body := []byte(`{"zone": "z", "mode": "m"}`)
	if code, ans, _ := post(t, d.httpURL+"/hooks/heating", signSW(testSecret, "msg_reload", time.Now(), body), body); code != 200 {
		t.Fatalf("new inbound route: %d %v", code, ans)
	}
}

// [rules] watch = true reloads when a rule file changes, without a SIGHUP.
func TestWatchReloadsRuleFiles(t *testing.T) {
	b := startBroker(t)
	rx := newReceiver(t)
	dir := t.TempDir()
	rulesDir := filepath.Join(dir, "rules.d")
	os.MkdirAll(rulesDir, 0o755)
	cfg := testConfig(t.TempDir(), b.URL(), rx.URL(), "")
	cfg = strings.Replace(cfg, "[rules]\nfiles = []", fmt.Sprintf("[rules]\nfiles = [%q]\nwatch = true", rulesDir+"/*.toml"), 1)
	d := startDaemon(t, cfg)
	rule := "[[rule]]\nname = \"watched\"\ntopic = \"w/t\"\nabove = 1.0\nfire_on_first = true\nendpoints = [\"rx\"]\n"
	// Write it the way editors do: a temporary file renamed into place.
	tmp := filepath.Join(rulesDir, ".new")
	os.WriteFile(tmp, []byte(rule), 0o644)
	os.Rename(tmp, filepath.Join(rulesDir, "watched.toml"))
	waitFor(t, "the watched reload", func() bool {
		rs := d.b.reloadState.Load()
		return rs != nil && rs.OK && d.b.current.Load() != d.cfg
	})
	newPublisher(t, b.URL()).pub("w/t", "5")
	if h := rx.waitHits(1, 10*time.Second); h[0].Event["rule"] != "watched" {
		t.Fatalf("event: %s", h[0].Body)
	}
}
