package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/VictoriaMetrics/metrics"

	"github.com/edgehook/edgehook/bridge/mqtt"
	"github.com/edgehook/edgehook/bridge/queue"
	"github.com/edgehook/edgehook/bridge/webhook"
	"github.com/edgehook/edgehook/rules"
)

// publishTimeout bounds the wait for the broker's PUBACK of an inbound command.
const publishTimeout = 5 * time.Second

// retryAfter503 is what a 503 tells the sender to wait, in seconds.
const retryAfter503 = 5

// route is one compiled [[inbound]] route. Immutable; safe for concurrent use.
type route struct {
	cfg       *Inbound
	keys      [][]byte // standard-webhooks and github: accepted HMAC keys (several during rotation)
	tokens    []string // token: accepted tokens
	allow     []netip.Prefix
	limiter   *peerLimiter // nil: unlimited
	topic     *textTemplate
	payload   *textTemplate // nil: the raw body
	filters   []rules.Filter
	needsJSON bool
	replayTTL time.Duration
	counters  map[int]*metrics.Counter // by status code
}

// routeTable is every inbound route, by path and by name.
type routeTable struct {
	byPath map[string]*route
	byName map[string]*route
}

// buildRoutes compiles the [[inbound]] routes of cfg (validated by Load).
func (b *Bridge) buildRoutes(cfg *Config) (*routeTable, error) {
	rt := &routeTable{byPath: map[string]*route{}, byName: map[string]*route{}}
	for i := range cfg.Inbound {
		in := &cfg.Inbound[i]
		r := &route{cfg: in, replayTTL: 2 * in.Tolerance, counters: map[int]*metrics.Counter{}}
		switch in.Verify {
		case webhook.SchemeStandard:
			keys, err := webhook.DecodeKeys(in.Secret.Reveal())
			if err != nil {
				return nil, fmt.Errorf("inbound %s: %w", in.Name, err)
			}
			r.keys = keys
		case webhook.SchemeGitHub:
			for _, s := range webhook.SplitSecrets(in.Secret.Reveal()) {
				r.keys = append(r.keys, []byte(s))
			}
		case "token":
			r.tokens = webhook.SplitSecrets(in.Secret.Reveal())
		}
		for _, a := range in.AllowIPs {
			p, err := parsePrefix(a)
			if err != nil {
				return nil, err
			}
			r.allow = append(r.allow, p)
		}
		if in.Rate > 0 {
			r.limiter = newPeerLimiter(in.Rate, in.Burst, 4096)
		}
		var err error
		if r.topic, err = compileTemplate("topic", in.Topic, inboundFuncs); err != nil {
			return nil, err
		}
		if in.Payload != nil {
			if r.payload, err = compileTemplate("payload", *in.Payload, inboundFuncs); err != nil {
				return nil, err
			}
		}
		r.needsJSON = !r.topic.static || (r.payload != nil && !r.payload.static)
		allow := in.AllowTopics
		if len(allow) == 0 {
			allow = []string{in.Topic} // a static topic allows itself
		}
		for _, f := range allow {
			flt, err := rules.ParseFilter(f)
			if err != nil {
				return nil, err
			}
			r.filters = append(r.filters, flt)
		}
		for _, code := range []int{200, 400, 401, 403, 413, 422, 429, 503} {
			r.counters[code] = b.m.set.GetOrCreateCounter(fmt.Sprintf(`edgehook_inbound_requests_total{route=%s,code="%d"}`, label(in.Name), code))
		}
		rt.byPath[in.Path] = r
		rt.byName[in.Name] = r
	}
	return rt, nil
}

// inboundError is a rejection with its status code; the message is safe to
// show the sender (it never contains a secret).
type inboundError struct {
	code       int
	msg        string
	retryAfter int // seconds, for 429 and 503
}

func (e *inboundError) Error() string { return fmt.Sprintf("%d %s", e.code, e.msg) }

func reject(code int, format string, args ...any) *inboundError {
	return &inboundError{code: code, msg: fmt.Sprintf(format, args...)}
}

// inboundResult is what a published (or duplicate) request answers.
type inboundResult struct {
	ID        string `json:"id"`
	Topic     string `json:"topic"`
	Duplicate bool   `json:"duplicate,omitempty"`
}

