package bridge

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgehook/edgehook/bridge/mosquittotest"
	"github.com/edgehook/edgehook/rules"
)

const testSecret = "whsec_dGVzdC1zZWNyZXQtZm9yLWVkZ2Vob29rLXRlc3Rz"

// verifySW checks a Standard Webhooks request with code written from the spec
// alone (not the package under test): HMAC-SHA256 over "id.timestamp.body"
// with the base64-decoded whsec_ key, compared in constant time, timestamp
// within 5 minutes.
func verifySW(secret string, h http.Header, body []byte) error {
	key := []byte(secret)
	if b64, ok := strings.CutPrefix(secret, "whsec_"); ok {
		var err error
		if key, err = base64.StdEncoding.DecodeString(b64); err != nil {
			return err
		}
	}
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return errors.New("missing webhook headers")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return err
	}
	if d := time.Since(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("timestamp off by %v", d)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, s := range strings.Fields(sigs) {
		if hmac.Equal([]byte(s), []byte(want)) {
			return nil
		}
	}
	return errors.New("no matching signature")
}

// hit is one request a receiver got.
type hit struct {
	ID       string
	Header   http.Header
	Body     []byte
	Event    map[string]any
	Verified error
	At       time.Time
	Aborted  bool // the client gave up before we answered (hanging receiver)
	Code     int  // status answered (0 when the respond function wrote its own)
}

// receiver is an httptest server that records every request and answers what
// its respond function says (200 by default).
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	secret string

	mu      sync.Mutex // guards the fields below
	calls   int        // requests received so far, counted on arrival
	hits    []hit
	respond func(n int, r *http.Request, w http.ResponseWriter) int // n counts from 1
	notify  chan struct{}
}

func newReceiver(t *testing.T) *receiver {
	rc := &receiver{t: t, secret: testSecret, notify: make(chan struct{}, 1)}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.handle))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) URL() string { return rc.srv.URL + "/hook" }

func (rc *receiver) setRespond(f func(n int, r *http.Request, w http.ResponseWriter) int) {
	rc.mu.Lock()
	rc.respond = f
	rc.mu.Unlock()
}

func (rc *receiver) handle(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h := hit{ID: r.Header.Get("webhook-id"), Header: r.Header.Clone(), Body: body, At: time.Now()}
	h.Verified = verifySW(rc.secret, r.Header, body)
	_ = json.Unmarshal(body, &h.Event)
	rc.mu.Lock()
	rc.calls++
	n := rc.calls
	respond := rc.respond
	rc.mu.Unlock()
	code := http.StatusOK
	if respond != nil {
		code = respond(n, r, w)
	}
	if r.Context().Err() != nil {
		h.Aborted = true
	}
	h.Code = code
	rc.mu.Lock()
	rc.hits = append(rc.hits, h)
	rc.mu.Unlock()
	select {
	case rc.notify <- struct{}{}:
	default:
	}
	if code != 0 && !h.Aborted {
		w.WriteHeader(code)
	}
}

func (rc *receiver) all() []hit {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]hit(nil), rc.hits...)
}

// waitHits waits until at least n requests arrived.
func (rc *receiver) waitHits(n int, within time.Duration) []hit {
	rc.t.Helper()
	deadline := time.After(within)
	for {
		if h := rc.all(); len(h) >= n {
			return h
		}
		select {
		case <-rc.notify:
		case <-deadline:
			h := rc.all()
			rc.t.Fatalf("receiver got %d requests, want %d: %s", len(h), n, describe(h))
			return nil
		}
	}
}

// waitDelivered waits until n distinct webhook-ids were answered 200 and
// returns the first successful hit of each, in arrival order.
func (rc *receiver) waitDelivered(n int, within time.Duration) []hit {
	rc.t.Helper()
	deadline := time.After(within)
	for {
		var ok []hit
		seen := map[string]bool{}
		for _, h := range rc.all() {
			if h.Code == http.StatusOK && !seen[h.ID] {
				seen[h.ID] = true
				ok = append(ok, h)
			}
		}
		if len(ok) >= n {
			return ok
		}
		select {
		case <-rc.notify:
		case <-deadline:
			rc.t.Fatalf("%d webhooks delivered, want %d: %s", len(ok), n, describe(rc.all()))
			return nil
		}
	}
}

