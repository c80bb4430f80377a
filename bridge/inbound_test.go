package bridge

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgehook/edgehook/bridge/mosquittotest"
)

const inboundRoutes = `
[[inbound]]
name = "heating"
path = "/hooks/heating"
secret = "whsec_dGVzdC1zZWNyZXQtZm9yLWVkZ2Vob29rLXRlc3Rz"
topic = "home/heating/{{ .zone }}/set"
allow_topics = ["home/heating/+/set"]
payload = "{{ .mode }}"
max_body = "256KiB"
rate = 1000.0
burst = 1000

[[inbound]]
name = "lan-only"
path = "/hooks/lan"
verify = "none"
allow_ips = ["10.0.0.0/8"]
topic = "home/lan/set"

[[inbound]]
name = "limited"
path = "/hooks/limited"
secret = "whsec_dGVzdC1zZWNyZXQtZm9yLWVkZ2Vob29rLXRlc3Rz"
rate = 0.5
burst = 1
topic = "home/limited/set"

[[inbound]]
name = "small"
path = "/hooks/small"
secret = "whsec_dGVzdC1zZWNyZXQtZm9yLWVkZ2Vob29rLXRlc3Rz"
max_body = "100B"
topic = "home/small/set"

[[inbound]]
name = "gh"
path = "/hooks/github"
verify = "github"
secret = "gh-secret"
topic = "home/gh/set"

[[inbound]]
name = "tok"
path = "/hooks/token"
verify = "token"
secret = "tok-secret"
topic = "home/tok/{{ .room }}/set"
allow_topics = ["home/tok/+/set"]
`

type inboundEnv struct {
	d   *daemon
	spy *spy
	url string
}

func startInbound(t *testing.T, tweak ...func(*Bridge)) *inboundEnv {
	t.Helper()
	b := startBroker(t)
	rx := newReceiver(t)
	cfg := testConfig(t.TempDir(), b.URL(), rx.URL(), coldRule+inboundRoutes)
	d := launch(t, cfg, tweak...)
	d.waitReady(t)
	return &inboundEnv{d: d, spy: newSpy(t, b.URL(), "home/#"), url: d.httpURL}
}

var idSeq struct {
	sync.Mutex
	n int
}

func nextID() string {
	idSeq.Lock()
	defer idSeq.Unlock()
	idSeq.n++
	return fmt.Sprintf("msg_test_%d_%d", time.Now().UnixNano(), idSeq.n)
}

func (e *inboundEnv) signed(t *testing.T, path, body string) (int, map[string]any, http.Header) {
	t.Helper()
	return post(t, e.url+path, signSW(testSecret, nextID(), time.Now(), []byte(body)), []byte(body))
}

