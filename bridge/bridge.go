package bridge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgehook/edgehook/bridge/broker"
	"github.com/edgehook/edgehook/bridge/mqtt"
	"github.com/edgehook/edgehook/bridge/queue"
	"github.com/edgehook/edgehook/bridge/webhook"
	"github.com/edgehook/edgehook/rules"
)

// drainTimeout bounds how long SIGTERM waits for work in flight (PRODUCT.md §7).
const drainTimeout = 10 * time.Second

// Version is reported in the User-Agent and metrics; main sets it.
type Version struct {
	Version, Commit string
	Platform        string // e.g. "go1.26 linux/arm GOARM=6", for the status page
}

// Bridge is the daemon: MQTT in, rules, durable outbox, webhooks out, and the
// HTTP server. New does no I/O; Run does everything and returns when ctx ends.
type Bridge struct {
	cfg     *Config
	set     *rules.Set
	log     *slog.Logger
	version Version
	now     func() time.Time
	m       *metricSet

	// EmbeddedAddr overrides where `broker = "embedded"` listens (the demo uses
	// a free port). Set it before Run.
	EmbeddedAddr string
	// OnReady, when set, is called once everything is started (tests, demo).
	OnReady func(httpAddr, brokerURL string)
	// Loader loads the configuration again for Reload and `[rules] watch`.
	// Without it, reloading does nothing.
	Loader Loader
	// Notify tells the service manager about the daemon's state (systemd's
	// sd_notify: READY=1, RELOADING=1, STOPPING=1, WATCHDOG=1). Optional.
	Notify func(state string) error
	// Watchdog is how often to send WATCHDOG=1 (0: never). It is sent only
	// while ingest is alive, so a wedged daemon gets restarted.
	Watchdog time.Duration

	// Set up by Run.
	store    *queue.Outbox
	mq       *mqtt.Client
	pub      publisher // b.mq; a fake in handler fuzzing
	client   *webhook.Client
	engine   *rules.Engine
	delivs   atomic.Pointer[map[string]*deliverer] // by target; replaced whole on reload
	marks    *markTable
	markN    uint64
	retired  *retirements
	srv      *http.Server
	routes   atomic.Pointer[routeTable]
	replay   *replayCache
	trusted  []netip.Prefix
	timeouts httpTimeouts

	delivMu     sync.Mutex // guards starting deliverers against stopping them
	stopDeliver chan struct{}
	hard        context.Context // cancelled 10 s into a shutdown: attempts give up
	deliverWG   sync.WaitGroup
	pubWait     time.Duration                // how long a publish may wait for its PUBACK
	outboxFull  atomic.Bool                  // ingest has paused: store.max_bytes reached
	heartbeat   atomic.Int64                 // unix ns of ingest's last loop turn (for the watchdog)
	current     atomic.Pointer[Config]       // the configuration last loaded (restart-only sections may lag)
	reloadState atomic.Pointer[reloadStatus] // nil until the first reload
	reloadReq   chan struct{}                // capacity 1: Reload's requests
	swapReq     chan swapRequest             // reload → ingest
	stopping    atomic.Bool                  // Run is shutting down
	started     time.Time                    // when Run began
	view        *ruleView                    // rules and series for the status page
	inLog       *inboundLog                  // recent inbound results for the status page
	reviveMu    sync.Mutex                   // serialises dead-letter retries and deletes
	reviveReq   chan reviveRequest           // retries → ingest
	ingestDone  chan struct{}                // closed when ingest has returned
	page        *template.Template           // the status page
}

// publisher is what the inbound path needs from MQTT: a publish that returns
// after the broker's acknowledgement, or mqtt.ErrNotConnected at once.
type publisher interface {
	Publish(ctx context.Context, topic string, qos byte, retain bool, payload []byte) error
}

// New returns a Bridge for a loaded configuration. It does no I/O.
func New(cfg *Config, set *rules.Set, log *slog.Logger, v Version) *Bridge {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Bridge{cfg: cfg, set: set, log: log, version: v, now: time.Now, m: newMetricSet(), timeouts: defaultHTTPTimeouts,
		pubWait: publishTimeout, reloadReq: make(chan struct{}, 1), swapReq: make(chan swapRequest),
		view: newRuleView(set), inLog: newInboundLog(), reviveReq: make(chan reviveRequest), ingestDone: make(chan struct{})}
}

