package bridge

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgehook/edgehook/bridge/mosquittotest"
	"github.com/edgehook/edgehook/bridge/queue"
)

const coldRule = `
[[rule]]
name = "cold"
topic = "home/+/temperature"
value = "temperature"
below = 18.0
hysteresis = 0.5
resolve = true
endpoints = ["rx"]
`

// A crossing produces exactly one webhook whose signature verifies (with a
// verifier independent of the code under test) and whose body has every field
// of PRODUCT.md §4.
func TestCrossingSendsOneSignedWebhook(t *testing.T) {
	b := startBroker(t)
	rx := newReceiver(t)
	d := startDaemon(t, testConfig(t.TempDir(), b.URL(), rx.URL(), coldRule))
	p := newPublisher(t, b.URL())

	p.temp("home/living/temperature", 19.0)
	p.pub("home/living/temperature", `{"temperature": 17.4, "seq": 41}`)
	hits := rx.waitHits(1, 10*time.Second)
	rx.quiet(1, 500*time.Millisecond)
	h := hits[0]
	if h.Verified != nil {
		t.Fatalf("signature does not verify: %v", h.Verified)
	}
	if h.Header.Get("Content-Type") != "application/json" || !strings.HasPrefix(h.ID, "evt_") || strings.Contains(h.ID, ".") {
		t.Errorf("headers: %v", h.Header)
	}
	e := h.Event
	want := map[string]any{"type": "rule.fired", "id": h.ID, "rule": "cold", "series": "home/living/temperature",
		"topic": "home/living/temperature", "condition": "below", "threshold": 18.0, "value": 17.4}
	for k, v := range want {
		if e[k] != v {
			t.Errorf("body %s = %v, want %v (body %s)", k, e[k], v, h.Body)
		}
	}
	if p, ok := e["payload"].(map[string]any); !ok || p["seq"] != 41.0 || p["temperature"] != 17.4 {
		t.Errorf("payload = %v", e["payload"])
	}
	at, err := time.Parse(time.RFC3339Nano, fmt.Sprint(e["at"]))
	if err != nil || time.Since(at) > time.Minute || !strings.HasSuffix(fmt.Sprint(e["at"]), "Z") {
		t.Errorf("at = %v (%v)", e["at"], err)
	}
	if len(e) != 10 {
		t.Errorf("body has %d fields, want 10: %s", len(e), h.Body)
	}
	if got := d.metric(t, `edgehook_deliveries_total{endpoint="rx",result="ok"}`); got != 1 {
		t.Errorf("deliveries ok = %v", got)
	}
}

// Hysteresis, first reading and resolve end to end: noise around the
// threshold does not re-fire; resolve comes once the band is left.
func TestHysteresisAndResolve(t *testing.T) {
	b := startBroker(t)
	rx := newReceiver(t)
	startDaemon(t, testConfig(t.TempDir(), b.URL(), rx.URL(), coldRule))
	p := newPublisher(t, b.URL())
	for _, v := range []float64{15, 16, 19, 17.9, 18.1, 17.95, 18.4, 18.6} {
		p.temp("home/living/temperature", v)
	}
	// 15: first reading (active, silent). 16: still. 19: cleared (nothing fired, no resolve).
	// 17.9: fired. 18.1, 17.95, 18.4: band / active. 18.6: resolved.
	hits := rx.waitHits(2, 10*time.Second)
	rx.quiet(2, 500*time.Millisecond)
	if hits[0].Event["type"] != "rule.fired" || hits[0].Event["value"] != 17.9 ||
		hits[1].Event["type"] != "rule.resolved" || hits[1].Event["value"] != 18.6 {
		t.Fatalf("events: %s", describe(hits))
	}
}