// Every row of PRODUCT.md §5's table: the status code, and nothing published
// for a rejection.
func TestInboundStatusTable(t *testing.T) {
	e := startInbound(t)
	url := e.url

	// 200: published, answered after the PUBACK.
	body := []byte(`{"zone": "living", "mode": "heat"}`)
	h := signSW(testSecret, "msg_first", time.Now(), body)
	code, ans, _ := post(t, url+"/hooks/heating", h, body)
	if code != 200 || ans["id"] != "msg_first" || ans["topic"] != "home/heating/living/set" || ans["duplicate"] != nil {
		t.Fatalf("200: %d %v", code, ans)
	}
	if got := e.spy.waitN(1); got[0] != (spied{"home/heating/living/set", "heat"}) {
		t.Fatalf("published %v", got)
	}
	// 200 duplicate: the same id again publishes nothing.
	code, ans, _ = post(t, url+"/hooks/heating", h, body)
	if code != 200 || ans["duplicate"] != true || ans["topic"] != "home/heating/living/set" {
		t.Fatalf("duplicate: %d %v", code, ans)
	}

	rows := []struct {
		name   string
		do     func() (int, map[string]any, http.Header)
		want   int
		header string // a header the answer must carry
	}{
		{"400 malformed JSON", func() (int, map[string]any, http.Header) { return e.signed(t, "/hooks/heating", `{"zone": "living", `) }, 400, ""},
		{"400 missing field", func() (int, map[string]any, http.Header) { return e.signed(t, "/hooks/heating", `{"mode": "heat"}`) }, 400, ""},
		{"400 null field (payload)", func() (int, map[string]any, http.Header) {
			return e.signed(t, "/hooks/heating", `{"zone": "living", "mode": null}`)
		}, 400, ""},
		{"400 null field (topic)", func() (int, map[string]any, http.Header) {
			return e.signed(t, "/hooks/heating", `{"zone": null, "mode": "heat"}`)
		}, 400, ""},
		{"401 bad signature", func() (int, map[string]any, http.Header) {
			hh := signSW("whsec_b3RoZXItc2VjcmV0", nextID(), time.Now(), body)
			return post(t, url+"/hooks/heating", hh, body)
		}, 401, ""},
		{"401 timestamp outside tolerance", func() (int, map[string]any, http.Header) {
			old := time.Now().Add(-10 * time.Minute)
			return post(t, url+"/hooks/heating", signSW(testSecret, nextID(), old, body), body)
		}, 401, ""},
		{"403 peer not in allow_ips", func() (int, map[string]any, http.Header) { return post(t, url+"/hooks/lan", nil, []byte(`{}`)) }, 403, ""},
		{"404 unknown path", func() (int, map[string]any, http.Header) { return e.signed(t, "/hooks/nope", string(body)) }, 404, ""},
		{"404 encoded slash", func() (int, map[string]any, http.Header) { return e.signed(t, "/hooks%2Fheating", string(body)) }, 404, ""},
		{"405 not POST", func() (int, map[string]any, http.Header) {
			resp, err := http.Get(url + "/hooks/heating")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode, nil, resp.Header
		}, 405, "Allow"},
		{"413 body over max_body", func() (int, map[string]any, http.Header) {
			return e.signed(t, "/hooks/small", `{"pad": "`+strings.Repeat("x", 200)+`"}`)
		}, 413, ""},
		{"422 topic not allowed", func() (int, map[string]any, http.Header) {
			return e.signed(t, "/hooks/heating", `{"zone": "a/b", "mode": "heat"}`)
		}, 422, ""},
		{"429 rate limited", func() (int, map[string]any, http.Header) {
			e.signed(t, "/hooks/limited", `{}`) // takes the one token (and publishes)
			return e.signed(t, "/hooks/limited", `{}`)
		}, 429, "Retry-After"},
	}
	for _, r := range rows {
		before := len(e.spy.all())
		code, ans, hdr := r.do()
		if code != r.want {
			t.Errorf("%s: status %d (%v)", r.name, code, ans)
		}
		if r.header != "" && hdr.Get(r.header) == "" {
			t.Errorf("%s: no %s header", r.name, r.header)
		}
		if ans != nil && (ans["status"] != float64(code) || ans["error"] == nil) {
			t.Errorf("%s: error body %v", r.name, ans)
		}
		want := before
		if r.want == 429 {
			want++ // the request that took the token
			e.spy.waitN(want)
		}
		time.Sleep(100 * time.Millisecond)
		if got := len(e.spy.all()); got != want {
			t.Errorf("%s: %d messages published, want %d: %v", r.name, got-before, want-before, e.spy.all()[before:])
		}
	}
	if strings.Contains(e.d.logs.String(), "dGVzdC1zZWNyZXQ") {
		t.Error("a secret appears in the log")
	}
	// The counters moved.
	if got := e.d.metric(t, `edgehook_inbound_requests_total{route="heating",code="401"}`); got != 2 {
		t.Errorf("401 counter = %v", got)
	}
}

// 503 with Retry-After while the broker is down, nothing lost afterwards:
// once it is back the next request is published.
func TestInboundBrokerDown(t *testing.T) {
	b := startBroker(t)
	rx := newReceiver(t)
	d := startDaemon(t, testConfig(t.TempDir(), b.URL(), rx.URL(), coldRule+inboundRoutes))
	body := []byte(`{"zone": "living", "mode": "heat"}`)
	b.Stop()
	waitFor(t, "disconnect noticed", func() bool { return !d.b.mq.Connected() })
	code, ans, hdr := post(t, d.httpURL+"/hooks/heating", signSW(testSecret, "msg_down", time.Now(), body), body)
	if code != 503 || hdr.Get("Retry-After") == "" {
		t.Fatalf("broker down: %d %v %v", code, ans, hdr)
	}
	b.Restart()
	d.waitReady(t)
	s := newSpy(t, b.URL(), "home/#")
	// The sender retries the same request: it is published, once.
	code, ans, _ = post(t, d.httpURL+"/hooks/heating", signSW(testSecret, "msg_down", time.Now(), body), body)
	if code != 200 || ans["duplicate"] != nil {
		t.Fatalf("after the broker came back: %d %v", code, ans)
	}
	s.waitN(1)
}

