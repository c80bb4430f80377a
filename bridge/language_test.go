package bridge

import (
	"strings"
	"testing"
	"time"

	"github.com/edgehook/edgehook/bridge/mosquittotest"
)

// A body template replaces the envelope; one that does not render JSON makes
// its event a dead letter with the reason, and the others still go out.
func TestBodyTemplate(t *testing.T) {
	b := startBroker(t)
	rx := newReceiver(t)
	d := startDaemon(t, testConfig(t.TempDir(), b.URL(), rx.URL(), `
[[rule]]
name = "custom"
topic = "home/+/temperature"
value = "t"
below = 18.0
endpoints = ["rx"]
body = '{"room": {{ json (topicPart 1) }}, "temp": {{ round 1 .Value }}, "kind": {{ json .Type }}, "raw": {{ json .Payload }}, "id": {{ json .ID }}}'

[[rule]]
name = "broken"
topic = "home/+/temperature"
value = "t"
below = 18.0
endpoints = ["rx"]
body = '{"room": {{ topicPart 1 }}}'
`))
	p := newPublisher(t, b.URL())
	p.pub("home/living/temperature", `{"t": 20}`)
	p.pub("home/living/temperature", `{"t": 17.46}`)
	hits := rx.waitHits(1, 10*time.Second)
	rx.quiet(1, 300*time.Millisecond)
	e := hits[0].Event
	if e["room"] != "living" || e["temp"] != 17.5 || e["kind"] != "rule.fired" || e["id"] != hits[0].ID || hits[0].Verified != nil {
		t.Fatalf("custom body: %s", hits[0].Body)
	}
	dl := deadLetters(d)
	if len(dl) != 1 || dl[0].Rule != "broken" || !strings.Contains(dl[0].Reason, "not produce valid JSON") {
		t.Fatalf("dead letters: %+v", dl)
	}
}

// [[rule.publish]] actions: the fired payload, the resolved payload, through
// the durable outbox, so a broker blip delays them but loses nothing.
func TestPublishActions(t *testing.T) {
	b := startBroker(t)
	rx := newReceiver(t)
	d := startDaemon(t, testConfig(t.TempDir(), b.URL(), rx.URL(), `
[[rule]]
name = "heating-fallback"
topic = "home/+/temperature"
value = "t"
below = 18.0
hysteresis = 0.5
resolve = true

[[rule.publish]]
topic = "home/heating/{{ topicPart 1 }}/set"
payload = "ON"
resolved_payload = "OFF"
qos = 1
`))
	s := newSpy(t, b.URL(), "home/heating/#")
	p := newPublisher(t, b.URL())
	p.pub("home/living/temperature", `{"t": 20}`)
	p.pub("home/living/temperature", `{"t": 17}`)
	got := s.waitN(1)
	if got[0] != (spied{"home/heating/living/set", "ON"}) {
		t.Fatalf("fired action: %v", got)
	}
	// A broker blip: the resolve happens while the broker is restarting.
	p.pub("home/living/temperature", `{"t": 19}`)
	s.waitN(2)
	if got := s.all(); got[1] != (spied{"home/heating/living/set", "OFF"}) {
		t.Fatalf("resolved action: %v", got)
	}
	if n := rx.all(); len(n) != 0 {
		t.Fatalf("a publish-only rule sent %d webhooks", len(n))
	}
	// The counter moves once edgehook has the PUBACK, after the spy saw the message.
	waitFor(t, "2 ok publish deliveries", func() bool {
		return d.metric(t, `edgehook_deliveries_total{endpoint="@mqtt",result="ok"}`) == 2
	})
}

// An MQTT action whose publish gets no PUBACK is retried from the outbox:
// the proxy swallows what edgehook sends, so the first attempt never reaches
// the broker; once healed, the retry does, exactly once.
func TestPublishActionIsRetried(t *testing.T) {
	b := startBroker(t)
	proxy := mosquittotest.NewProxy(t, b.Addr())
	rx := newReceiver(t)
	d := launch(t, testConfig(t.TempDir(), proxy.URL(), rx.URL(), `
[[rule]]
name = "door"
topic = "home/door"
when = "contact == false"
fire_on_first = true

[[rule.publish]]
topic = "home/alarm/set"
payload = "door {{ .Payload.contact }}"
`), func(b *Bridge) { b.pubWait = 500 * time.Millisecond })
	d.waitReady(t)
	s := newSpy(t, b.URL(), "home/alarm/#")
	proxy.DropClientBytes(true)
	newPublisher(t, b.URL()).pub("home/door", `{"contact": false}`)
	waitFor(t, "the first attempt to fail", func() bool {
		return d.metric(t, `edgehook_deliveries_total{endpoint="@mqtt",result="retry"}`) >= 1
	})
	s.atMost(0) // nothing reached the broker
	proxy.DropClientBytes(false)
	got := s.waitN(1)
	s.atMost(1)
	if got[0] != (spied{"home/alarm/set", "door false"}) {
		t.Fatalf("action: %v", got)
	}
}

// drop/within, when, stale and key, end to end through the daemon.
func TestConditionsEndToEnd(t *testing.T) {
	b := startBroker(t)
	rx := newReceiver(t)
	startDaemon(t, testConfig(t.TempDir(), b.URL(), rx.URL(), `
[[rule]]
name = "window-open"
topic = "home/living/temperature"
value = "t"
drop = 3.0
within = "10m"
endpoints = ["rx"]

[[rule]]
name = "door-open"
topic = "home/door"
when = "contact == false"
endpoints = ["rx"]

[[rule]]
name = "silent"
topic = "home/heartbeat"
stale = "1500ms"
endpoints = ["rx"]

[[rule]]
name = "per-device"
topic = "zigbee/all"
key = "device"
value = "t"
above = 30.0
endpoints = ["rx"]
`))
	p := newPublisher(t, b.URL())
	p.pub("home/living/temperature", `{"t": 21}`)
	p.pub("home/living/temperature", `{"t": 17.5}`)
	p.pub("home/door", `{"contact": true}`)
	p.pub("home/door", `{"contact": false}`)
	p.pub("home/heartbeat", `alive`) // not a number: no sign of life, and never seen before
	p.pub("home/heartbeat", `1`)
	p.pub("zigbee/all", `{"device": "a", "t": 20}`)
	p.pub("zigbee/all", `{"device": "b", "t": 20}`)
	p.pub("zigbee/all", `{"device": "b", "t": 35}`)
	hits := rx.waitHits(4, 15*time.Second)
	got := map[string]string{}
	for _, h := range hits {
		got[h.Event["rule"].(string)] = h.Event["series"].(string) + " " + h.Event["condition"].(string)
	}
	want := map[string]string{
		"window-open": "home/living/temperature drop",
		"door-open":   "home/door when",
		"silent":      "home/heartbeat stale",
		"per-device":  "zigbee/all[b] above",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
}
