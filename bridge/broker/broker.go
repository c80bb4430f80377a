// Package broker runs an in-process MQTT broker (mochi-mqtt) on a loopback
// address, for `broker = "embedded"` and `edgehook demo`: a machine with only
// Go can run the whole loop. It keeps sessions in memory only; a real
// installation uses Mosquitto. This is the only file that imports mochi.
package broker

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

// DefaultAddr is where `broker = "embedded"` listens.
const DefaultAddr = "127.0.0.1:1883"

// Broker is a running embedded broker.
type Broker struct {
	s    *mochi.Server
	addr string
}

// Start listens on addr, which must be a loopback address, and serves until Close.
func Start(addr string, log *slog.Logger) (*Broker, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("embedded broker: %s is not a loopback address (the embedded broker has no authentication)", addr)
	}
	// mochi logs routine disconnects as warnings with empty messages; keep errors only.
	s := mochi.New(&mochi.Options{Logger: slog.New(minLevel{log.Handler(), slog.LevelError}), InlineClient: false})
	if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	l := listeners.NewTCP(listeners.Config{ID: "edgehook", Address: addr})
	if err := s.AddListener(l); err != nil {
		return nil, fmt.Errorf("embedded broker: listen on %s: %w", addr, err)
	}
	if err := s.Serve(); err != nil {
		s.Close()
		return nil, fmt.Errorf("embedded broker: %w", err)
	}
	return &Broker{s: s, addr: l.Address()}, nil
}

// Addr returns the address it listens on.
func (b *Broker) Addr() string { return b.addr }

// Close stops the broker and disconnects its clients.
func (b *Broker) Close() error { return b.s.Close() }

// minLevel drops records below a level.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(a []slog.Attr) slog.Handler {
	return minLevel{h.Handler.WithAttrs(a), h.min}
}
func (h minLevel) WithGroup(n string) slog.Handler { return minLevel{h.Handler.WithGroup(n), h.min} }