// Signature checks beyond the table: one changed byte, future timestamps,
// each header missing, malformed signature headers, GitHub and token
// schemes, and key rotation.
func TestInboundSignatures(t *testing.T) {
	e := startInbound(t)
	body := []byte(`{"zone": "kitchen", "mode": "off"}`)
	now := time.Now()
	valid := signSW(testSecret, "msg_sig", now, body)
	with := func(k, v string) http.Header {
		h := valid.Clone()
		if v == "" {
			h.Del(k)
		} else {
			h.Set(k, v)
		}
		return h
	}
	cases := []struct {
		name string
		h    http.Header
		body []byte
	}{
		{"one byte changed", valid, []byte(`{"zone": "kitchen", "mode": "of"}`)},
		{"whitespace changed", valid, []byte(`{"zone":"kitchen", "mode": "off"}`)},
		{"future timestamp", signSW(testSecret, "msg_f", now.Add(6*time.Minute), body), body},
		{"stale timestamp", signSW(testSecret, "msg_s", now.Add(-6*time.Minute), body), body},
		{"no webhook-id", with("webhook-id", ""), body},
		{"no webhook-timestamp", with("webhook-timestamp", ""), body},
		{"no webhook-signature", with("webhook-signature", ""), body},
		{"signature without comma", with("webhook-signature", "v1"), body},
		{"signature not base64", with("webhook-signature", "v1,!!!!"), body},
		{"only another version", with("webhook-signature", strings.Replace(valid.Get("webhook-signature"), "v1,", "v2,", 1)), body},
		{"id swapped", with("webhook-id", "msg_other"), body},
		{"timestamp not a number", with("webhook-timestamp", "soon"), body},
	}
	for _, c := range cases {
		if code, ans, _ := post(t, e.url+"/hooks/heating", c.h, c.body); code != 401 {
			t.Errorf("%s: %d %v", c.name, code, ans)
		}
	}
	e.spy.atMost(0)

	// Rotation: the sender signs with old and new secrets during the overlap.
	oldSecret := "whsec_b2xkLXNlY3JldC1mb3Itcm90YXRpb24="
	both := signSW(testSecret, "msg_rot", now, body)
	old := signSW(oldSecret, "msg_rot", now, body)
	both.Set("webhook-signature", old.Get("webhook-signature")+" "+both.Get("webhook-signature"))
	if code, ans, _ := post(t, e.url+"/hooks/heating", both, body); code != 200 {
		t.Fatalf("old+new signatures: %d %v", code, ans)
	}
	// After the overlap, a request signed with the old secret alone is refused.
	if code, _, _ := post(t, e.url+"/hooks/heating", signSW(oldSecret, "msg_rot2", now, body), body); code != 401 {
		t.Fatalf("old secret alone: %d", code)
	}

	// GitHub: X-Hub-Signature-256 over the body.
	mac := hmac.New(sha256.New, []byte("gh-secret"))
	mac.Write(body)
	gh := http.Header{"X-Hub-Signature-256": {"sha256=" + hex.EncodeToString(mac.Sum(nil))}, "X-Github-Delivery": {"gh-1"}}
	if code, ans, _ := post(t, e.url+"/hooks/github", gh, body); code != 200 {
		t.Fatalf("github: %d %v", code, ans)
	}
	if code, _, _ := post(t, e.url+"/hooks/github", gh, []byte(`{"zone": "kitchen", "mode": "on"}`)); code != 401 {
		t.Fatalf("github altered body: %d", code)
	}
	// Token.
	tok := http.Header{"X-Edgehook-Token": {"tok-secret"}}
	if code, ans, _ := post(t, e.url+"/hooks/token", tok, []byte(`{"room": "hall"}`)); code != 200 {
		t.Fatalf("token: %d %v", code, ans)
	}
	for _, bad := range []string{"", "tok-secre", "tok-secret2"} {
		if code, _, _ := post(t, e.url+"/hooks/token", http.Header{"X-Edgehook-Token": {bad}}, []byte(`{"room": "hall"}`)); code != 401 {
			t.Fatalf("token %q: %d", bad, code)
		}
	}
	got := e.spy.waitN(3)
	e.spy.atMost(3)
	if got[0].Topic != "home/heating/kitchen/set" || got[1].Topic != "home/gh/set" || got[2].Topic != "home/tok/hall/set" {
		t.Fatalf("published: %v", got)
	}
}