// `for` fires on a timer, with no further reading.
func TestForFiresWithoutAnotherReading(t *testing.T) {
	b := startBroker(t)
	rx := newReceiver(t)
	startDaemon(t, testConfig(t.TempDir(), b.URL(), rx.URL(), `
[[rule]]
name = "freezer"
topic = "freezer/temp"
above = -10.0
for = "1500ms"
endpoints = ["rx"]
`))
	p := newPublisher(t, b.URL())
	p.pub("freezer/temp", "-18")
	sent := time.Now() // before the reading that starts the `for` timer
	p.pub("freezer/temp", "-5")
	hits := rx.waitHits(1, 10*time.Second)
	if el := hits[0].At.Sub(sent); el < 1200*time.Millisecond {
		t.Fatalf("fired after %v, before the 1.5s `for` elapsed", el)
	}
	if hits[0].Event["type"] != "rule.fired" || hits[0].Event["value"] != -5.0 {
		t.Fatalf("event: %s", hits[0].Body)
	}
}

// cooldown and level: level fires on every breaching reading, cooldown keeps
// it to one per window.
func TestLevelWithCooldown(t *testing.T) {
	b := startBroker(t)
	rx := newReceiver(t)
	startDaemon(t, testConfig(t.TempDir(), b.URL(), rx.URL(), `
[[rule]]
name = "every"
topic = "s/+"
below = 10.0
level = true
endpoints = ["rx"]

[[rule]]
name = "throttled"
topic = "s/+"
below = 10.0
level = true
cooldown = "1h"
endpoints = ["rx"]
`))
	p := newPublisher(t, b.URL())
	for i := 0; i < 5; i++ {
		p.pub("s/a", "5")
	}
	hits := rx.waitHits(6, 10*time.Second)
	rx.quiet(6, 500*time.Millisecond)
	count := map[any]int{}
	for _, h := range hits {
		count[h.Event["rule"]]++
	}
	if count["every"] != 5 || count["throttled"] != 1 {
		t.Fatalf("per rule: %v", count)
	}
}

// Bad payloads are skipped and counted, and the next valid crossing still fires.
func TestBadPayloadsAreCountedAndSkipped(t *testing.T) {
	b := startBroker(t)
	rx := newReceiver(t)
	d := startDaemon(t, testConfig(t.TempDir(), b.URL(), rx.URL(), coldRule))
	p := newPublisher(t, b.URL())
	p.temp("home/living/temperature", 20)
	bad := map[string]string{
		"malformed":    `{"temperature": 17`,
		"not_number":   `{"temperature": "hot"}`,
		"null":         `{"temperature": null}`,
		"non_finite":   `{"temperature": "NaN"}`,
		"invalid_utf8": "{\"temperature\": 17, \"note\": \"\xff\xfe\"}",
		"too_large":    `{"temperature": 17, "pad": "` + strings.Repeat("x", 300<<10) + `"}`,
		"missing":      `{"humidity": 40}`,
	}
	for _, payload := range bad {
		p.pub("home/living/temperature", payload)
	}
	// A 33 KB topic level (MQTT allows 64 KiB) is too long a series to keep
	// state for: rejected, and the store does not stop on it.
	p.pub("home/"+strings.Repeat("x", 33<<10)+"/temperature", `{"temperature": 10}`)
	p.temp("home/living/temperature", 17)
	hits := rx.waitHits(1, 10*time.Second)
	rx.quiet(1, 300*time.Millisecond)
	if hits[0].Event["value"] != 17.0 {
		t.Fatalf("the valid crossing after bad payloads: %s", hits[0].Body)
	}
	for reason, want := range map[string]float64{"malformed": 1, "not_number": 2, "non_finite": 1, "invalid_utf8": 1, "too_large": 1, "missing": 1, "series_too_long": 1} {
		if got := d.metric(t, fmt.Sprintf(`edgehook_messages_rejected_total{reason=%q}`, reason)); got != want {
			t.Errorf("rejected{%s} = %v, want %v", reason, got, want)
		}
	}
	if got := d.metric(t, `edgehook_messages_received_total`); got != 10 {
		t.Errorf("received = %v, want 10", got)
	}
}

