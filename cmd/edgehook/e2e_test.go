package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgehook/edgehook/bridge/mosquittotest"
)

// binary is the edgehook binary built once for these tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "edgehook-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "edgehook")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building edgehook: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const secret = "whsec_ZTJlLXRlc3Qtc2VjcmV0LWZvci1lZGdlaG9vaw=="

// proc is the daemon running as a child process.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	http   string
	stderr *lockedBuffer
	done   chan error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func writeConfig(t *testing.T, dir, body string) string {
	t.Helper()
	path := filepath.Join(dir, "edgehook.toml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func daemonConfig(store, broker, listen, receiver, rules string) string {
	return fmt.Sprintf(`
[mqtt]
broker = %q
client_id = "edgehook-e2e"
keepalive = "5s"
[http]
listen = %q
[store]
dir = %q
sync = "fsync"
[rules]
files = []
[[endpoint]]
name = "rx"
url = %q
secret = %q
timeout = "2s"
%s`, broker, listen, store, receiver, secret, rules)
}

// start runs `edgehook run -c cfg` and waits until /readyz says ready.
func start(t *testing.T, cfg, listen string) *proc {
	t.Helper()
	p := &proc{t: t, http: "http://" + listen, stderr: &lockedBuffer{}, done: make(chan error, 1)}
	p.cmd = exec.Command(binary, "run", "-c", cfg, "--log-level", "debug")
	p.cmd.Stderr = p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("daemon stderr:\n%s", p.stderr.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(p.http + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		select {
		case err := <-p.done:
			t.Fatalf("daemon exited: %v\n%s", err, p.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon not ready\n%s", p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill sends SIGKILL and waits.
func (p *proc) kill() {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Kill()
	select {
	case err := <-p.done:
		p.done <- err
	case <-time.After(10 * time.Second):
	}
}

// term sends SIGTERM and returns the exit code and how long it took.
func (p *proc) term(within time.Duration) (int, time.Duration) {
	p.t.Helper()
	start := time.Now()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode(), time.Since(start)
	case <-time.After(within):
		p.t.Fatalf("daemon did not exit within %v after SIGTERM", within)
	}
	return -1, 0
}

func (p *proc) metric(name string) float64 {
	resp, err := http.Get(p.http + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

func waitUntil(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sink is a receiver that verifies signatures independently and records
// which webhook-ids it accepted for which event.
type sink struct {
	srv    *httptest.Server
	mu     sync.Mutex
	status int            // answered to every request
	hang   chan struct{}  // when set, requests wait for it to close
	calls  int            // requests that arrived, counted before any hang
	ok     map[string]int // webhook-id → times answered 200
	byKey  map[string]map[string]bool
	seen   map[string]string // webhook-id → event key, for every attempt whatever the answer
	tries  int
	bad    int
}

func newSink(t *testing.T) *sink {
	s := &sink{status: 200, ok: map[string]int{}, byKey: map[string]map[string]bool{}, seen: map[string]string{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.handle))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sink) handle(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.calls++
	hang := s.hang
	s.mu.Unlock()
	if hang != nil {
		select {
		case <-hang:
		case <-r.Context().Done():
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tries++
	var e struct {
		Payload struct {
			I int `json:"i"`
		} `json:"payload"`
		Series string `json:"series"`
	}
	_ = json.Unmarshal(body, &e)
	key := fmt.Sprintf("%s#%d", e.Series, e.Payload.I)
	id := r.Header.Get("webhook-id")
	s.seen[id] = key
	if !verify(r.Header, body) {
		s.bad++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	w.WriteHeader(s.status)
	if s.status != 200 {
		return
	}
	s.ok[id]++
	if s.byKey[key] == nil {
		s.byKey[key] = map[string]bool{}
	}
	s.byKey[key][id] = true
}

func (s *sink) set(status int) {
	s.mu.Lock()
	s.status = status
	s.mu.Unlock()
}

func (s *sink) events() (distinctEvents int, idsPerEvent map[string]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	idsPerEvent = map[string]int{}
	for k, ids := range s.byKey {
		idsPerEvent[k] = len(ids)
	}
	return len(s.byKey), idsPerEvent
}

// verify is an independent Standard Webhooks verifier (spec only).
func verify(h http.Header, body []byte) bool {
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(h.Get("webhook-id") + "." + h.Get("webhook-timestamp") + "."))
	mac.Write(body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, sig := range strings.Fields(h.Get("webhook-signature")) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return true
		}
	}
	return false
}

func publisher(t *testing.T, url string) paho.Client {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(fmt.Sprintf("e2e-pub-%d", time.Now().UnixNano())))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publisher: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

func publishN(t *testing.T, c paho.Client, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		tok := c.Publish(fmt.Sprintf("sensors/s%d", i%5), 1, false, fmt.Sprintf(`{"i": %d, "v": 1}`, i))
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
}

const forwardRule = `
[[rule]]
name = "all"
topic = "sensors/+"
forward = true
endpoints = ["rx"]
`

// kill -9 with undelivered events in the outbox; a restart on the same store
// delivers every one of them, with the webhook-ids they had before.
func TestKill9WithUndeliveredEvents(t *testing.T) {
	b := mosquittotest.Start(t)
	rx := newSink(t)
	rx.set(http.StatusServiceUnavailable)
	dir := t.TempDir()
	listen := fmt.Sprintf("127.0.0.1:%d", mosquittotest.FreePort(t))
	cfg := writeConfig(t, dir, daemonConfig(filepath.Join(dir, "store"), b.URL(), listen, rx.srv.URL, forwardRule))
	d := start(t, cfg, listen)
	const n = 40
	publishN(t, publisher(t, b.URL()), n)
	// One series is delivered in order, so only each series' first event is
	// attempted while the receiver fails.
	waitUntil(t, "all events in the outbox, each series attempted", 20*time.Second, func() bool {
		rx.mu.Lock()
		attempted := len(rx.seen)
		rx.mu.Unlock()
		return d.metric(`edgehook_outbox_jobs{endpoint="rx"}`) == n && attempted == 5
	})
	d.kill()
	rx.mu.Lock()
	before := map[string]string{} // event key → id attempted before the kill
	for id, key := range rx.seen {
		before[key] = id
	}
	rx.mu.Unlock()
	rx.set(http.StatusOK)
	start(t, cfg, listen)
	waitUntil(t, "every event delivered", 30*time.Second, func() bool {
		got, _ := rx.events()
		return got == n
	})
	_, ids := rx.events()
	for k, c := range ids {
		if c != 1 {
			t.Errorf("event %s delivered under %d webhook-ids", k, c)
		}
	}
	rx.mu.Lock()
	for key, old := range before {
		if !rx.byKey[key][old] || len(rx.byKey[key]) != 1 {
			t.Errorf("event %s: attempted as %s before the kill, delivered as %v after", key, old, rx.byKey[key])
		}
	}
	rx.mu.Unlock()
	t.Logf("%d events in the outbox at kill -9 (%d attempted); all delivered after restart, attempted ones under their old ids", n, len(before))
	if rx.bad != 0 {
		t.Errorf("%d requests failed verification", rx.bad)
	}
}

// kill -9 after events were committed and delivered but before the broker got
// its PUBACK: the broker redelivers the messages, and edgehook recognises them
// instead of minting new webhook-ids.
func TestKill9BetweenCommitAndPuback(t *testing.T) {
	b := mosquittotest.Start(t)
	proxy := mosquittotest.NewProxy(t, b.Addr())
	rx := newSink(t)
	dir := t.TempDir()
	listen := fmt.Sprintf("127.0.0.1:%d", mosquittotest.FreePort(t))
	cfg := writeConfig(t, dir, daemonConfig(filepath.Join(dir, "store"), proxy.URL(), listen, rx.srv.URL, forwardRule))
	d := start(t, cfg, listen)
	proxy.DropClientBytes(true) // from now on edgehook's PUBACKs never reach the broker
	const n = 10
	publishN(t, publisher(t, b.URL()), n)
	waitUntil(t, "first deliveries", 20*time.Second, func() bool { got, _ := rx.events(); return got == n })
	d.kill()
	proxy.DropClientBytes(false)
	d2 := start(t, cfg, listen)
	// Wait until the broker has redelivered everything to the new process.
	waitUntil(t, "the broker's redeliveries", 20*time.Second, func() bool {
		return d2.metric(`edgehook_messages_received_total`) >= n
	})
	time.Sleep(500 * time.Millisecond) // any wrongly minted events would be delivered by now
	got, ids := rx.events()
	redelivered := d2.metric(`edgehook_messages_skipped_total{reason="redelivered"}`)
	t.Logf("%d events delivered before kill -9; broker redelivered %v messages; %d distinct events after", n, redelivered, got)
	for k, c := range ids {
		if c != 1 {
			t.Errorf("event %s has %d webhook-ids", k, c)
		}
	}
	if got != n {
		t.Fatalf("%d distinct events, want %d", got, n)
	}
	// The broker must actually have redelivered, or this test proves nothing.
	if redelivered != n {
		t.Fatalf("%v messages recognised as redeliveries, want %d", redelivered, n)
	}
}

// SIGTERM: edgehook stops taking work, lets a delivery in flight finish, and exits 0.
func TestSIGTERMFinishesInFlight(t *testing.T) {
	b := mosquittotest.Start(t)
	rx := newSink(t)
	hang := make(chan struct{})
	rx.mu.Lock()
	rx.hang = hang
	rx.mu.Unlock()
	dir := t.TempDir()
	listen := fmt.Sprintf("127.0.0.1:%d", mosquittotest.FreePort(t))
	cfg := writeConfig(t, dir, daemonConfig(filepath.Join(dir, "store"), b.URL(), listen, rx.srv.URL,
		strings.Replace(forwardRule, `endpoints = ["rx"]`, `endpoints = ["rx"]`, 1)))
	cfgText, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, bytes.Replace(cfgText, []byte(`timeout = "2s"`), []byte(`timeout = "30s"`), 1), 0o600)
	d := start(t, cfg, listen)
	publishN(t, publisher(t, b.URL()), 1)
	waitUntil(t, "a delivery in flight", 10*time.Second, func() bool {
		rx.mu.Lock()
		defer rx.mu.Unlock()
		return rx.calls == 1
	})
	time.AfterFunc(time.Second, func() { close(hang) }) // the receiver answers 1 s into the shutdown
	code, took := d.term(15 * time.Second)
	if code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if got, _ := rx.events(); got != 1 {
		t.Fatalf("the delivery in flight did not finish (took %v)", took)
	}
}

// SIGTERM with a receiver that never answers: edgehook waits at most 10 s,
// exits 0, and the event stays in the outbox for the next start.
func TestSIGTERMLeavesTheRestInTheOutbox(t *testing.T) {
	if testing.Short() {
		t.Skip("takes 10 s")
	}
	b := mosquittotest.Start(t)
	rx := newSink(t)
	hang := make(chan struct{})
	rx.mu.Lock()
	rx.hang = hang
	rx.mu.Unlock()
	dir := t.TempDir()
	listen := fmt.Sprintf("127.0.0.1:%d", mosquittotest.FreePort(t))
	cfg := writeConfig(t, dir, strings.Replace(daemonConfig(filepath.Join(dir, "store"), b.URL(), listen, rx.srv.URL, forwardRule),
		`timeout = "2s"`, `timeout = "60s"`, 1))
	d := start(t, cfg, listen)
	publishN(t, publisher(t, b.URL()), 1)
	waitUntil(t, "a delivery in flight", 10*time.Second, func() bool {
		return d.metric(`edgehook_outbox_jobs{endpoint="rx"}`) == 1
	})
	code, took := d.term(20 * time.Second)
	if code != 0 || took > 15*time.Second {
		t.Fatalf("exit code %d after %v", code, took)
	}
	close(hang)
	start(t, cfg, listen)
	waitUntil(t, "delivery after restart", 20*time.Second, func() bool { got, _ := rx.events(); return got == 1 })
}

// `check` lists every problem as file:line: key: problem and exits 78.
func TestCheckExitCodes(t *testing.T) {
	dir := t.TempDir()
	base := `[rules]
files = []
[[endpoint]]
name = "ha"
url = "http://127.0.0.1:8123/api/webhook/x"
signing = "none"
`
	rule := `
[[rule]]
name = "cold"
topic = "home/+/temperature"
below = 18.0
endpoints = ["ha"]
`
	tests := []struct {
		name, body, want string
	}{
		{"unknown key", base + "[store]\ncolour = \"red\"\n", `edgehook.toml:8: store.colour: unknown key`},
		{"integer duration", base + "timeout = 30\n", `edgehook.toml:7: endpoint.timeout: durations must be strings`},
		{"duplicate rule name", base + rule + rule, `edgehook.toml:15: rule.name: duplicate rule name "cold"`},
		{"unknown endpoint", base + strings.Replace(rule, `["ha"]`, `["nope"]`, 1), `edgehook.toml:12: rule.endpoints: unknown endpoint "nope"`},
		{"syntax error", base + "[mqtt\nbroker = 1\n", `edgehook.toml:7: endpoint: expected`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeConfig(t, t.TempDir(), tt.body)
			var stdout, stderr bytes.Buffer
			cmd := exec.Command(binary, "check", "-c", path)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if code := cmd.ProcessState.ExitCode(); code != 78 {
				t.Fatalf("exit code %d (%v), want 78; stderr:\n%s", code, err, stderr.String())
			}
			if !strings.Contains(stderr.String(), filepath.Dir(path)+"/"+tt.want) {
				t.Fatalf("stderr:\n%s\nwant it to contain %q", stderr.String(), tt.want)
			}
			if !regexp.MustCompile(`(?m)^\S+\.toml:\d+: `).MatchString(stderr.String()) {
				t.Fatalf("not file:line: %s", stderr.String())
			}
		})
	}
	// A valid file exits 0.
	path := writeConfig(t, dir, base+rule)
	if out, err := exec.Command(binary, "check", "-c", path).CombinedOutput(); err != nil {
		t.Fatalf("valid config: %v\n%s", err, out)
	}
	// A bad config at `run` exits 78 too, before doing anything.
	bad := writeConfig(t, t.TempDir(), base+"[store]\ncolour = 1\n")
	cmd := exec.Command(binary, "run", "-c", bad)
	if out, _ := cmd.CombinedOutput(); cmd.ProcessState.ExitCode() != 78 || !strings.Contains(string(out), "store.colour") {
		t.Fatalf("run with a bad config: exit %d\n%s", cmd.ProcessState.ExitCode(), out)
	}
}

func TestVersionAndUsage(t *testing.T) {
	out, err := exec.Command(binary, "version").Output()
	// PRODUCT.md §1: version, commit, go version, GOOS/GOARCH(/GOARM).
	if err != nil || !regexp.MustCompile(`^edgehook \S+ commit=\S+ go1\.\S+ `+runtime.GOOS+"/"+runtime.GOARCH+`\b`).Match(out) {
		t.Fatalf("version: %v %q", err, out)
	}
	cmd := exec.Command(binary, "frobnicate")
	_ = cmd.Run()
	if cmd.ProcessState.ExitCode() != 2 {
		t.Fatalf("unknown command exits %d, want 2", cmd.ProcessState.ExitCode())
	}
	// Asking for help is not a usage error; a bad flag is.
	for _, args := range [][]string{{"--help"}, {"run", "--help"}, {"check", "-h"}, {"sign", "--help"}, {"verify", "--help"},
		{"test-rule", "--help"}, {"demo", "--help"}, {"deadletters", "--help"}, {"deadletters", "list", "--help"},
		{"service", "--help"}, {"service", "status", "--help"}} {
		if out, err := exec.Command(binary, args...).CombinedOutput(); err != nil || !strings.Contains(strings.ToLower(string(out)), "usage") {
			t.Errorf("%v: %v\n%s", args, err, out)
		}
	}
	cmd = exec.Command(binary, "check", "--frobnicate")
	_ = cmd.Run()
	if cmd.ProcessState.ExitCode() != 2 {
		t.Fatalf("a bad flag exits %d, want 2", cmd.ProcessState.ExitCode())
	}
}

// The demo runs the whole loop on its own and ends by itself.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "demo")
	cmd.Dir = t.TempDir() // it must not depend on the working directory
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	for _, want := range []string{"rule.fired", "rule.resolved", "signature verified", "home/heating/living/set = heat", "without a signature: 401", "a topic injection): 422", "Done: 2 signed webhooks"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("demo output lacks %q:\n%s", want, out)
		}
	}
}

// `edgehook sign` produces headers a running daemon accepts, and `edgehook
// verify` tells a valid signature from an altered body.
func TestSignAndVerify(t *testing.T) {
	b := mosquittotest.Start(t)
	rx := newSink(t)
	dir := t.TempDir()
	listen := fmt.Sprintf("127.0.0.1:%d", mosquittotest.FreePort(t))
	secretFile := filepath.Join(dir, "heating.secret")
	os.WriteFile(secretFile, []byte("whsec_c2lnbi1hbmQtdmVyaWZ5LXRlc3Q=\n"), 0o600)
	cfg := writeConfig(t, dir, daemonConfig(filepath.Join(dir, "store"), b.URL(), listen, rx.srv.URL, forwardRule)+fmt.Sprintf(`
[[inbound]]
name = "heating"
path = "/hooks/heating"
secret_file = %q
topic = "home/heating/{{ .zone }}/set"
allow_topics = ["home/heating/+/set"]
payload = "{{ .mode }}"
`, secretFile))
	start(t, cfg, listen)
	body := `{"zone": "living", "mode": "heat"}`
	sign := exec.Command(binary, "sign", "-c", cfg, "--route", "heating")
	sign.Stdin = strings.NewReader(body)
	out, err := sign.Output()
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	headersFile := filepath.Join(dir, "headers")
	os.WriteFile(headersFile, out, 0o600)
	req, _ := http.NewRequest(http.MethodPost, "http://"+listen+"/hooks/heating", strings.NewReader(body))
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, _ := strings.Cut(line, ": ")
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("the daemon answered %d to a request signed by `edgehook sign`", resp.StatusCode)
	}
	verify := func(body string) (int, string) {
		cmd := exec.Command(binary, "verify", "--secret-file", secretFile, "--headers-file", headersFile)
		cmd.Stdin = strings.NewReader(body)
		out, _ := cmd.Output()
		return cmd.ProcessState.ExitCode(), strings.TrimSpace(string(out))
	}
	if code, out := verify(body); code != 0 || out != "valid" {
		t.Fatalf("verify: %d %q", code, out)
	}
	if code, out := verify(strings.Replace(body, "heat", "cool", 1)); code != 1 || !strings.HasPrefix(out, "invalid") {
		t.Fatalf("verify of an altered body: %d %q", code, out)
	}
}

// Rule state survives kill -9: a pending `for`, a `stale` timer and a `drop`
// window. After the restart each fires exactly once; another restart fires
// nothing again.
func TestKill9MidTimersAndWindow(t *testing.T) {
	b := mosquittotest.Start(t)
	rx := newSink(t)
	dir := t.TempDir()
	listen := fmt.Sprintf("127.0.0.1:%d", mosquittotest.FreePort(t))
	cfg := writeConfig(t, dir, daemonConfig(filepath.Join(dir, "store"), b.URL(), listen, rx.srv.URL, `
[[rule]]
name = "held"
topic = "r/for"
above = 10.0
for = "3s"
endpoints = ["rx"]

[[rule]]
name = "silent"
topic = "r/stale"
stale = "3s"
endpoints = ["rx"]

[[rule]]
name = "dropped"
topic = "r/drop"
drop = 5.0
within = "1m"
endpoints = ["rx"]
`))
	d := start(t, cfg, listen)
	pub := publisher(t, b.URL())
	send := func(topic, payload string) {
		if tok := pub.Publish(topic, 1, false, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	send("r/for", "5")
	send("r/for", "15")  // the `for` wait starts
	send("r/stale", "1") // the stale timer starts
	send("r/drop", "20") // the window's maximum
	waitUntil(t, "all four readings committed", 10*time.Second, func() bool {
		return d.metric("edgehook_messages_received_total") == 4
	})
	d.kill()
	time.Sleep(4 * time.Second) // both deadlines pass while edgehook is dead
	d = start(t, cfg, listen)
	send("r/drop", "14") // 6 below the remembered 20
	rules := func() map[string]int {
		rx.mu.Lock()
		defer rx.mu.Unlock()
		n := map[string]int{}
		for key := range rx.byKey {
			n[strings.SplitN(key, "#", 2)[0]]++
		}
		return n
	}
	waitUntil(t, "three events", 15*time.Second, func() bool {
		rx.mu.Lock()
		defer rx.mu.Unlock()
		return len(rx.ok) >= 3
	})
	time.Sleep(time.Second)
	rx.mu.Lock()
	total := len(rx.ok)
	rx.mu.Unlock()
	if total != 3 {
		t.Fatalf("%d events after the restart, want 3 (held, silent, dropped): %v", total, rules())
	}
	// A clean restart does not fire any of them again.
	if code, _ := d.term(15 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	start(t, cfg, listen)
	time.Sleep(3 * time.Second) // longer than the stale grace
	rx.mu.Lock()
	defer rx.mu.Unlock()
	if len(rx.ok) != 3 {
		t.Fatalf("%d events after a second restart, want still 3", len(rx.ok))
	}
	t.Logf("after kill -9: %s", grepLog(d.stderr.String(), "mqtt connected", "rule=silent series=r/stale event=rule.fired"))
}

func grepLog(log string, subs ...string) string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		for _, s := range subs {
			if strings.Contains(l, s) {
				out = append(out, l[:min(len(l), 60)])
			}
		}
	}
	return strings.Join(out, " | ")
}

// test-rule runs the real evaluator offline and explains each decision.
func TestTestRule(t *testing.T) {
	dir := t.TempDir()
	cfg := writeConfig(t, dir, `
[rules]
files = []
[[endpoint]]
name = "ha"
url = "http://127.0.0.1:1/x"
signing = "none"
[[rule]]
name = "cold"
topic = "home/+/temperature"
value = "temperature"
below = 18.0
for = "2m"
endpoints = ["ha"]
`)
	cmd := exec.Command(binary, "test-rule", "-c", cfg, "-v", "--readings", "-", "--until", "2026-11-25T07:10:00Z")
	cmd.Stdin = strings.NewReader(`# time topic payload
2026-11-25T07:00:00Z home/living/temperature {"temperature": 19}
2026-11-25T07:01:00Z home/living/temperature {"temperature": 17}
2026-11-25T07:02:00Z home/living/temperature {"temperature": "hot"}
2026-11-25T07:02:00Z home/other {"x": 1}
`)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{
		"no event: not below 18",
		"fires at 2026-11-25T07:03:00Z",
		"rejected: not a number",
		"(no rule matches this topic)",
		"2026-11-25T07:03:00Z  (timer)",
		"FIRED: below 18 held for 2m0s",
		`→ endpoint ha: rule.fired {"type":"rule.fired"`,
		"1 event(s)",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// Usage errors exit 2; a bad config 78.
	for args, code := range map[string]int{"--topic": 2, "--bogus x": 2, "--topic a --payload 1 --at yesterday": 2} {
		c := exec.Command(binary, append([]string{"test-rule", "-c", cfg}, strings.Fields(args)...)...)
		c.Run()
		if c.ProcessState.ExitCode() != code {
			t.Errorf("test-rule %s: exit %d, want %d", args, c.ProcessState.ExitCode(), code)
		}
	}
	bad := writeConfig(t, t.TempDir(), "[store]\ncolour = 1\n")
	c := exec.Command(binary, "test-rule", "-c", bad, "--topic", "a", "--payload", "1")
	c.Run()
	if c.ProcessState.ExitCode() != 78 {
		t.Errorf("bad config: exit %d", c.ProcessState.ExitCode())
	}
}

// SIGHUP reloads: a new rule takes effect; a broken file is refused and the
// daemon keeps running with what it had.
func TestSIGHUPReload(t *testing.T) {
	b := mosquittotest.Start(t)
	rx := newSink(t)
	dir := t.TempDir()
	listen := fmt.Sprintf("127.0.0.1:%d", mosquittotest.FreePort(t))
	base := daemonConfig(filepath.Join(dir, "store"), b.URL(), listen, rx.srv.URL, forwardRule)
	cfg := writeConfig(t, dir, base)
	d := start(t, cfg, listen)
	pub := publisher(t, b.URL())
	os.WriteFile(cfg, []byte(base+`
[[rule]]
name = "added"
topic = "other/+"
forward = true
endpoints = ["rx"]
`), 0o600)
	d.cmd.Process.Signal(syscall.SIGHUP)
	waitUntil(t, "the reload", 10*time.Second, func() bool { return d.metric(`edgehook_config_reloads_total{result="ok"}`) == 1 })
	if tok := pub.Publish("other/x", 1, false, `{"i": 1}`); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	waitUntil(t, "the added rule's event", 10*time.Second, func() bool { got, _ := rx.events(); return got == 1 })

	os.WriteFile(cfg, []byte(base+"\n[[rule]]\nname = \"broken\"\n"), 0o600)
	d.cmd.Process.Signal(syscall.SIGHUP)
	waitUntil(t, "the refused reload", 10*time.Second, func() bool { return d.metric(`edgehook_config_reloads_total{result="error"}`) == 1 })
	publishN(t, pub, 1) // the old rules still work
	waitUntil(t, "an event under the old rules", 10*time.Second, func() bool { got, _ := rx.events(); return got == 2 })
	waitUntil(t, "the failed reload in the log", 10*time.Second, func() bool {
		return strings.Contains(d.stderr.String(), "reload failed; still running the previous configuration")
	})
}

// Under systemd (Type=notify) edgehook says READY=1 once it runs,
// RELOADING=1 then READY=1 around a SIGHUP reload, WATCHDOG=1 while ingest
// is alive, and STOPPING=1 on SIGTERM.
func TestSystemdNotify(t *testing.T) {
	b := mosquittotest.Start(t)
	rx := newSink(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "notify")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	states := make(chan string, 64)
	go func() {
		buf := make([]byte, 512)
		for {
			n, err := l.Read(buf)
			if err != nil {
				close(states)
				return
			}
			states <- string(buf[:n])
		}
	}()
	listen := fmt.Sprintf("127.0.0.1:%d", mosquittotest.FreePort(t))
	cfg := writeConfig(t, dir, daemonConfig(filepath.Join(dir, "store"), b.URL(), listen, rx.srv.URL, forwardRule))
	cmd := exec.Command(binary, "run", "-c", cfg)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=400000")
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	expect := func(prefix string) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case s := <-states:
				if strings.HasPrefix(s, prefix) {
					return
				}
			case <-deadline:
				t.Fatalf("no %s from edgehook\n%s", prefix, stderr.String())
			}
		}
	}
	expect("READY=1")
	expect("WATCHDOG=1")
	cmd.Process.Signal(syscall.SIGHUP)
	expect("RELOADING=1")
	expect("READY=1")
	cmd.Process.Signal(syscall.SIGTERM)
	expect("STOPPING=1")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
}

// `service install --root DIR` stages exactly what a real install writes: the
// binary, the config, and the very unit the package ships. The unit passes
// systemd-analyze verify and rates 2.0 or better in systemd-analyze security.
func TestServiceInstallStaged(t *testing.T) {
	root := t.TempDir()
	out, err := exec.Command(binary, "service", "install", "--root", root).CombinedOutput()
	if err != nil {
		t.Fatalf("install: %v\n%s", err, out)
	}
	unit, err := os.ReadFile(filepath.Join(root, "etc/systemd/system/edgehook.service"))
	if err != nil {
		t.Fatal(err)
	}
	shipped, _ := os.ReadFile("../../packaging/systemd/edgehook.service")
	if string(unit) != string(shipped) {
		t.Fatal("the installed unit differs from packaging/systemd/edgehook.service")
	}
	for _, want := range []string{"Type=notify", "WatchdogSec=", "ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure",
		"User=edgehook", "StateDirectory=edgehook", "After=network-online.target", "Wants=network-online.target",
		"ProtectSystem=strict", "NoNewPrivileges=yes", "PrivateTmp=yes", "ProtectHome=yes", "RestrictAddressFamilies=", "CapabilityBoundingSet=\n"} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("unit lacks %q", want)
		}
	}
	for _, f := range []string{"usr/bin/edgehook", "etc/edgehook/edgehook.toml", "etc/edgehook/rules.d", "etc/default/edgehook"} {
		if _, err := os.Stat(filepath.Join(root, f)); err != nil {
			t.Errorf("not installed: %s", f)
		}
	}
	if out, err := exec.Command(filepath.Join(root, "usr/bin/edgehook"), "check", "-c", filepath.Join(root, "etc/edgehook/edgehook.toml")).CombinedOutput(); err != nil {
		t.Errorf("check of the installed config: %v\n%s", err, out)
	}
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		if os.Getenv("EDGEHOOK_REQUIRE_MOSQUITTO") == "1" {
			t.Fatal("systemd-analyze is missing (make deps installs systemd)")
		}
		t.Skip("SKIPPED the unit checks: systemd-analyze is not installed")
	}
	// verify needs the units the unit refers to, and /bin/kill (ExecReload).
	copyTree(t, "/lib/systemd/system", filepath.Join(root, "lib/systemd/system"))
	os.MkdirAll(filepath.Join(root, "bin"), 0o755)
	if k, err := exec.LookPath("kill"); err == nil {
		b, _ := os.ReadFile(k)
		os.WriteFile(filepath.Join(root, "bin/kill"), b, 0o755)
	}
	if out, err := exec.Command("systemd-analyze", "verify", "--root="+root, filepath.Join(root, "etc/systemd/system/edgehook.service")).CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	sec, _ := exec.Command("systemd-analyze", "security", "--offline=yes", filepath.Join(root, "etc/systemd/system/edgehook.service")).CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for edgehook.service: ([0-9.]+)`).FindStringSubmatch(string(sec))
	if m == nil {
		t.Fatalf("no exposure level:\n%s", sec)
	}
	if lvl, _ := strconv.ParseFloat(m[1], 64); lvl > 2.0 {
		t.Errorf("exposure %v, want 2.0 or better", lvl)
	}
	t.Logf("systemd-analyze security: exposure %s", m[1])

	if out, err := exec.Command(binary, "service", "uninstall", "--root", root).CombinedOutput(); err != nil {
		t.Fatalf("uninstall: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/systemd/system/edgehook.service")); !os.IsNotExist(err) {
		t.Fatal("the unit is still there after uninstall")
	}
	// With the package's unit present, install refuses.
	pkgRoot := t.TempDir()
	os.MkdirAll(filepath.Join(pkgRoot, "lib/systemd/system"), 0o755)
	os.WriteFile(filepath.Join(pkgRoot, "lib/systemd/system/edgehook.service"), shipped, 0o644)
	cmd := exec.Command(binary, "service", "install", "--root", pkgRoot)
	out, _ = cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() == 0 || !strings.Contains(string(out), "installed by the edgehook package") {
		t.Fatalf("install over a packaged unit: exit %d\n%s", cmd.ProcessState.ExitCode(), out)
	}
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		info, err := os.Lstat(p)
		if err != nil {
			return nil
		}
		switch {
		case d.IsDir():
			os.MkdirAll(target, 0o755)
		case info.Mode()&os.ModeSymlink != 0:
			if l, err := os.Readlink(p); err == nil {
				os.Symlink(l, target)
			}
		default:
			if b, err := os.ReadFile(p); err == nil {
				os.WriteFile(target, b, 0o644)
			}
		}
		return nil
	})
}