// quiet asserts that no more than n requests arrive within d.
func (rc *receiver) quiet(n int, d time.Duration) {
	rc.t.Helper()
	time.Sleep(d)
	if h := rc.all(); len(h) > n {
		rc.t.Fatalf("receiver got %d requests, want %d: %s", len(h), n, describe(h))
	}
}

func describe(hs []hit) string {
	var b strings.Builder
	for _, h := range hs {
		fmt.Fprintf(&b, "\n  %s %v rule=%v value=%v", h.ID, h.Event["type"], h.Event["rule"], h.Event["value"])
	}
	return b.String()
}

// daemon is an in-process edgehook.
type daemon struct {
	b       *Bridge
	cfg     *Config
	cfgPath string
	httpURL string
	cancel  context.CancelFunc
	done    chan error
	logs    *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testConfig returns a config file body for a broker, a receiver and extra TOML.
func testConfig(storeDir, brokerURL, receiverURL, extra string) string {
	return fmt.Sprintf(`
[mqtt]
broker = %q
client_id = "edgehook-under-test"
[http]
listen = "127.0.0.1:0"
[store]
dir = %q
[rules]
files = []
[[endpoint]]
name = "rx"
url = %q
secret = %q
timeout = "2s"
%s
`, brokerURL, storeDir, receiverURL, testSecret, extra)
}

// startDaemon loads cfgText, runs it until the test ends, and waits until it
// is ready (connected and subscribed).
func startDaemon(t *testing.T, cfgText string) *daemon {
	t.Helper()
	d := launch(t, cfgText)
	d.waitReady(t)
	return d
}

// startDaemonNotReady is startDaemon without waiting for readiness.
func startDaemonNotReady(t *testing.T, cfgText string) *daemon {
	t.Helper()
	return launch(t, cfgText)
}

func launch(t *testing.T, cfgText string, tweak ...func(*Bridge)) *daemon {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "edgehook.toml")
	if err := os.WriteFile(path, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, set, err := Load(path, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d := &daemon{b: New(cfg, set, log, Version{Version: "test"}), cfg: cfg, cfgPath: path, done: make(chan error, 1), logs: logs}
	d.b.Loader = func() (*Config, *rules.Set, error) { return Load(path, noEnv) }
	for _, f := range tweak {
		f(d.b)
	}
	ready := make(chan string, 1)
	d.b.OnReady = func(addr, _ string) { ready <- addr }
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	go func() { d.done <- d.b.Run(ctx) }()
	select {
	case addr := <-ready:
		d.httpURL = "http://" + addr
	case err := <-d.done:
		t.Fatalf("daemon did not start: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("daemon did not start")
	}
	t.Cleanup(func() {
		d.stop(t)
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs.String())
		}
	})
	return d
}

func (d *daemon) stop(t *testing.T) {
	d.cancel()
	select {
	case err := <-d.done:
		if err != nil {
			t.Errorf("Run returned %v", err)
		}
		d.done <- err // allow a second stop
	case <-time.After(20 * time.Second):
		t.Error("daemon did not stop within 20s")
	}
}

func (d *daemon) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !d.b.Ready() {
		if time.Now().After(deadline) {
			t.Fatalf("daemon not ready: %v", d.b.readiness())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// metric returns the value of one metric line from /metrics (0 if absent).
func (d *daemon) metric(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := http.Get(d.httpURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", line, err)
			}
			return f
		}
	}
	return 0
}

// testPublisher is a plain paho client publishing QoS 1 and waiting for PUBACK.
type testPublisher struct {
	t *testing.T
	c paho.Client
}

func newPublisher(t *testing.T, url string) *testPublisher {
	t.Helper()
	return newAuthPublisher(t, url, "", "")
}

func newAuthPublisher(t *testing.T, url, user, password string) *testPublisher {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("pub-%d", time.Now().UnixNano())).
		SetUsername(user).SetPassword(password).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(200 * time.Millisecond))
	tok := c.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("testPublisher connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return &testPublisher{t: t, c: c}
}