// A 503 is retried with the same webhook-id; the retry succeeds once.
func TestRetryKeepsWebhookID(t *testing.T) {
	b := startBroker(t)
	rx := newReceiver(t)
	rx.setRespond(func(n int, _ *http.Request, _ http.ResponseWriter) int {
		if n == 1 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	d := startDaemon(t, testConfig(t.TempDir(), b.URL(), rx.URL(), coldRule))
	p := newPublisher(t, b.URL())
	p.temp("home/a/temperature", 20)
	p.temp("home/a/temperature", 10)
	hits := rx.waitHits(2, 15*time.Second)
	rx.quiet(2, 500*time.Millisecond)
	if hits[0].ID != hits[1].ID || hits[0].Verified != nil || hits[1].Verified != nil {
		t.Fatalf("attempts: %+v / %+v", hits[0].ID, hits[1].ID)
	}
	if string(hits[0].Body) != string(hits[1].Body) {
		t.Fatal("the body changed between attempts")
	}
	if got := d.metric(t, `edgehook_deliveries_total{endpoint="rx",result="retry"}`); got != 1 {
		t.Errorf("retries = %v", got)
	}
}

// Retry-After is honoured.
func TestRetryAfterIsHonoured(t *testing.T) {
	b := startBroker(t)
	rx := newReceiver(t)
	rx.setRespond(func(n int, _ *http.Request, w http.ResponseWriter) int {
		if n == 1 {
			w.Header().Set("Retry-After", "2")
			return http.StatusTooManyRequests
		}
		return http.StatusOK
	})
	startDaemon(t, testConfig(t.TempDir(), b.URL(), rx.URL(), coldRule))
	p := newPublisher(t, b.URL())
	p.temp("home/a/temperature", 20)
	p.temp("home/a/temperature", 10)
	hits := rx.waitHits(2, 15*time.Second)
	if gap := hits[1].At.Sub(hits[0].At); gap < 1900*time.Millisecond {
		t.Fatalf("retried after %v despite Retry-After: 2", gap)
	}
}

// 410 Gone dead-letters the event and disables the endpoint: later events
// become dead letters without being sent.
func TestGoneDisablesEndpoint(t *testing.T) {
	b := startBroker(t)
	rx := newReceiver(t)
	rx.setRespond(func(int, *http.Request, http.ResponseWriter) int { return http.StatusGone })
	d := startDaemon(t, testConfig(t.TempDir(), b.URL(), rx.URL(), coldRule))
	p := newPublisher(t, b.URL())
	p.temp("home/a/temperature", 20)
	p.temp("home/a/temperature", 10)
	rx.waitHits(1, 10*time.Second)
	waitFor(t, "the endpoint to be disabled", func() bool { return d.b.deliverer("rx").Status().Disabled })
	p.temp("home/b/temperature", 20)
	p.temp("home/b/temperature", 10)
	waitFor(t, "two dead letters", func() bool { return len(deadLetters(d)) == 2 })
	rx.quiet(1, 300*time.Millisecond)
	for _, j := range deadLetters(d) {
		if j.Status != 410 || !strings.Contains(j.Reason, "410") {
			t.Errorf("dead letter: %+v", j)
		}
	}
	if !d.b.deliverer("rx").Status().Disabled {
		t.Fatal("endpoint not disabled")
	}
	if v, _ := d.b.store.Meta("disabled/rx"); v == nil {
		t.Fatal("disabled state not persisted")
	}
}

// Any other 4xx dead-letters that one event; the next one is still sent.
func TestClientErrorDeadLettersOneEvent(t *testing.T) {
	b := startBroker(t)
	rx := newReceiver(t)
	rx.setRespond(func(n int, _ *http.Request, _ http.ResponseWriter) int {
		if n == 1 {
			return http.StatusBadRequest
		}
		return http.StatusOK
	})
	d := startDaemon(t, testConfig(t.TempDir(), b.URL(), rx.URL(), coldRule))
	p := newPublisher(t, b.URL())
	p.temp("home/a/temperature", 20)
	p.temp("home/a/temperature", 10)
	p.temp("home/a/temperature", 20)
	rx.waitHits(2, 10*time.Second)
	rx.quiet(2, 300*time.Millisecond)
	dl := deadLetters(d)
	if len(dl) != 1 || dl[0].Status != 400 || dl[0].Type != "rule.fired" {
		t.Fatalf("dead letters: %+v", dl)
	}
}

// A redirect is not followed: the target never hears of it, and the attempt
// counts as failed (retried).
func TestRedirectNotFollowed(t *testing.T) {
	b := startBroker(t)
	target := newReceiver(t)
	rx := newReceiver(t)
	rx.setRespond(func(n int, r *http.Request, w http.ResponseWriter) int {
		if n <= 2 {
			http.Redirect(w, r, target.URL(), http.StatusFound)
			return 0
		}
		return http.StatusOK
	})
	startDaemon(t, testConfig(t.TempDir(), b.URL(), rx.URL(), coldRule))
	p := newPublisher(t, b.URL())
	p.temp("home/a/temperature", 20)
	p.temp("home/a/temperature", 10)
	rx.waitHits(3, 20*time.Second) // redirect, redirect, then 200 after the 5s retry
	if n := len(target.all()); n != 0 {
		t.Fatalf("the redirect target got %d requests", n)
	}
}

// A hanging receiver: the attempt is aborted at the endpoint timeout and retried.
func TestHangingReceiverTimesOut(t *testing.T) {
	b := startBroker(t)
	rx := newReceiver(t)
	rx.setRespond(func(n int, r *http.Request, _ http.ResponseWriter) int {
		if n == 1 {
			<-r.Context().Done() // hang until edgehook gives up
			return 0
		}
		return http.StatusOK
	})
	startDaemon(t, testConfig(t.TempDir(), b.URL(), rx.URL(), coldRule+"\n")+"")
	p := newPublisher(t, b.URL())
	p.temp("home/a/temperature", 20)
	p.temp("home/a/temperature", 10)
	hits := rx.waitHits(2, 15*time.Second)
	if !hits[0].Aborted {
		t.Fatal("the first attempt was not aborted")
	}
	// timeout = "2s" in testConfig; the immediate retry follows the abort.
	if gap := hits[1].At.Sub(hits[0].At); gap < 1500*time.Millisecond || gap > 5*time.Second {
		t.Fatalf("retry %v after the hanging attempt, want about the 2s timeout", gap)
	}
	if hits[0].ID != hits[1].ID {
		t.Fatal("webhook-id changed")
	}
}

// One slow endpoint never blocks another, and one series never blocks another.
func TestIsolation(t *testing.T) {
	b := startBroker(t)
	slow := newReceiver(t)
	slow.setRespond(func(int, *http.Request, http.ResponseWriter) int { return http.StatusServiceUnavailable })
	fast := newReceiver(t)
	d := startDaemon(t, testConfig(t.TempDir(), b.URL(), slow.URL(), fmt.Sprintf(`
[[endpoint]]
name = "fast"
url = %q
secret = %q

[[rule]]
name = "both"
topic = "home/+/temperature"
value = "temperature"
below = 18.0
endpoints = ["rx", "fast"]
`, fast.URL(), testSecret)))
	p := newPublisher(t, b.URL())
	for _, room := range []string{"a", "b", "c"} {
		p.temp("home/"+room+"/temperature", 20)
		p.temp("home/"+room+"/temperature", 10)
	}
	hits := fast.waitHits(3, 10*time.Second)
	for _, h := range hits {
		if h.Verified != nil {
			t.Fatal(h.Verified)
		}
	}
	// The failing endpoint got an attempt for every series: a series stuck in
	// retries does not hold back the others.
	waitFor(t, "an attempt per series at the failing endpoint", func() bool {
		seen := map[any]bool{}
		for _, h := range slow.all() {
			seen[h.Event["series"]] = true
		}
		return len(seen) == 3
	})
	// The receiver records a hit before answering it: wait for the counter.
	waitFor(t, "3 ok deliveries at the fast endpoint", func() bool {
		return d.metric(t, `edgehook_deliveries_total{endpoint="fast",result="ok"}`) == 3
	})
}

// Per (endpoint, series) order: a resolve never overtakes its fire, even when
// the fire needs retries.
func TestOrderWithinSeries(t *testing.T) {
	b := startBroker(t)
	rx := newReceiver(t)
	rx.setRespond(func(n int, _ *http.Request, _ http.ResponseWriter) int {
		if n <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	startDaemon(t, testConfig(t.TempDir(), b.URL(), rx.URL(), coldRule))
	p := newPublisher(t, b.URL())
	p.temp("home/a/temperature", 20)
	p.temp("home/a/temperature", 10)
	p.temp("home/a/temperature", 20)
	hits := rx.waitHits(4, 20*time.Second)
	var types []string
	for _, h := range hits {
		types = append(types, fmt.Sprint(h.Event["type"]))
	}
	if strings.Join(types, ",") != "rule.fired,rule.fired,rule.fired,rule.resolved" {
		t.Fatalf("order: %v", types)
	}
}

// The broker restarts: the daemon reconnects, resubscribes, and later readings fire.
func TestBrokerRestart(t *testing.T) {
	b := startBroker(t)
	rx := newReceiver(t)
	d := startDaemon(t, testConfig(t.TempDir(), b.URL(), rx.URL(), coldRule))
	p := newPublisher(t, b.URL())
	p.temp("home/a/temperature", 20)
	b.Restart()
	waitFor(t, "reconnect", func() bool { return d.b.Ready() })
	p.temp("home/a/temperature", 10)
	rx.waitHits(1, 20*time.Second)
	if d.metric(t, "edgehook_mqtt_reconnects_total") < 1 {
		t.Error("reconnect not counted")
	}
}

// The broker is down when the daemon starts: it waits, not-ready, and works
// once the broker appears.
func TestBrokerDownAtStart(t *testing.T) {
	b := startBroker(t)
	b.Stop()
	rx := newReceiver(t)
	cfg := testConfig(t.TempDir(), b.URL(), rx.URL(), coldRule)
	d := startDaemonNotReady(t, cfg)
	resp, err := http.Get(d.httpURL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with the broker down: %d", resp.StatusCode)
	}
	if r, _ := http.Get(d.httpURL + "/healthz"); r == nil || r.StatusCode != 200 {
		t.Fatal("/healthz not 200 while waiting for the broker")
	}
	b.Restart()
	d.waitReady(t)
	p := newPublisher(t, b.URL())
	p.temp("home/a/temperature", 20)
	p.temp("home/a/temperature", 10)
	rx.waitHits(1, 10*time.Second)
}

// Rule state is persisted: after a restart the series is still active, so a
// further low reading does not fire again.
func TestStateSurvivesRestart(t *testing.T) {
	b := startBroker(t)
	rx := newReceiver(t)
	store := t.TempDir()
	cfg := testConfig(store, b.URL(), rx.URL(), coldRule)
	d := startDaemon(t, cfg)
	p := newPublisher(t, b.URL())
	p.temp("home/a/temperature", 20)
	p.temp("home/a/temperature", 10)
	rx.waitHits(1, 10*time.Second)
	d.stop(t)
	startDaemon(t, cfg)
	p.temp("home/a/temperature", 9)
	p.temp("home/a/temperature", 19)
	hits := rx.waitHits(2, 10*time.Second)
	rx.quiet(2, 300*time.Millisecond)
	if hits[1].Event["type"] != "rule.resolved" {
		t.Fatalf("after restart: %s", describe(hits))
	}
}

// The outbox cap applies back-pressure: with the receiver down and the cap
// reached, edgehook stops taking messages (the broker keeps them, unacked),
// and once the receiver is back every one of them is delivered.
func TestOutboxFullBackPressure(t *testing.T) {
	b := startBroker(t)
	rx := newReceiver(t)
	var up atomic.Bool
	rx.setRespond(func(int, *http.Request, http.ResponseWriter) int {
		if up.Load() {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	})
	cfg := testConfig(t.TempDir(), b.URL(), rx.URL(), `
[[rule]]
name = "all"
topic = "s/+"
forward = true
endpoints = ["rx"]
`)
	cfg = strings.Replace(cfg, "[store]\n", "[store]\nmax_bytes = \"1MiB\"\n", 1)
	d := startDaemon(t, cfg)
	p := newPublisher(t, b.URL())
	big := strings.Repeat("x", 100<<10) // about 100 KiB per event: about 10 fill the outbox
	const n = 30
	for i := 0; i < n; i++ {
		p.pub(fmt.Sprintf("s/%d", i), fmt.Sprintf(`{"i": %d, "pad": %q}`, i, big))
	}
	waitFor(t, "outbox full", func() bool { return d.b.outboxFull.Load() })
	taken := d.metric(t, "edgehook_messages_received_total")
	time.Sleep(500 * time.Millisecond)
	if again := d.metric(t, "edgehook_messages_received_total"); again != taken || taken >= n {
		t.Fatalf("intake did not stop at the cap: %v then %v of %d messages taken", taken, again, n)
	}
	if d.b.Ready() {
		t.Error("ready while the outbox is full")
	}
	up.Store(true)
	hits := rx.waitDelivered(n, 60*time.Second)
	seen := map[any]bool{}
	for _, h := range hits {
		seen[h.Event["series"]] = true
	}
	if len(seen) != n {
		t.Fatalf("delivered %d distinct series of %d", len(seen), n)
	}
}

func deadLetters(d *daemon) []*queue.Job {
	var out []*queue.Job
	_ = d.b.store.DeadLetters(func(j *queue.Job) { out = append(out, j) })
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// MQTT username/password: with the right password the daemon works; with a
// wrong one it stays not-ready and keeps trying, without crashing.
func TestMQTTPasswordAuth(t *testing.T) {
	b := mosquittotest.Start(t, mosquittotest.Options{Users: map[string]string{"edgehook": "s3cret-pw", "pub": "pub-pw"}})
	rx := newReceiver(t)
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "mqtt-password")
	if err := os.WriteFile(pwFile, []byte("s3cret-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	store := t.TempDir()
	cfg := testConfig(store, b.URL(), rx.URL(), coldRule)
	cfg = strings.Replace(cfg, "[mqtt]\n", fmt.Sprintf("[mqtt]\nusername = \"edgehook\"\npassword_file = %q\n", pwFile), 1)
	startDaemon(t, cfg)
	p := newAuthPublisher(t, b.URL(), "pub", "pub-pw")
	p.temp("home/a/temperature", 20)
	p.temp("home/a/temperature", 10)
	rx.waitHits(1, 10*time.Second)

	bad := strings.Replace(cfg, "client_id = \"edgehook-under-test\"", "client_id = \"edgehook-wrong-pw\"\npassword = \"nope\"", 1)
	bad = strings.Replace(bad, fmt.Sprintf("password_file = %q\n", pwFile), "", 1)
	bad = strings.Replace(bad, store, t.TempDir(), 1)
	d := startDaemonNotReady(t, bad)
	time.Sleep(2 * time.Second)
	if d.b.Ready() {
		t.Fatal("ready with a wrong MQTT password")
	}
	if strings.Contains(d.logs.String(), "nope") {
		t.Fatal("the password appears in the log")
	}
}

// MQTT over TLS with the broker's CA and a client certificate.
func TestMQTTTLS(t *testing.T) {
	b := mosquittotest.Start(t, mosquittotest.Options{TLS: true})
	rx := newReceiver(t)
	f := b.TLS()
	store := t.TempDir()
	cfg := testConfig(store, b.TLSURL(), rx.URL(), coldRule)
	cfg = strings.Replace(cfg, "[http]\n", fmt.Sprintf("[mqtt.tls]\nca_file = %q\ncert_file = %q\nkey_file = %q\n[http]\n", f.CA, f.ClientCert, f.ClientKey), 1)
	startDaemon(t, cfg)
	p := newPublisher(t, b.URL()) // the plain listener
	p.temp("home/a/temperature", 20)
	p.temp("home/a/temperature", 10)
	rx.waitHits(1, 10*time.Second)

	// Without the client certificate the broker refuses us: not ready.
	noCert := strings.Replace(cfg, fmt.Sprintf("cert_file = %q\nkey_file = %q\n", f.ClientCert, f.ClientKey), "", 1)
	noCert = strings.Replace(noCert, "edgehook-under-test", "edgehook-no-cert", 1)
	noCert = strings.Replace(noCert, store, t.TempDir(), 1)
	d := startDaemonNotReady(t, noCert)
	time.Sleep(2 * time.Second)
	if d.b.Ready() {
		t.Fatal("ready without a client certificate")
	}
}
