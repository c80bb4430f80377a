package bridge

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/edgehook/edgehook/bridge/queue"
	"github.com/edgehook/edgehook/bridge/sdnotify"
	"github.com/edgehook/edgehook/rules"
)

// Loader loads the configuration again, for a reload (main sets it to
// bridge.Load with the same path and environment).
type Loader func() (*Config, *rules.Set, error)

// reloadStatus is the outcome of the last reload, for /readyz and the status page.
type reloadStatus struct {
	At    time.Time `json:"at"`
	OK    bool      `json:"ok"`
	Error string    `json:"error,omitempty"`
}

// swapRequest asks ingest to switch to new rules between two batches.
type swapRequest struct {
	set  *rules.Set
	done chan int // the number of series whose state was reset
}

// Reload asks the running bridge to load its configuration again (SIGHUP).
// It does not wait; the outcome is logged, counted in
// edgehook_config_reloads_total and shown on /readyz. Safe for concurrent use.
func (b *Bridge) Reload() {
	select {
	case b.reloadReq <- struct{}{}:
	default: // one is already pending
	}
}

// reloader serves reload requests until ctx ends.
func (b *Bridge) reloader(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.reloadReq:
			b.reload(ctx)
		}
	}
}

// reload loads and fully validates the configuration, then switches to it:
// endpoints first (so a rule never names one that is not there yet), inbound
// routes, then the rules, which ingest swaps between two batches. The state of
// a rule whose definition did not change is kept. On any error the running
// configuration stays as it was.
func (b *Bridge) reload(ctx context.Context) {
	if b.Loader == nil {
		return
	}
	b.log.Info("reloading the configuration")
	b.notify(sdnotify.Reloading())
	defer b.notify("READY=1")
	cfg, set, err := b.Loader()
	if err != nil {
		b.reloadFailed(err)
		return
	}
	old := b.current.Load()
	if diff := restartOnly(old, cfg); len(diff) > 0 {
		b.log.Warn("these changes take effect only after a restart", "sections", strings.Join(diff, ", "))
	}

	// Prepare everything that can fail before changing anything.
	routes, err := b.buildRoutes(cfg)
	if err != nil {
		b.reloadFailed(err)
		return
	}
	cur := b.allDeliverers()
	next := make(map[string]*deliverer, len(cur))
	for k, d := range cur {
		next[k] = d
	}
	type connSwap struct {
		d    *deliverer
		conn *endpointConn
	}
	var swaps []connSwap
	var added []*deliverer
	seen := map[string]bool{queue.PublishTarget: true}
	for i := range cfg.Endpoints {
		ep := &cfg.Endpoints[i]
		seen[ep.Name] = true
		if d := cur[ep.Name]; d != nil {
			conn, err := newEndpointConn(ep)
			if err != nil {
				b.reloadFailed(err)
				return
			}
			if was := d.conn.Load().ep; was.Concurrency != ep.Concurrency || was.Rate != ep.Rate {
				b.log.Warn("endpoint concurrency and rate changes take effect after a restart", "endpoint", ep.Name)
			}
			swaps = append(swaps, connSwap{d, conn})
			continue
		}
		d, err := b.newEndpointDeliverer(ep)
		if err != nil {
			b.reloadFailed(err)
			return
		}
		added = append(added, d)
		next[ep.Name] = d
	}

	// Apply.
	for _, s := range swaps {
		s.d.conn.Store(s.conn)
		s.d.maxAge.Store(int64(s.conn.ep.MaxAge))
	}
	b.delivs.Store(&next)
	for _, d := range added {
		b.registerOutboxGauge(d.target)
		b.startDeliverer(d)
	}
	for name := range cur {
		if !seen[name] {
			b.log.Warn("endpoint removed: events already queued for it are still delivered; after a restart they become dead letters", "endpoint", name)
		}
	}
	b.routes.Store(routes)
	done := make(chan int, 1)
	select {
	case b.swapReq <- swapRequest{set: set, done: done}:
	case <-ctx.Done():
		return
	}
	reset := 0
	select {
	case reset = <-done:
	case <-ctx.Done():
		return
	}
	var filters []string
	for _, f := range set.Filters() {
		filters = append(filters, f.String())
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	if err := b.mq.SetFilters(sctx, filters); err != nil {
		b.log.Warn("updating subscriptions failed; they are renewed on the next connect", "err", err)
	}
	cancel()
	b.current.Store(cfg)
	b.reloadState.Store(&reloadStatus{At: b.now(), OK: true})
	b.m.reloadsOK.Inc()
	b.log.Info("configuration reloaded", "rules", len(set.Rules()), "series_reset", reset,
		"endpoints", len(cfg.Endpoints), "inbound_routes", len(cfg.Inbound))
}

func (b *Bridge) reloadFailed(err error) {
	b.m.reloadsFailed.Inc()
	var lines []string
	for _, e := range flatten(err) {
		lines = append(lines, e.Error())
	}
	b.reloadState.Store(&reloadStatus{At: b.now(), Error: strings.Join(lines, "\n")})
	b.log.Error("reload failed; still running the previous configuration", "problems", len(lines), "err", strings.Join(lines, "; "))
}

// restartOnly names the sections whose changes a reload cannot apply.
func restartOnly(old, nu *Config) []string {
	var diff []string
	if !reflect.DeepEqual(comparableMQTT(old), comparableMQTT(nu)) {
		diff = append(diff, "[mqtt]")
	}
	if old.HTTP.Listen != nu.HTTP.Listen || old.HTTP.TLSCertFile != nu.HTTP.TLSCertFile || old.HTTP.TLSKeyFile != nu.HTTP.TLSKeyFile ||
		!reflect.DeepEqual(old.HTTP.TrustedProxies, nu.HTTP.TrustedProxies) {
		diff = append(diff, "[http]")
	}
	if old.Store != nu.Store {
		diff = append(diff, "[store]")
	}
	if old.Rules.Watch != nu.Rules.Watch {
		diff = append(diff, "[rules] watch")
	}
	return diff
}

func comparableMQTT(c *Config) []any {
	m := c.MQTT
	return []any{m.Broker, m.ClientID, m.Username, m.Password.Reveal(), m.CleanSession, m.QoS, m.StatusTopic, m.TLS, m.MaxPayload, m.KeepAlive}
}

// applySwap switches ingest's engine to new rules and deletes the state of
// series whose rule changed or went away. It runs on the ingest goroutine.
func (b *Bridge) applySwap(ctx context.Context, req swapRequest) {
	dropped := b.engine.Swap(req.set)
	b.view.swap(req.set, dropped)
	if len(dropped) > 0 {
		var q queue.Batch
		for _, k := range dropped {
			q.States = append(q.States, queue.KV{Key: []byte(k.Rule + "\x00" + k.Series)})
		}
		b.commit(ctx, &q)
	}
	req.done <- len(dropped)
}

// watch reloads when the config file or a rule file changes (`[rules] watch =
// true`). It watches directories, not files: editors save by replacing the
// file. Bursts of events are debounced. It returns when ctx ends.
func (b *Bridge) watch(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	defer w.Close()
	dirs := map[string]bool{}
	add := func(cfg *Config) {
		want := []string{filepath.Dir(cfg.File)}
		for _, p := range cfg.Rules.Files {
			if !filepath.IsAbs(p) {
				p = filepath.Join(filepath.Dir(cfg.File), p)
			}
			d := filepath.Dir(p)
			if hasMeta(d) {
				b.log.Warn("cannot watch a directory pattern; edits there need a SIGHUP", "pattern", p)
				continue
			}
			want = append(want, d)
		}
		for _, d := range want {
			if dirs[d] {
				continue
			}
			if err := w.Add(d); err != nil {
				b.log.Warn("cannot watch a directory", "dir", d, "err", err)
				continue
			}
			dirs[d] = true
		}
	}
	add(b.current.Load())
	var debounce <-chan time.Time
	seen := b.current.Load()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if strings.HasSuffix(ev.Name, ".toml") || ev.Name == b.current.Load().File {
				debounce = time.After(500 * time.Millisecond)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			b.log.Warn("watching the config failed", "err", err)
		case <-debounce:
			debounce = nil
			b.log.Info("a config or rule file changed")
			b.reload(ctx)
			if cur := b.current.Load(); cur != seen {
				seen = cur
				add(cur)
			}
		}
	}
}
