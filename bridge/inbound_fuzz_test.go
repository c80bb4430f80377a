package bridge

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgehook/edgehook/bridge/queue"
)

// recorder is a publisher that records what it is asked to publish.
type recorder struct {
	mu  sync.Mutex
	pub []string
}

func (r *recorder) Publish(_ context.Context, topic string, _ byte, _ bool, payload []byte) error {
	r.mu.Lock()
	r.pub = append(r.pub, topic+" "+string(payload))
	r.mu.Unlock()
	return nil
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pub)
}

var fuzzNow = time.Unix(1_800_000_000, 0)

// fuzzBridge builds a Bridge with inboundRoutes, a real store, and a recorder
// instead of MQTT. It serves the inbound handler without any network.
func fuzzBridge(t testing.TB) (*Bridge, *recorder) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.toml")
	cfgText := testConfig(filepath.Join(dir, "store"), "tcp://127.0.0.1:1", "http://127.0.0.1:1/x", inboundRoutes)
	if err := os.WriteFile(path, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, set, err := Load(path, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	b := New(cfg, set, slog.New(slog.DiscardHandler), Version{})
	b.now = func() time.Time { return fuzzNow }
	if b.store, err = queue.Open(cfg.Store.Dir, false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.store.Close() })
	routes, err := b.buildRoutes(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b.routes.Store(routes)
	b.replay = newReplayCache()
	rec := &recorder{}
	b.pub = rec
	return b, rec
}

// independentlyValid says whether a request should be allowed to publish,
// judged from the spec alone (not the code under test).
func independentlyValid(path string, h http.Header, body []byte) bool {
	switch path {
	case "/hooks/heating", "/hooks/limited", "/hooks/small":
		return verifySWAt(testSecret, h, body, fuzzNow)
	case "/hooks/github":
		mac := hmac.New(sha256.New, []byte("gh-secret"))
		mac.Write(body)
		return hmac.Equal([]byte(h.Get("X-Hub-Signature-256")), []byte("sha256="+hex.EncodeToString(mac.Sum(nil))))
	case "/hooks/token":
		return h.Get("X-Edgehook-Token") == "tok-secret"
	}
	return false // /hooks/lan is verify = "none" but the fuzz peer is not in allow_ips
}

// verifySWAt is verifySW with a given "now".
func verifySWAt(secret string, h http.Header, body []byte, now time.Time) bool {
	ts := h.Get("webhook-timestamp")
	var sec int64
	for _, c := range ts {
		if c < '0' || c > '9' || sec > 1e15 {
			return false
		}
		sec = sec*10 + int64(c-'0')
	}
	if ts == "" || now.Sub(time.Unix(sec, 0)) > 5*time.Minute || time.Unix(sec, 0).Sub(now) > 5*time.Minute {
		return false
	}
	key := []byte(secret)
	if b64, ok := strings.CutPrefix(secret, "whsec_"); ok {
		key, _ = base64.StdEncoding.DecodeString(b64)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(h.Get("webhook-id") + "." + ts + "."))
	mac.Write(body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, s := range strings.Fields(h.Get("webhook-signature")) {
		if hmac.Equal([]byte(s), []byte(want)) {
			return h.Get("webhook-id") != ""
		}
	}
	return false
}

// FuzzInboundHandler drives the whole inbound handler with random methods,
// paths, headers and bodies. Invariant: nothing is published unless the
// request's signature verifies; every answer is one of PRODUCT.md §5's codes.
func FuzzInboundHandler(f *testing.F) {
	body := []byte(`{"zone": "living", "mode": "heat"}`)
	h := signSW(testSecret, "msg_fuzz", fuzzNow, body)
	headerText := func(h http.Header) string {
		var b strings.Builder
		for k, vs := range h {
			for _, v := range vs {
				b.WriteString(k + ": " + v + "\n")
			}
		}
		return b.String()
	}
	f.Add("POST", "/hooks/heating", headerText(h), body)
	f.Add("POST", "/hooks/heating", headerText(h), []byte(`{"zone": "#", "mode": "x"}`))
	f.Add("GET", "/hooks/heating", "", body)
	f.Add("POST", "/hooks/token", "X-Edgehook-Token: tok-secret\n", []byte(`{"room": "a"}`))
	f.Add("POST", "/hooks/github", "X-Hub-Signature-256: sha256=00\n", body)
	f.Add("POST", "/hooks/lan", "X-Forwarded-For: 10.0.0.1\n", body)
	f.Add("POST", "/hooks/small", headerText(h), bytes.Repeat([]byte("x"), 500))
	b, rec := fuzzBridge(f)
	allowed := map[int]bool{200: true, 400: true, 401: true, 403: true, 404: true, 405: true, 413: true, 422: true, 429: true, 503: true}
	f.Fuzz(func(t *testing.T, method, path, headers string, body []byte) {
		req := &http.Request{Method: method, URL: &url.URL{Path: path}, Header: http.Header{}, RemoteAddr: "192.0.2.1:5555",
			Body: io.NopCloser(bytes.NewReader(body)), ContentLength: int64(len(body)), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
		req = req.WithContext(context.Background())
		for _, line := range strings.Split(headers, "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && validHeaderName(strings.TrimSpace(k)) {
				req.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
			}
		}
		before := rec.count()
		w := httptest.NewRecorder()
		b.handleInbound(w, req)
		if !allowed[w.Code] {
			t.Fatalf("status %d for %s %q", w.Code, method, path)
		}
		if rec.count() > before && (method != http.MethodPost || !independentlyValid(path, req.Header, body)) {
			t.Fatalf("published without a valid signature: %s %q headers=%q body=%q", method, path, headers, body)
		}
	})
}
