package webhook

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestSafeURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://ha.local:8123/api/webhook/heating-9f2c": "http://ha.local:8123/…",
		"https://user:pw@example.com/?token=abc":        "https://example.com/…",
		"http://127.0.0.1:9000":                         "http://127.0.0.1:9000",
		"http://127.0.0.1:9000/":                        "http://127.0.0.1:9000",
		"::not a url":                                   "(invalid URL)",
	} {
		if got := SafeURL(in); got != want {
			t.Errorf("SafeURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// A transport error must not carry the URL's path: for Home Assistant it is
// the webhook's secret, and the error ends up in logs and on the status page.
func TestSendErrorHidesURLPath(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: connection refused

	c := NewClient("test", 2)
	err = c.Send(context.Background(), Delivery{URL: "http://" + addr + "/api/webhook/secret-id-123?token=s3cret", Method: "POST",
		Scheme: SchemeNone, ID: "evt_1", Body: []byte(`{}`), Timeout: 2 * time.Second})
	if err == nil {
		t.Fatal("send to a closed port succeeded")
	}
	if strings.Contains(err.Error(), "secret-id-123") || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("error shows the URL's secret path: %v", err)
	}
	if !strings.Contains(err.Error(), addr) {
		t.Errorf("error should name the host: %v", err)
	}
	if Classify(err) != Retry {
		t.Errorf("connection refused classified %v, want Retry", Classify(err))
	}

	// A timeout stays recognisable as one.
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(time.Second):
		}
	}))
	defer slow.Close()
	err = c.Send(context.Background(), Delivery{URL: slow.URL + "/hook/secret-id-456", Method: "POST", Scheme: SchemeNone,
		ID: "evt_2", Body: []byte(`{}`), Timeout: 50 * time.Millisecond})
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("timeout error lost its kind: %v", err)
	}
	if strings.Contains(err.Error(), "secret-id-456") {
		t.Fatalf("error shows the URL's secret path: %v", err)
	}
}