// Run starts everything, serves until ctx ends, then shuts down in order: the
// HTTP server stops taking requests, ingest finishes its batch (committed
// messages are acked, the rest stay with the broker), the MQTT client says
// "offline" and disconnects, deliveries in flight get up to 10 s, and whatever
// is undelivered stays in the outbox. It returns nil after a clean shutdown and
// an error when it could not start (or a component failed).
func (b *Bridge) Run(ctx context.Context) (err error) {
	cfg := b.cfg
	b.current.Store(cfg)
	b.started = b.now()
	if b.page, err = parseStatusPage(); err != nil {
		return fmt.Errorf("status page: %w", err)
	}
	b.store, err = queue.Open(cfg.Store.Dir, cfg.Store.Sync == "fsync")
	if err != nil {
		return err
	}
	defer b.store.Close()

	brokerURL := cfg.MQTT.Broker
	if brokerURL == "embedded" {
		addr := b.EmbeddedAddr
		if addr == "" {
			addr = broker.DefaultAddr
		}
		eb, err := broker.Start(addr, b.log.With("component", "embedded-broker"))
		if err != nil {
			return err
		}
		defer eb.Close()
		brokerURL = "tcp://" + eb.Addr()
		b.log.Info("embedded MQTT broker listening", "addr", eb.Addr())
	}

	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("http: %w", err)
	}
	defer ln.Close()

	mqttTLS, err := b.mqttTLS(brokerURL)
	if err != nil {
		return err
	}
	var filters []string
	for _, f := range b.set.Filters() {
		filters = append(filters, f.String())
	}
	b.mq = mqtt.New(mqtt.Options{
		Broker: brokerURL, ClientID: cfg.MQTT.ClientID, Username: cfg.MQTT.Username,
		Password: cfg.MQTT.Password.Reveal(), CleanSession: cfg.MQTT.CleanSession, QoS: byte(cfg.MQTT.QoS),
		Filters: filters, StatusTopic: cfg.MQTT.StatusTopic, TLS: mqttTLS, KeepAlive: cfg.MQTT.KeepAlive,
		Logger: b.log.With("component", "mqtt"),
	})
	b.pub = b.mq
	b.client = webhook.NewClient("edgehook/"+b.version.Version, 64)
	b.engine = rules.NewEngine(b.set)
	b.retired = newRetirements()
	if err := b.setupDeliverers(); err != nil {
		return err
	}
	routes, err := b.buildRoutes(cfg)
	if err != nil {
		return err
	}
	b.routes.Store(routes)
	b.replay = newReplayCache()
	for _, p := range cfg.HTTP.TrustedProxies {
		prefix, err := parsePrefix(p)
		if err != nil {
			return err
		}
		b.trusted = append(b.trusted, prefix)
	}
	if err := b.restore(brokerURL); err != nil {
		return err
	}
	b.registerGauges()

	runCtx, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	var wg sync.WaitGroup
	var retireWG sync.WaitGroup
	stopRetirer := make(chan struct{})
	retireWG.Add(1)
	go func() { defer retireWG.Done(); b.retirer(stopRetirer) }()
	b.stopDeliver = make(chan struct{})
	var hardCancel context.CancelFunc
	b.hard, hardCancel = context.WithCancel(context.Background())
	defer hardCancel()
	for _, d := range b.allDeliverers() {
		b.startDeliverer(d)
	}
	b.srv = b.newHTTPServer()
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := b.serveHTTP(ln); err != nil {
			fail(err)
		}
	}()
	wg.Add(2)
	go func() { defer wg.Done(); b.maintain(runCtx) }()
	go func() { defer wg.Done(); b.reloader(runCtx) }()
	if cfg.Rules.Watch {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := b.watch(runCtx); err != nil {
				b.log.Error("watching config files failed; use SIGHUP to reload", "err", err)
			}
		}()
	}
	ingestCtx, stopIngest := context.WithCancel(context.Background())
	go func() { defer close(b.ingestDone); b.ingest(ingestCtx) }()
	b.mq.Connect()
	b.log.Info("edgehook running", "version", b.version.Version, "http", ln.Addr().String(), "broker", brokerURL,
		"rules", len(b.set.Rules()), "endpoints", len(cfg.Endpoints), "store", b.store.Path())
	b.notify("READY=1\nSTATUS=running")
	if b.OnReady != nil {
		b.OnReady(ln.Addr().String(), brokerURL)
	}

	<-runCtx.Done()
	b.stopping.Store(true)
	b.notify("STOPPING=1")
	deadline := time.Now().Add(drainTimeout)
	b.log.Info("stopping: no new work is accepted; work in flight gets up to 10s")
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = b.srv.Shutdown(shutCtx)
	cancel()
	wg.Wait()
	stopIngest()
	<-b.ingestDone
	b.mq.Close(time.Second)
	b.delivMu.Lock()
	close(b.stopDeliver)
	b.delivMu.Unlock()
	stopTimer := time.AfterFunc(time.Until(deadline), hardCancel)
	b.deliverWG.Wait()
	stopTimer.Stop()
	close(stopRetirer)
	retireWG.Wait()
	jobs, _ := b.store.Pending()
	b.log.Info("stopped", "undelivered_in_outbox", jobs)
	if cause := context.Cause(runCtx); cause != nil && !errors.Is(cause, context.Canceled) && ctx.Err() == nil {
		return cause
	}
	return nil
}