// A replayed webhook-id publishes nothing: sequentially, 50 copies in
// parallel, and after a restart of the daemon.
func TestInboundReplay(t *testing.T) {
	b := startBroker(t)
	rx := newReceiver(t)
	cfg := testConfig(t.TempDir(), b.URL(), rx.URL(), coldRule+inboundRoutes)
	d := startDaemon(t, cfg)
	s := newSpy(t, b.URL(), "home/#")
	body := []byte(`{"zone": "bath", "mode": "heat"}`)
	h := signSW(testSecret, "msg_replay", time.Now(), body)
	for i := 0; i < 3; i++ {
		if code, _, _ := post(t, d.httpURL+"/hooks/heating", h, body); code != 200 {
			t.Fatalf("copy %d: %d", i, code)
		}
	}
	s.waitN(1)
	s.atMost(1)

	// 50 copies at once: exactly one publish, every copy answered 200.
	hp := signSW(testSecret, "msg_parallel", time.Now(), body)
	var wg sync.WaitGroup
	codes := make(chan int, 50)
	dups := make(chan bool, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, ans, _ := post(t, d.httpURL+"/hooks/heating", hp, body)
			codes <- code
			dups <- ans["duplicate"] == true
		}()
	}
	wg.Wait()
	close(codes)
	close(dups)
	nDup := 0
	for c := range codes {
		if c != 200 {
			t.Errorf("parallel copy answered %d", c)
		}
	}
	for d := range dups {
		if d {
			nDup++
		}
	}
	if nDup != 49 {
		t.Errorf("%d duplicates among 50 copies, want 49", nDup)
	}
	s.waitN(2)
	s.atMost(2)

	// After a restart the ids are still known.
	d.stop(t)
	d2 := startDaemon(t, cfg)
	code, ans, _ := post(t, d2.httpURL+"/hooks/heating", hp, body)
	if code != 200 || ans["duplicate"] != true {
		t.Fatalf("replay after restart: %d %v", code, ans)
	}
	s.atMost(2)
}

// Topic injection through a template field: rejected with 422 before any
// publish, and edgehook's MQTT connection stays up (Mosquitto would have
// disconnected it for a wildcard or invalid UTF-8).
func TestInboundTopicInjection(t *testing.T) {
	e := startInbound(t)
	reconnects := e.d.metric(t, "edgehook_mqtt_reconnects_total")
	zones := map[string]string{
		"hash":         `"#"`,
		"plus":         `"+"`,
		"two levels":   `"a/b"`,
		"empty":        `""`,
		"$SYS":         `"$SYS/x"`,
		"dollar level": `"$x"`,
		"NUL":          `"a\u0000b"`,
		"70 KB":        `"` + strings.Repeat("x", 70<<10) + `"`,
	}
	for name, z := range zones {
		body := []byte(`{"zone": ` + z + `, "mode": "heat"}`)
		if code, ans, _ := e.signed(t, "/hooks/heating", string(body)); code != 422 {
			t.Errorf("%s: %d %v", name, code, ans)
		}
	}
	// Invalid UTF-8 bytes inside the JSON string.
	raw := append([]byte(`{"zone": "a`), 0xff, 0xfe)
	raw = append(raw, []byte(`b", "mode": "heat"}`)...)
	if code, ans, _ := post(t, e.url+"/hooks/heating", signSW(testSecret, nextID(), time.Now(), raw), raw); code != 422 {
		t.Errorf("invalid UTF-8: %d %v", code, ans)
	}
	e.spy.atMost(0)
	if !e.d.b.mq.Connected() || e.d.metric(t, "edgehook_mqtt_reconnects_total") != reconnects {
		t.Fatal("the MQTT connection did not stay up")
	}
	// And the route still works.
	if code, _, _ := e.signed(t, "/hooks/heating", `{"zone": "ok", "mode": "heat"}`); code != 200 {
		t.Fatal("valid request after the injections failed")
	}
	e.spy.waitN(1)
}

