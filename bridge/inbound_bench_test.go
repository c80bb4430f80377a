package bridge

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// The CPU cost of each way the inbound handler answers, in process (no
// network, a recording publisher). Run: go test -bench Inbound ./bridge
func BenchmarkInbound(b *testing.B) {
	br, _ := fuzzBridge(b)
	br.routes.Load().byPath["/hooks/heating"].limiter = nil // measure the other checks, not the rate limit
	body := []byte(`{"zone": "living", "mode": "heat"}`)
	good := signSW(testSecret, "msg_bench", fuzzNow, body)
	badSig := good.Clone()
	badSig.Set("webhook-signature", "v1,"+strings.Repeat("A", 43)+"=")
	big := bytes.Repeat([]byte("x"), 300<<10)
	run := func(b *testing.B, path string, h http.Header, body []byte, contentLength int64, fresh bool, want int) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			hh := h
			if fresh {
				// A new id each time, so every request publishes (no replay).
				id := "msg_b" + strings.Repeat("x", i%7) + itoa36(i)
				hh = signSW(testSecret, id, fuzzNow, body)
			}
			req := &http.Request{Method: http.MethodPost, URL: &url.URL{Path: path}, Header: hh, RemoteAddr: "192.0.2.1:1",
				Body: io.NopCloser(bytes.NewReader(body)), ContentLength: contentLength}
			req = req.WithContext(context.Background())
			w := httptest.NewRecorder()
			br.handleInbound(w, req)
			if w.Code != want {
				b.Fatalf("status %d, want %d: %s", w.Code, want, w.Body)
			}
		}
	}
	b.Run("valid-published", func(b *testing.B) { run(b, "/hooks/heating", nil, body, int64(len(body)), true, 200) })
	b.Run("replay-duplicate", func(b *testing.B) { run(b, "/hooks/heating", good, body, int64(len(body)), false, 200) })
	b.Run("bad-signature", func(b *testing.B) { run(b, "/hooks/heating", badSig, body, int64(len(body)), false, 401) })
	b.Run("oversized-content-length", func(b *testing.B) { run(b, "/hooks/heating", good, big, int64(len(big)), false, 413) })
	b.Run("oversized-chunked", func(b *testing.B) { run(b, "/hooks/heating", good, big, -1, false, 413) })
	b.Run("unknown-path", func(b *testing.B) { run(b, "/nope", good, body, int64(len(body)), false, 404) })
}

func itoa36(i int) string { return strings.ToLower(time.Duration(i).String()) }
