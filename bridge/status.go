package bridge

import (
	"encoding/json"
	"net/url"
	"sort"
	"time"

	"github.com/edgehook/edgehook/bridge/queue"
	"github.com/edgehook/edgehook/bridge/webhook"
)

// Status is GET /api/v1/status, and what the status page shows. It never
// holds a secret: endpoint URLs are cut to scheme://host, the broker URL loses
// its user info.
type Status struct {
	Version     VersionStatus    `json:"version"`
	StartedAt   time.Time        `json:"started_at"`
	Now         time.Time        `json:"now"`
	Ready       bool             `json:"ready"`
	Reasons     []string         `json:"reasons"`
	LastReload  *reloadStatus    `json:"last_reload,omitempty"`
	Broker      BrokerStatus     `json:"broker"`
	Store       StoreStatus      `json:"store"`
	Rules       []RuleStatus     `json:"rules"`
	Endpoints   []EndpointStatus `json:"endpoints"`
	Inbound     []RouteStatus    `json:"inbound"`
	DeadLetters int              `json:"dead_letters"`
}

// VersionStatus is the build.
type VersionStatus struct {
	Version  string `json:"version"`
	Commit   string `json:"commit"`
	Platform string `json:"platform"`
}

// BrokerStatus is the MQTT connection.
type BrokerStatus struct {
	URL        string `json:"url"`
	ClientID   string `json:"client_id"`
	Connected  bool   `json:"connected"`
	Reconnects int64  `json:"reconnects"`
}

// StoreStatus is the outbox.
type StoreStatus struct {
	Dir          string `json:"dir"`
	PendingJobs  int64  `json:"pending_jobs"`
	PendingBytes int64  `json:"pending_bytes"`
	LastError    string `json:"last_error,omitempty"`
}

// RuleStatus is one rule and its series.
type RuleStatus struct {
	Name        string         `json:"name"`
	Condition   string         `json:"condition"`
	Topic       string         `json:"topic"`
	Endpoints   []string       `json:"endpoints"`
	Publishes   int            `json:"publishes"`
	SeriesCount int            `json:"series_count"`
	Firing      int            `json:"firing"`
	LastFired   *lastEvent     `json:"last_fired,omitempty"` // the rule's last rule.fired, of any series
	LastEvent   *lastEvent     `json:"last_event,omitempty"` // its last event, fired or resolved
	Series      []SeriesStatus `json:"series"`               // at most maxSeriesShown, firing first
}

// SeriesStatus is one series of a rule.
type SeriesStatus struct {
	Series      string     `json:"series"`
	State       string     `json:"state"` // firing, active, pending, ok, no reading
	Value       *float64   `json:"value,omitempty"`
	LastReading *time.Time `json:"last_reading,omitempty"`
	Since       *time.Time `json:"since,omitempty"`
	LastFired   *time.Time `json:"last_fired,omitempty"`
	LastEvent   *lastEvent `json:"last_event,omitempty"`
}