func (p *testPublisher) pub(topic string, payload any) {
	p.t.Helper()
	var b []byte
	switch v := payload.(type) {
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		b, _ = json.Marshal(v)
	}
	tok := p.c.Publish(topic, 1, false, b)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		p.t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// temp publishes {"temperature": v}.
func (p *testPublisher) temp(topic string, v float64) {
	p.t.Helper()
	p.pub(topic, fmt.Sprintf(`{"temperature": %v}`, v))
}

func startBroker(t *testing.T) *mosquittotest.Broker { return mosquittotest.Start(t) }

// spy subscribes to a filter and records every message published there.
type spy struct {
	t  *testing.T
	mu sync.Mutex
	ms []spied
}

type spied struct {
	Topic   string
	Payload string
}

func newSpy(t *testing.T, url, filter string) *spy {
	t.Helper()
	s := &spy{t: t}
	subscribed := make(chan struct{})
	var once sync.Once
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("spy-%d", time.Now().UnixNano())).
		SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(200 * time.Millisecond).
		SetOnConnectHandler(func(c paho.Client) {
			tok := c.Subscribe(filter, 1, func(_ paho.Client, m paho.Message) {
				if m.Retained() {
					return
				}
				s.mu.Lock()
				s.ms = append(s.ms, spied{m.Topic(), string(m.Payload())})
				s.mu.Unlock()
			})
			if tok.Wait() && tok.Error() == nil {
				once.Do(func() { close(subscribed) })
			}
		}))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("spy connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	select {
	case <-subscribed: // the subscription is in place
	case <-time.After(10 * time.Second):
		t.Fatalf("spy: subscription to %q not acknowledged", filter)
	}
	return s
}

func (s *spy) all() []spied {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]spied(nil), s.ms...)
}

// waitFor waits until n messages were seen.
func (s *spy) waitN(n int) []spied {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(s.all()) < n {
		if time.Now().After(deadline) {
			s.t.Fatalf("spy saw %d messages, want %d: %v", len(s.all()), n, s.all())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return s.all()
}

// none asserts nothing more than n messages were published (after a grace period).
func (s *spy) atMost(n int) {
	s.t.Helper()
	time.Sleep(200 * time.Millisecond)
	if got := s.all(); len(got) > n {
		s.t.Fatalf("published %d messages, want %d: %v", len(got), n, got)
	}
}

// signSW signs like a Standard Webhooks sender, written from the spec.
func signSW(secret, id string, ts time.Time, body []byte) http.Header {
	key := []byte(secret)
	if b64, ok := strings.CutPrefix(secret, "whsec_"); ok {
		key, _ = base64.StdEncoding.DecodeString(b64)
	}
	t := strconv.FormatInt(ts.Unix(), 10)
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + t + "."))
	mac.Write(body)
	h := http.Header{}
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", t)
	h.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	h.Set("Content-Type", "application/json")
	return h
}

// post sends body with headers and returns the status, the JSON answer and the headers.
func post(t *testing.T, url string, h http.Header, body []byte) (int, map[string]any, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m, resp.Header
}

// reload rewrites the daemon's config file, asks for a reload and waits for
// its outcome.
func (d *daemon) reload(t *testing.T, cfgText string) *reloadStatus {
	t.Helper()
	if err := os.WriteFile(d.cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	before := d.b.reloadState.Load()
	d.b.Reload()
	var rs *reloadStatus
	waitFor(t, "the reload", func() bool {
		rs = d.b.reloadState.Load()
		return rs != nil && rs != before
	})
	return rs
}