// handleInbound serves every path that is not one of edgehook's own. The
// checks run cheapest first (PRODUCT.md §5): method, path, IP allowlist,
// rate limit, body size, signature and timestamp, replay, JSON, topic, and
// only then the publish; the answer waits for the broker's PUBACK.
func (b *Bridge) handleInbound(w http.ResponseWriter, r *http.Request) {
	rt, res, err := b.inbound(w, r)
	var ie *inboundError
	switch {
	case err == nil:
		msg := "published to " + res.Topic
		if res.Duplicate {
			msg = "duplicate of " + res.ID + ": nothing published"
		}
		b.outcome(rt, r, http.StatusOK, msg)
		writeJSON(w, http.StatusOK, res)
	case errors.As(err, &ie):
		b.outcome(rt, r, ie.code, ie.msg)
		if ie.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(ie.retryAfter))
		}
		if ie.code == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", http.MethodPost)
		}
		name := "-"
		if rt != nil {
			name = rt.cfg.Name
		}
		b.log.Debug("inbound request rejected", "route", name, "status", ie.code, "err", ie.msg)
		writeJSON(w, ie.code, map[string]any{"error": ie.msg, "status": ie.code})
	default:
		b.log.Error("inbound request failed", "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]any{"error": "internal error", "status": 500})
	}
}

// outcome counts an inbound request by route and status code, and keeps a
// route's recent results for the status page (requests to unknown paths are
// counted, not listed).
func (b *Bridge) outcome(rt *route, r *http.Request, code int, msg string) {
	var c *metrics.Counter
	if rt != nil {
		c = rt.counters[code]
	}
	if c == nil {
		c = b.m.set.GetOrCreateCounter(fmt.Sprintf(`edgehook_inbound_requests_total{route="",code="%d"}`, code))
	}
	c.Inc()
	if rt == nil {
		return
	}
	client := "?"
	if a := b.clientIP(r); a.IsValid() {
		client = a.String()
	}
	b.inLog.add(rt.cfg.Name, InboundResult{At: b.now(), Status: code, Client: client, Message: msg})
}

func (b *Bridge) inbound(w http.ResponseWriter, r *http.Request) (*route, *inboundResult, error) {
	if r.Method != http.MethodPost {
		return nil, nil, reject(http.StatusMethodNotAllowed, "method %s not allowed: use POST", r.Method)
	}
	rt := b.routes.Load().byPath[r.URL.Path]
	if rt == nil || strings.Contains(strings.ToLower(r.URL.RawPath), "%2f") {
		// An encoded slash is not a path separator: /hooks%2Fheat is not
		// /hooks/heat (a proxy's path rules in front would see them apart).
		return nil, nil, reject(http.StatusNotFound, "no route at this path")
	}
	in := rt.cfg
	client := b.clientIP(r)
	if len(rt.allow) > 0 && !containsAddr(rt.allow, client) {
		return rt, nil, reject(http.StatusForbidden, "address %s is not in allow_ips", client)
	}
	now := b.now()
	if rt.limiter != nil {
		if ok, wait := rt.limiter.allow(client, now); !ok {
			e := reject(http.StatusTooManyRequests, "rate limit: at most %g requests per second (burst %d)", in.Rate, in.Burst)
			e.retryAfter = retryAfterSeconds(wait)
			return rt, nil, e
		}
	}
	maxBody := int64(in.MaxBody)
	if r.ContentLength > maxBody {
		return rt, nil, reject(http.StatusRequestEntityTooLarge, "body of %d bytes is over max_body (%d)", r.ContentLength, maxBody)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return rt, nil, reject(http.StatusRequestEntityTooLarge, "body is over max_body (%d bytes)", maxBody)
		}
		return rt, nil, reject(http.StatusBadRequest, "could not read the body")
	}
	id, err := rt.verify(r.Header, body, now)
	if err != nil {
		return rt, nil, reject(http.StatusUnauthorized, "%s", webhook.Describe(err))
	}

	// Replay: an id already published answers 200 and publishes nothing.
	var claim *replayClaim
	key := ""
	if id != "" {
		key = replayKey(in.Name, id)
		topic, dup, cl, err := b.replay.claim(r.Context(), key, now)
		if err != nil {
			return rt, nil, reject(http.StatusServiceUnavailable, "request cancelled")
		}
		if dup {
			return rt, &inboundResult{ID: id, Topic: topic, Duplicate: true}, nil
		}
		claim = cl
	} else {
		id = "cmd_" + strings.TrimPrefix(newID(now), "evt_")
	}
	published, topic := false, ""
	defer func() {
		if claim != nil {
			b.replay.settle(key, claim, published, topic, now.Add(rt.replayTTL))
		}
	}()

	topic, payload, err := rt.render(body)
	if err != nil {
		return rt, nil, err
	}
	ctx, cancel := context.WithTimeout(r.Context(), b.pubWait)
	defer cancel()
	err = b.pub.Publish(ctx, topic, byte(in.QoS), in.Retain, payload)
	switch {
	case errors.Is(err, mqtt.ErrNotConnected):
		e := reject(http.StatusServiceUnavailable, "MQTT broker unavailable; nothing was published")
		e.retryAfter = retryAfter503
		return rt, nil, e
	case err != nil:
		e := reject(http.StatusServiceUnavailable, "the broker did not acknowledge the publish within %v", b.pubWait)
		e.retryAfter = retryAfter503
		return rt, nil, e
	}
	published = true
	if key != "" {
		// Keep the id across a restart. The command is already published, so a
		// failure here still answers 200 (a 503 would make the sender repeat it).
		e := replayEntry{expires: now.Add(rt.replayTTL), topic: topic}
		if err := b.store.Commit(&queue.Batch{Replay: []queue.KV{{Key: []byte(key), Value: encodeReplay(e)}}}); err != nil {
			b.log.Error("could not persist an inbound replay id", "route", in.Name, "err", err)
		}
	}
	b.log.Info("inbound command published", "route", in.Name, "topic", topic, "delivery_id", id)
	return rt, &inboundResult{ID: id, Topic: topic}, nil
}