// A client that sends its headers slowly is cut off at ReadHeaderTimeout,
// while a normal client is still served meanwhile.
func TestInboundSlowHeaders(t *testing.T) {
	e := startInbound(t, func(b *Bridge) { b.timeouts.readHeader = 500 * time.Millisecond })
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("POST /hooks/heating HTTP/1.1\r\nHost: x\r\nX-Slow: ")); err != nil {
		t.Fatal(err)
	}
	// A normal client is served while the slow one holds its connection.
	if code, _, _ := e.signed(t, "/hooks/heating", `{"zone": "hall", "mode": "heat"}`); code != 200 {
		t.Fatalf("normal client: %d", code)
	}
	start := time.Now()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 512)
	for {
		if _, err := conn.Read(buf); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("the slow client was not cut off")
			}
			break // closed by the server
		}
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("cut off after %v", el)
	}
}

// The per-peer limiter remembers a bounded number of peers.
func TestPeerLimiterBounded(t *testing.T) {
	l := newPeerLimiter(1, 1, 100)
	now := time.Now()
	for i := 0; i < 10000; i++ {
		a := netipAddr(i)
		l.allow(a, now)
	}
	if n := l.tracked(); n > 200 {
		t.Fatalf("tracks %d peers", n)
	}
	a := netipAddr(1)
	l2 := newPeerLimiter(1, 1, 100)
	if ok, _ := l2.allow(a, now); !ok {
		t.Fatal("first request limited")
	}
	if ok, wait := l2.allow(a, now); ok || wait <= 0 {
		t.Fatalf("second request: ok=%v wait=%v", ok, wait)
	}
}

// HTTPS when tls_cert_file/tls_key_file are set: TLS 1.2 and later only.
func TestInboundHTTPS(t *testing.T) {
	b := startBroker(t)
	rx := newReceiver(t)
	pki, err := mosquittotest.NewPKI(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t.TempDir(), b.URL(), rx.URL(), coldRule+inboundRoutes)
	cfg = strings.Replace(cfg, "[http]\n", fmt.Sprintf("[http]\ntls_cert_file = %q\ntls_key_file = %q\n", pki.ServerCert, pki.ServerKey), 1)
	d := startDaemon(t, cfg)
	s := newSpy(t, b.URL(), "home/#")
	pool := x509.NewCertPool()
	ca, _ := os.ReadFile(pki.CA)
	pool.AppendCertsFromPEM(ca)
	url := strings.Replace(d.httpURL, "http://", "https://", 1) + "/hooks/heating"
	body := []byte(`{"zone": "tls", "mode": "heat"}`)
	client := func(maxVersion uint16) *http.Client {
		return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: maxVersion}}}
	}
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(string(body)))
	req.Header = signSW(testSecret, nextID(), time.Now(), body)
	resp, err := client(tls.VersionTLS12).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("HTTPS with TLS 1.2: %d", resp.StatusCode)
	}
	s.waitN(1)
	req, _ = http.NewRequest(http.MethodPost, url, strings.NewReader(string(body)))
	if resp, err := client(tls.VersionTLS11).Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("TLS 1.1 was accepted")
	}
	if resp, err := http.Post(d.httpURL+"/hooks/heating", "application/json", strings.NewReader("{}")); err == nil {
		resp.Body.Close()
		if resp.StatusCode < 400 {
			t.Fatalf("plain HTTP to the HTTPS listener answered %d", resp.StatusCode)
		}
	}
}

