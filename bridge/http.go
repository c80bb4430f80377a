package bridge

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"time"
)

// httpTimeouts keep slow or idle clients from holding the server open.
type httpTimeouts struct {
	readHeader, read, write, idle time.Duration
}

var defaultHTTPTimeouts = httpTimeouts{readHeader: 5 * time.Second, read: 15 * time.Second, write: 30 * time.Second, idle: 60 * time.Second}

// newHTTPServer builds the server for [http].listen: edgehook's own endpoints,
// and every other path goes to the inbound routes.
func (b *Bridge) newHTTPServer() *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", b.handleHealthz)
	mux.HandleFunc("GET /readyz", b.handleReadyz)
	mux.HandleFunc("GET /metrics", b.handleMetrics)
	mux.Handle("GET /{$}", b.admin(b.handleStatusPage))
	mux.Handle("GET /api/v1/status", b.admin(b.handleAPIStatus))
	mux.Handle("GET /api/v1/deadletters", b.admin(b.handleAPIDeadLetters))
	mux.Handle("POST /api/v1/deadletters/{id}/retry", b.admin(b.handleAPIRetryOne))
	mux.Handle("POST /api/v1/deadletters/retry", b.admin(b.handleAPIRetryAll))
	mux.Handle("DELETE /api/v1/deadletters/{id}", b.admin(b.handleAPIDeleteOne))
	mux.Handle("POST /api/v1/deadletters/{id}/delete", b.admin(b.handleAPIDeleteOne))
	mux.Handle("DELETE /api/v1/deadletters", b.admin(b.handleAPIDeleteAll))
	mux.HandleFunc("/", b.handleInbound)
	return &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: b.timeouts.readHeader,
		ReadTimeout:       b.timeouts.read,
		WriteTimeout:      b.timeouts.write,
		IdleTimeout:       b.timeouts.idle,
		MaxHeaderBytes:    16 << 10,
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12},
		ErrorLog:          log.New(io.Discard, "", 0), // TLS handshake noise from scanners
	}
}

// serveHTTP serves on ln until the server is shut down.
func (b *Bridge) serveHTTP(ln net.Listener) error {
	var err error
	if b.cfg.HTTP.TLSCertFile != "" {
		err = b.srv.ServeTLS(ln, b.cfg.HTTP.TLSCertFile, b.cfg.HTTP.TLSKeyFile)
	} else {
		err = b.srv.Serve(ln)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// handleHealthz answers 200 while the process is alive.
func (b *Bridge) handleHealthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readiness returns why edgehook is not ready, or nothing.
func (b *Bridge) readiness() []string {
	var reasons []string
	if !b.mq.Connected() {
		reasons = append(reasons, "mqtt: not connected to the broker")
	}
	if err := b.store.LastError(); err != nil {
		reasons = append(reasons, "store: not writable: "+err.Error())
	}
	if b.outboxFull.Load() {
		reasons = append(reasons, "store: outbox full (store.max_bytes); not taking MQTT messages")
	}
	if b.stopping.Load() {
		reasons = append(reasons, "shutting down")
	}
	return reasons
}

// Ready reports whether /readyz would answer 200. Safe for concurrent use
// once Run has started.
func (b *Bridge) Ready() bool { return b.mq != nil && len(b.readiness()) == 0 }

// handleReadyz answers 200 when the broker is connected, the store is writable
// and the configuration is loaded, else 503 with the reasons.
func (b *Bridge) handleReadyz(w http.ResponseWriter, _ *http.Request) {
	details := map[string]any{}
	if rs := b.reloadState.Load(); rs != nil {
		// A failed reload leaves the previous configuration running: still
		// ready, but say so.
		details["last_reload"] = rs
	}
	if reasons := b.readiness(); len(reasons) > 0 {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "reasons": reasons, "details": details})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "details": details})
}

func (b *Bridge) handleMetrics(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	b.m.reconnects.Set(uint64(b.mq.Reconnects()))
	// Dead letters waiting, per endpoint (the _total counter only grows).
	if counts, err := b.store.DeadCounts(); err == nil {
		for name := range b.allDeliverers() {
			b.m.set.GetOrCreateGauge(`edgehook_dead_letters{endpoint=`+label(name)+`}`, nil).Set(float64(counts[name]))
		}
	}
	b.m.write(w)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}