// verify checks the route's signature scheme and returns the request's id
// ("" when the scheme and request carry none).
func (rt *route) verify(h http.Header, body []byte, now time.Time) (string, error) {
	switch rt.cfg.Verify {
	case webhook.SchemeStandard:
		id := h.Get(webhook.HeaderID)
		if err := webhook.Verify(rt.keys, id, h.Get(webhook.HeaderTimestamp), h.Get(webhook.HeaderSignature), body, now, rt.cfg.Tolerance); err != nil {
			return "", err
		}
		return id, nil
	case webhook.SchemeGitHub:
		if err := webhook.VerifyGitHub(rt.keys, h.Get(webhook.HeaderGitHub), body); err != nil {
			return "", err
		}
		if id := h.Get("X-GitHub-Delivery"); id != "" {
			return id, nil
		}
		return h.Get(webhook.HeaderID), nil
	case "token":
		if err := webhook.VerifyToken(rt.tokens, h.Get(webhook.HeaderToken)); err != nil {
			return "", err
		}
		return h.Get(webhook.HeaderID), nil
	}
	return h.Get(webhook.HeaderID), nil // "none": allow_ips already checked
}

// render produces the topic and payload, and checks the topic before anything
// is published: a wildcard, an empty or '$' level, NUL or invalid UTF-8 would
// make the broker drop our connection, and a topic outside allow_topics is not
// this route's to publish.
func (rt *route) render(body []byte) (string, []byte, error) {
	var data any
	if rt.needsJSON {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber() // numbers render exactly as sent
		if err := dec.Decode(&data); err != nil {
			return "", nil, reject(http.StatusBadRequest, "body is not valid JSON")
		}
		if dec.More() {
			return "", nil, reject(http.StatusBadRequest, "body is not valid JSON (trailing data)")
		}
		if _, ok := data.(map[string]any); !ok {
			return "", nil, reject(http.StatusBadRequest, "body must be a JSON object")
		}
	}
	t, err := rt.topic.render(data)
	if err != nil {
		return "", nil, reject(http.StatusBadRequest, "topic: %v", err)
	}
	topic := string(t)
	if rt.needsJSON && !utf8.Valid(body) && strings.ContainsRune(topic, utf8.RuneError) {
		// The JSON decoder turned invalid UTF-8 into U+FFFD; the sender's bytes
		// were not a valid topic.
		return "", nil, reject(http.StatusUnprocessableEntity, "topic not allowed: it would contain invalid UTF-8")
	}
	if err := rules.CheckPublishTopic(topic, true); err != nil {
		return "", nil, reject(http.StatusUnprocessableEntity, "topic not allowed: %v", err)
	}
	allowed := false
	for _, f := range rt.filters {
		if f.Match(topic) {
			allowed = true
			break
		}
	}
	if !allowed {
		return "", nil, reject(http.StatusUnprocessableEntity, "topic %q does not match allow_topics", clipTopic(topic))
	}
	if rt.payload == nil {
		return topic, body, nil
	}
	p, err := rt.payload.render(data)
	if err != nil {
		return "", nil, reject(http.StatusBadRequest, "payload: %v", err)
	}
	return topic, p, nil
}

func clipTopic(s string) string {
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return strings.ToValidUTF8(s, "?")
}

// clientIP is the request's peer address, or, when the peer is one of
// trusted_proxies, the right-most X-Forwarded-For address that is not a
// trusted proxy (the left-most entries are whatever the client claimed).
func (b *Bridge) clientIP(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	peer = peer.Unmap()
	if len(b.trusted) == 0 || !containsAddr(b.trusted, peer) {
		return peer
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // garbage: trust nothing further left
		}
		client = a.Unmap()
		if !containsAddr(b.trusted, client) {
			break
		}
	}
	return client
}

func containsAddr(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