// X-Forwarded-For is believed only from trusted_proxies, read from the right.
func TestClientIP(t *testing.T) {
	b := &Bridge{}
	for _, p := range []string{"127.0.0.1", "10.9.0.0/16"} {
		prefix, _ := parsePrefix(p)
		b.trusted = append(b.trusted, prefix)
	}
	tests := []struct {
		remote, xff, want string
	}{
		{"192.0.2.7:1234", "10.0.0.1", "192.0.2.7"},                // untrusted peer: XFF ignored
		{"127.0.0.1:1234", "", "127.0.0.1"},                        // trusted peer, no XFF
		{"127.0.0.1:1234", "10.0.0.1", "10.0.0.1"},                 // trusted proxy says who the client is
		{"127.0.0.1:1234", "10.0.0.1, 203.0.113.5", "203.0.113.5"}, // a spoofed left-most entry is not believed
		{"127.0.0.1:1234", "203.0.113.5, 10.9.1.1", "203.0.113.5"}, // skip trusted hops from the right
		{"127.0.0.1:1234", "garbage, 10.9.1.1", "10.9.1.1"},        // stop at garbage
		{"[::ffff:127.0.0.1]:1", "10.0.0.2", "10.0.0.2"},           // IPv4-mapped peer
	}
	for _, tt := range tests {
		r := &http.Request{RemoteAddr: tt.remote, Header: http.Header{}}
		if tt.xff != "" {
			r.Header.Set("X-Forwarded-For", tt.xff)
		}
		if got := b.clientIP(r).String(); got != tt.want {
			t.Errorf("remote %s XFF %q: client %s, want %s", tt.remote, tt.xff, got, tt.want)
		}
	}
}

// End to end: allow_ips checks the client named by a trusted proxy, and an
// untrusted peer cannot claim an allowed address.
func TestInboundTrustedProxy(t *testing.T) {
	b := startBroker(t)
	rx := newReceiver(t)
	mk := func(trusted string) *daemon {
		cfg := testConfig(t.TempDir(), b.URL(), rx.URL(), coldRule+inboundRoutes)
		cfg = strings.Replace(cfg, "[http]\n", "[http]\ntrusted_proxies = ["+trusted+"]\n", 1)
		cfg = strings.Replace(cfg, "edgehook-under-test", "edgehook-proxy-"+fmt.Sprint(len(trusted)), 1)
		return startDaemon(t, cfg)
	}
	viaProxy := http.Header{"X-Forwarded-For": {"10.1.2.3"}}
	if code, ans, _ := post(t, mk(`"127.0.0.1"`).httpURL+"/hooks/lan", viaProxy, []byte(`{}`)); code != 200 {
		t.Fatalf("client 10.1.2.3 through a trusted proxy: %d %v", code, ans)
	}
	if code, _, _ := post(t, mk(``).httpURL+"/hooks/lan", viaProxy, []byte(`{}`)); code != 403 {
		t.Fatalf("an untrusted peer claiming 10.1.2.3: %d", code)
	}
}

// retain = true publishes a retained command: a subscriber that arrives later gets it.
func TestInboundRetain(t *testing.T) {
	b := startBroker(t)
	rx := newReceiver(t)
	routes := strings.Replace(inboundRoutes, `topic = "home/gh/set"`, "topic = \"home/gh/set\"\nretain = true\nqos = 0", 1)
	d := startDaemon(t, testConfig(t.TempDir(), b.URL(), rx.URL(), coldRule+routes))
	body := []byte(`{"x": 1}`)
	mac := hmac.New(sha256.New, []byte("gh-secret"))
	mac.Write(body)
	if code, ans, _ := post(t, d.httpURL+"/hooks/github", http.Header{"X-Hub-Signature-256": {"sha256=" + hex.EncodeToString(mac.Sum(nil))}}, body); code != 200 {
		t.Fatalf("%d %v", code, ans)
	}
	got := make(chan string, 1)
	c := newAuthPublisher(t, b.URL(), "", "")
	c.c.Subscribe("home/gh/set", 1, func(_ paho.Client, m paho.Message) {
		if m.Retained() {
			got <- string(m.Payload())
		}
	})
	select {
	case p := <-got:
		if p != string(body) {
			t.Fatalf("retained payload %q", p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no retained command")
	}
}