// setupDeliverers creates one deliverer per endpoint, and one for MQTT
// publish actions.
func (b *Bridge) setupDeliverers() error {
	m := map[string]*deliverer{}
	for i := range b.cfg.Endpoints {
		d, err := b.newEndpointDeliverer(&b.cfg.Endpoints[i])
		if err != nil {
			return err
		}
		m[d.target] = d
	}
	// MQTT publish actions ([[rule.publish]]) go through the same outbox and
	// retries; they count as delivered once the broker acknowledges them.
	publish := func(ctx context.Context, j *queue.Job) error {
		ctx, cancel := context.WithTimeout(ctx, b.pubWait)
		defer cancel()
		return b.pub.Publish(ctx, j.Topic, j.QoS, j.Retain, j.Body)
	}
	m[queue.PublishTarget] = newDeliverer(queue.PublishTarget, publish, 4, 0, 24*time.Hour, b.store,
		b.retired.add, b.flushRetired, b.log, b.m, b.now)
	b.delivs.Store(&m)
	return nil
}

// endpointConn is what an attempt needs of an endpoint; a reload swaps it.
type endpointConn struct {
	ep   Endpoint
	keys [][]byte
}

func newEndpointConn(ep *Endpoint) (*endpointConn, error) {
	c := &endpointConn{ep: *ep}
	switch ep.Signing {
	case webhook.SchemeStandard:
		k, err := webhook.DecodeKeys(ep.Secret.Reveal())
		if err != nil {
			return nil, fmt.Errorf("endpoint %s: %w", ep.Name, err)
		}
		c.keys = k
	case webhook.SchemeGitHub:
		for _, s := range webhook.SplitSecrets(ep.Secret.Reveal()) {
			c.keys = append(c.keys, []byte(s))
		}
	}
	return c, nil
}

func (b *Bridge) newEndpointDeliverer(ep *Endpoint) (*deliverer, error) {
	conn, err := newEndpointConn(ep)
	if err != nil {
		return nil, err
	}
	var d *deliverer
	send := func(ctx context.Context, j *queue.Job) error {
		c := d.conn.Load()
		return b.client.Send(ctx, webhook.Delivery{URL: c.ep.URL, Method: c.ep.Method, Headers: c.ep.Headers,
			Scheme: c.ep.Signing, Keys: c.keys, ID: j.ID, Body: j.Body, Timeout: c.ep.Timeout})
	}
	d = newDeliverer(ep.Name, send, ep.Concurrency, ep.Rate, ep.MaxAge, b.store, b.retired.add, b.flushRetired, b.log, b.m, b.now)
	d.conn.Store(conn)
	return d, nil
}

// deliverer returns the deliverer of a target, or nil.
func (b *Bridge) deliverer(target string) *deliverer { return (*b.delivs.Load())[target] }

// allDeliverers returns every deliverer.
func (b *Bridge) allDeliverers() map[string]*deliverer { return *b.delivs.Load() }

// startDeliverer runs d until Run stops the deliveries.
func (b *Bridge) startDeliverer(d *deliverer) {
	b.delivMu.Lock()
	defer b.delivMu.Unlock()
	select {
	case <-b.stopDeliver:
		return // stopping: a reload raced with shutdown
	default:
	}
	b.deliverWG.Add(1)
	go func() { defer b.deliverWG.Done(); d.run(b.stopDeliver, b.hard) }()
}

