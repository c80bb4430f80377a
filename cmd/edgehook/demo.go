package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/edgehook/edgehook/bridge"
	"github.com/edgehook/edgehook/bridge/mqtt"
	"github.com/edgehook/edgehook/bridge/webhook"
	"github.com/edgehook/edgehook/configs"
)

// received is one webhook the demo receiver accepted.
type received struct {
	id       string
	verified bool
	body     map[string]any
}

// cmdDemo runs the whole loop on this machine: an embedded broker, the daemon
// with configs/demo.toml, a simulated thermostat and a local receiver that
// verifies every signature. It narrates each step and ends by itself.
func (e *env) cmdDemo(ctx context.Context, args []string) int {
	fs := e.flagSet("demo")
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	out := e.stdout
	say := func(format string, a ...any) { fmt.Fprintf(out, format+"\n", a...) }
	fail := func(format string, a ...any) int {
		fmt.Fprintf(e.stderr, "demo failed: "+format+"\n", a...)
		return exitFailure
	}
	if e.logLevel == "" {
		e.logLevel = "warn" // keep the narration readable; --log-level debug shows everything
	}
	log, err := e.logger()
	if err != nil {
		fmt.Fprintln(e.stderr, "edgehook:", err)
		return exitUsage
	}

	dir, err := os.MkdirTemp("", "edgehook-demo-")
	if err != nil {
		return fail("%v", err)
	}
	defer os.RemoveAll(dir)
	ports, err := freePorts(3)
	if err != nil {
		return fail("%v", err)
	}
	brokerAddr, listenAddr, receiverAddr := ports[0], ports[1], ports[2]

	say("edgehook demo: a sensor reading becomes a signed webhook, on this machine alone")
	say("")

	// The receiver: verifies each webhook's signature the way Home Assistant
	// or n8n would, and reports what arrived.
	cfgPath := filepath.Join(dir, "demo.toml")
	if err := os.WriteFile(cfgPath, configs.Demo, 0o600); err != nil {
		return fail("%v", err)
	}
	got := make(chan received, 16)
	rln, err := net.Listen("tcp", receiverAddr)
	if err != nil {
		return fail("receiver: %v", err)
	}
	var key []byte // set once the config is loaded
	rsrv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		err := webhook.Verify([][]byte{key}, r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp"),
			r.Header.Get("webhook-signature"), body, time.Now(), 5*time.Minute)
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		if err != nil {
			w.WriteHeader(http.StatusUnauthorized)
		}
		got <- received{id: r.Header.Get("webhook-id"), verified: err == nil, body: m}
	})}
	go rsrv.Serve(rln)
	defer rsrv.Close()

	demoEnv := map[string]string{
		"EDGEHOOK_DEMO_LISTEN":   listenAddr,
		"EDGEHOOK_DEMO_STORE":    filepath.Join(dir, "store"),
		"EDGEHOOK_DEMO_RECEIVER": "http://" + receiverAddr + "/hooks/heating",
	}
	cfg, set, err := bridge.Load(cfgPath, func(k string) (string, bool) {
		if v, ok := demoEnv[k]; ok {
			return v, true
		}
		return e.getenv(k)
	})
	if err != nil {
		return fail("configs/demo.toml: %v", err)
	}
	key, err = webhook.DecodeKey(cfg.Endpoints[0].Secret.Reveal())
	if err != nil {
		return fail("%v", err)
	}
	rule := set.Rules()[0]

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	b := bridge.New(cfg, set, log, buildVersion())
	b.EmbeddedAddr = brokerAddr
	ready := make(chan struct{})
	b.OnReady = func(string, string) { close(ready) }
	runErr := make(chan error, 1)
	go func() { runErr <- b.Run(ctx) }()
	select {
	case <-ready:
	case err := <-runErr:
		return fail("edgehook did not start: %v", err)
	case <-time.After(15 * time.Second):
		return fail("edgehook did not start within 15s")
	}
	say("1. An embedded MQTT broker listens on %s (a real install uses Mosquitto).", brokerAddr)
	say("2. A webhook receiver listens on http://%s/hooks/heating; it checks every signature.", receiverAddr)
	say("3. edgehook runs configs/demo.toml: rule %q fires when a room drops below %g °C,", rule.Name, rule.Threshold)
	say("   re-arms only at %g °C (hysteresis), and says when it is warm again (resolve).", rule.ClearAt())
	say("   Events are written to a durable outbox (%s) before the broker gets its ack.", cfg.Store.Dir)
	say("")
	say("4. A simulated thermostat publishes the living-room temperature:")

	thermostat := mqtt.New(mqtt.Options{Broker: "tcp://" + brokerAddr, ClientID: "demo-thermostat", CleanSession: true,
		QoS: 1, Filters: []string{"home/heating/+/set"}, Logger: slog.New(slog.DiscardHandler)})
	thermostat.Connect()
	defer thermostat.Close(200 * time.Millisecond)
	for deadline := time.Now().Add(10 * time.Second); !thermostat.Connected() || !mqttReady(b); {
		if time.Now().After(deadline) {
			return fail("could not connect to the embedded broker")
		}
		time.Sleep(20 * time.Millisecond)
	}

	steps := []struct {
		temp   float64
		expect string // event type expected, or ""
		note   string
	}{
		{20.5, "", "first reading: sets the state, no event"},
		{19.2, "", ""},
		{18.1, "", ""},
		{17.6, "rule.fired", "below 18: the window is open, the heating should know"},
		{17.9, "", "still cold: no second webhook"},
		{18.3, "", "inside the hysteresis band: still no event"},
		{18.6, "rule.resolved", "back above 18.5: resolved"},
	}
	delivered := 0
	for _, s := range steps {
		payload := fmt.Sprintf(`{"temperature": %.1f}`, s.temp)
		pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
		err := thermostat.Publish(pctx, "home/living/temperature", 1, false, []byte(payload))
		pcancel()
		if err != nil {
			return fail("publish: %v", err)
		}
		line := fmt.Sprintf("   → home/living/temperature %s", payload)
		if s.note != "" {
			line += "   (" + s.note + ")"
		}
		say("%s", line)
		if s.expect == "" {
			select {
			case r := <-got:
				return fail("unexpected webhook %v", r.body["type"])
			case <-time.After(300 * time.Millisecond):
			}
			continue
		}
		select {
		case r := <-got:
			if !r.verified {
				return fail("the receiver could not verify the signature of %s", r.id)
			}
			if r.body["type"] != s.expect {
				return fail("expected %s, got %v", s.expect, r.body["type"])
			}
			delivered++
			say("   ← receiver got %v  webhook-id %s  value %v  signature verified ✓", r.body["type"], r.id, r.body["value"])
		case <-time.After(10 * time.Second):
			return fail("no %s webhook arrived within 10s", s.expect)
		}
	}
	say("")
	say("5. The other direction: Home Assistant asks for heat with a signed webhook.")
	in := cfg.Inbound[0]
	inKey, err := webhook.DecodeKeys(in.Secret.Reveal())
	if err != nil {
		return fail("%v", err)
	}
	hookURL := "http://" + listenAddr + in.Path
	send := func(body string, sign bool, id string) (int, string) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, hookURL, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if sign {
			now := time.Now()
			req.Header.Set("webhook-id", id)
			req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
			req.Header.Set("webhook-signature", webhook.Sign(inKey[0], id, now, []byte(body)))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	body := `{"zone": "living", "mode": "heat"}`
	code, answer := send(body, true, "msg_demo_1")
	say("   → POST %s %s (signed)", in.Path, body)
	say("   ← %d %s   (answered after the broker's PUBACK)", code, answer)
	if code != http.StatusOK {
		return fail("the signed inbound webhook was refused")
	}
	select {
	case m := <-thermostat.Messages():
		m.Ack()
		say("   the thermostat receives the MQTT command %s = %s", m.Topic, m.Payload)
	case <-time.After(10 * time.Second):
		return fail("the MQTT command did not arrive")
	}
	code, answer = send(body, true, "msg_demo_1")
	say("   → the same request again (a replay): %d %s", code, answer)
	code, answer = send(body, false, "")
	say("   → without a signature: %d %s", code, answer)
	code, answer = send(`{"zone": "#", "mode": "heat"}`, true, "msg_demo_2")
	say("   → zone \"#\" (a topic injection): %d %s", code, answer)
	select {
	case m := <-thermostat.Messages():
		return fail("an unexpected MQTT command was published: %s", m.Topic)
	case <-time.After(300 * time.Millisecond):
		say("   nothing else was published.")
	}
	say("")
	say("Done: %d signed webhooks delivered and verified, and one signed command published. Try it with your broker:", delivered)
	say("  edgehook check -c configs/edgehook.toml && edgehook run -c configs/edgehook.toml")
	cancel()
	select {
	case err := <-runErr:
		if err != nil {
			return fail("%v", err)
		}
	case <-time.After(15 * time.Second):
		return fail("edgehook did not stop within 15s")
	}
	return exitOK
}

// mqttReady reports whether the daemon is connected and subscribed.
func mqttReady(b *bridge.Bridge) bool { return b.Ready() }

// freePorts returns n distinct free loopback addresses.
func freePorts(n int) ([]string, error) {
	var out []string
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		out = append(out, l.Addr().String())
	}
	return out, nil
}