// EndpointStatus is one delivery target: an [[endpoint]], or "@mqtt" for
// the rules' MQTT publish actions.
type EndpointStatus struct {
	Name        string     `json:"name"`
	URL         string     `json:"url,omitempty"` // scheme://host only
	QueueDepth  int64      `json:"queue_depth"`
	InFlight    int        `json:"in_flight"`
	Delivered   int64      `json:"delivered"`
	LastAttempt *time.Time `json:"last_attempt,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
	NextRetry   *time.Time `json:"next_retry,omitempty"`
	Disabled    bool       `json:"disabled"`
	DeadLetters int        `json:"dead_letters"`
}

// RouteStatus is one [[inbound]] route and its latest results.
type RouteStatus struct {
	Name   string          `json:"name"`
	Path   string          `json:"path"`
	Verify string          `json:"verify"`
	Recent []InboundResult `json:"recent"` // newest first
}

// InboundResult is how one inbound request ended.
type InboundResult struct {
	At      time.Time `json:"at"`
	Status  int       `json:"status"`
	Client  string    `json:"client"`
	Message string    `json:"message"`
}

// DeadLetter is one dead letter as GET /api/v1/deadletters shows it. ID is
// its webhook-id (kept when it is retried).
type DeadLetter struct {
	ID        string          `json:"id"`
	Seq       uint64          `json:"seq"`
	Endpoint  string          `json:"endpoint"`
	Rule      string          `json:"rule"`
	Series    string          `json:"series"`
	Type      string          `json:"type"`
	Topic     string          `json:"topic,omitempty"` // MQTT publish actions
	Created   time.Time       `json:"created"`
	DeadAt    time.Time       `json:"dead_at"`
	Attempts  int             `json:"attempts"`
	Status    int             `json:"status,omitempty"` // last HTTP status
	Reason    string          `json:"reason"`
	Retryable bool            `json:"retryable"` // false: it never rendered (a template failed)
	Body      json.RawMessage `json:"body"`      // JSON, or a JSON string when the body is not JSON
}

func deadLetterOf(j *queue.Job) DeadLetter {
	body := json.RawMessage(j.Body)
	if !json.Valid(body) {
		s, _ := json.Marshal(string(j.Body))
		body = s
	}
	return DeadLetter{ID: j.ID, Seq: j.Seq, Endpoint: j.Target, Rule: j.Rule, Series: j.Series, Type: j.Type, Topic: j.Topic,
		Created: j.Created, DeadAt: j.DeadAt, Attempts: j.Attempts, Status: j.Status, Reason: j.Reason, Retryable: !j.Undeliverable, Body: body}
}

// status builds a snapshot. Safe for concurrent use once Run has started.
func (b *Bridge) status() Status {
	cfg := b.current.Load()
	st := Status{
		Version:   VersionStatus{Version: b.version.Version, Commit: b.version.Commit, Platform: b.version.Platform},
		StartedAt: b.started, Now: b.now(),
		Reasons:    b.readiness(),
		LastReload: b.reloadState.Load(),
		Broker: BrokerStatus{URL: brokerDisplay(cfg.MQTT.Broker), ClientID: cfg.MQTT.ClientID,
			Connected: b.mq.Connected(), Reconnects: b.mq.Reconnects()},
		Rules:     b.view.snapshot(),
		Endpoints: []EndpointStatus{},
		Inbound:   []RouteStatus{},
	}
	st.Ready = len(st.Reasons) == 0
	if st.Reasons == nil {
		st.Reasons = []string{}
	}
	jobs, bytes := b.store.Pending()
	st.Store = StoreStatus{Dir: cfg.Store.Dir, PendingJobs: jobs, PendingBytes: bytes}
	if err := b.store.LastError(); err != nil {
		st.Store.LastError = err.Error()
	}
	dead, err := b.store.DeadCounts()
	if err != nil {
		st.Store.LastError = "reading dead letters: " + err.Error()
	}
	for _, n := range dead {
		st.DeadLetters += n
	}
	urls := map[string]string{}
	for _, ep := range cfg.Endpoints {
		urls[ep.Name] = webhook.SafeURL(ep.URL)
	}
	names := make([]string, 0, len(b.allDeliverers()))
	for name := range b.allDeliverers() {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool {
		// Endpoints in name order, the MQTT publish actions last.
		if a, b := names[i] == queue.PublishTarget, names[j] == queue.PublishTarget; a != b {
			return b
		}
		return names[i] < names[j]
	})
	for _, name := range names {
		d := b.deliverer(name)
		ds := d.Status()
		st.Endpoints = append(st.Endpoints, EndpointStatus{Name: name, URL: urls[name], QueueDepth: b.store.PendingFor(name),
			InFlight: ds.Inflight, Delivered: ds.Delivered, LastAttempt: timePtr(ds.LastAt), LastError: ds.LastError,
			NextRetry: timePtr(ds.NextRetry), Disabled: ds.Disabled, DeadLetters: dead[name]})
	}
	for _, in := range cfg.Inbound {
		st.Inbound = append(st.Inbound, RouteStatus{Name: in.Name, Path: in.Path, Verify: in.Verify, Recent: b.inLog.recent(in.Name)})
	}
	return st
}

// brokerDisplay is the broker URL without user info.
func brokerDisplay(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	u.User = nil
	return u.String()
}