// restore loads what the store remembers: MQTT redelivery marks, rule states,
// disabled endpoints, and jobs for endpoints no longer configured.
func (b *Bridge) restore(brokerURL string) error {
	session := brokerURL + "\x00" + b.cfg.MQTT.ClientID
	prev, err := b.store.Meta("session")
	if err != nil {
		return err
	}
	var batch queue.Batch
	if string(prev) != session {
		// A different broker or client id: old packet ids mean nothing there.
		if err := b.store.ClearMarks(); err != nil {
			return err
		}
		batch.Meta = append(batch.Meta, queue.KV{Key: []byte("session"), Value: []byte(session)})
	}
	stored, n, err := b.store.Marks()
	if err != nil {
		return err
	}
	b.marks, b.markN = &markTable{}, n
	for _, m := range stored {
		b.marks[m.PacketID] = markSlot{hash: m.Hash, n: m.N}
	}

	restored, dropped := 0, 0
	err = b.store.States(func(k, v []byte) {
		rule, series, ok := strings.Cut(string(k), "\x00")
		r := b.set.Rule(rule)
		st, hash, derr := rules.UnmarshalState(v)
		if !ok || r == nil || derr != nil || hash != r.Hash {
			batch.States = append(batch.States, queue.KV{Key: append([]byte(nil), k...)}) // the rule changed or is gone
			dropped++
			return
		}
		b.engine.Restore(rules.SeriesKey{Rule: rule, Series: series}, st)
		restored++
	})
	if err != nil {
		return err
	}
	all := map[rules.SeriesKey]rules.State{}
	b.engine.States(func(k rules.SeriesKey, st *rules.State) { all[k] = *st })
	b.view.update(all)
	if restored+dropped > 0 {
		b.log.Info("rule state restored", "series", restored, "reset", dropped)
	}

	for name, d := range b.allDeliverers() {
		if v, err := b.store.Meta("disabled/" + name); err == nil && v != nil {
			d.disabled = true
			b.log.Warn("endpoint is disabled (it answered 410 Gone); retry a dead letter to re-enable it", "endpoint", name, "since", string(v))
		}
	}
	stale, err := b.restoreReplay(b.now())
	if err != nil {
		return err
	}
	batch.Replay = append(batch.Replay, stale.Replay...)

	targets, err := b.store.Targets()
	if err != nil {
		return err
	}
	sort.Strings(targets)
	now := b.now()
	for _, t := range targets {
		if b.deliverer(t) != nil {
			continue
		}
		var orphans []*queue.Job
		if _, _, err := b.store.Scan(t, 0, int(^uint(0)>>1), func(j *queue.Job) {
			j.Reason, j.DeadAt = fmt.Sprintf("endpoint %q is no longer in the configuration", t), now
			orphans = append(orphans, j)
		}); err != nil {
			return err
		}
		batch.Dead = append(batch.Dead, orphans...)
		b.log.Warn("undelivered events for a removed endpoint became dead letters", "endpoint", t, "count", len(orphans))
	}
	return b.store.Commit(&batch)
}

// mqttTLS builds the TLS configuration for ssl:// and wss:// brokers.
func (b *Bridge) mqttTLS(brokerURL string) (*tls.Config, error) {
	t := b.cfg.MQTT.TLS
	secure := strings.HasPrefix(brokerURL, "ssl://") || strings.HasPrefix(brokerURL, "tls://") ||
		strings.HasPrefix(brokerURL, "mqtts://") || strings.HasPrefix(brokerURL, "wss://")
	if !secure && t.CAFile == "" && t.CertFile == "" {
		return nil, nil
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("mqtt.tls.ca_file: %s holds no PEM certificate", t.CAFile)
		}
		conf.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt.tls.cert_file/key_file: %w", err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return conf, nil
}

// registerGauges exposes live values as metrics.
func (b *Bridge) registerGauges() {
	b.m.gauge(`edgehook_mqtt_connected`, func() float64 {
		if b.mq.Connected() {
			return 1
		}
		return 0
	})
	b.m.gauge(`edgehook_outbox_bytes`, func() float64 { _, n := b.store.Pending(); return float64(n) })
	for name := range b.allDeliverers() {
		b.registerOutboxGauge(name)
	}
	b.m.gauge(fmt.Sprintf(`edgehook_build_info{version=%s,commit=%s}`, label(b.version.Version), label(b.version.Commit)),
		func() float64 { return 1 })
}

// notify sends a state to the service manager, if there is one.
func (b *Bridge) notify(state string) {
	if b.Notify == nil {
		return
	}
	if err := b.Notify(state); err != nil {
		b.log.Debug("sd_notify failed", "err", err)
	}
}

// maintain does periodic housekeeping until ctx ends: every 50 ms it hands the
// store's mapped pages back to the page cache (see queue.Outbox.ReleaseMemory),
// so that a burst that grew the store file does not leave the process holding
// it all in its RSS; every minute it forgets expired inbound replay ids.
func (b *Bridge) maintain(ctx context.Context) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	last := b.store.Commits()
	lastPrune := b.now()
	var lastPing time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if b.Watchdog > 0 && time.Since(lastPing) >= b.Watchdog {
			// Ingest turns at least once a second; if it has not for a while
			// it is wedged, and systemd should restart us.
			if time.Since(time.Unix(0, b.heartbeat.Load())) < 30*time.Second {
				b.notify("WATCHDOG=1")
				lastPing = time.Now()
			}
		}
		if now := b.now(); now.Sub(lastPrune) >= time.Minute {
			lastPrune = now
			b.pruneReplay(now)
		}
		if c := b.store.Commits(); c != last {
			last = c
			if err := b.store.ReleaseMemory(); err != nil {
				b.log.Debug("releasing store pages failed", "err", err)
			}
		}
	}
}

func (b *Bridge) registerOutboxGauge(name string) {
	b.m.gauge(fmt.Sprintf(`edgehook_outbox_jobs{endpoint=%s}`, label(name)), func() float64 {
		return float64(b.store.PendingFor(name))
	})
}
