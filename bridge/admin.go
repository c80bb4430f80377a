package bridge

import (
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/edgehook/edgehook/bridge/queue"
)

// The status page and /api/v1 show what the daemon knows and can re-queue dead
// letters, so they answer only:
//   - loopback clients (a reverse proxy on the same host must be listed in
//     trusted_proxies, else a request carrying X-Forwarded-For or Forwarded
//     is not taken as local), addressing us by an IP literal or "localhost"
//     (so a web page cannot reach us through DNS rebinding); or
//   - anyone presenting the admin token: "Authorization: Bearer <token>", or
//     HTTP Basic with the token as password (browsers).
//
// Without an admin token configured, other clients get 403; with one, 401.
// Cross-origin POSTs from browsers are refused (http.CrossOriginProtection),
// so a web page cannot press Retry on a user's behalf.

// admin wraps an admin handler with the checks above.
func (b *Bridge) admin(h http.HandlerFunc) http.Handler {
	cop := http.NewCrossOriginProtection()
	return cop.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		token := b.current.Load().HTTP.AdminToken.Reveal()
		if token != "" && presentedToken(r, token) {
			h(w, r)
			return
		}
		if b.isLocal(r) {
			h(w, r)
			return
		}
		if token == "" {
			writeJSON(w, http.StatusForbidden, map[string]any{"status": 403,
				"error": "the status page and /api/v1 answer loopback clients only, unless http.admin_token_file is set"})
			return
		}
		w.Header().Add("WWW-Authenticate", `Bearer realm="edgehook"`)
		w.Header().Add("WWW-Authenticate", `Basic realm="edgehook", charset="UTF-8"`)
		writeJSON(w, http.StatusUnauthorized, map[string]any{"status": 401,
			"error": "admin token required: Authorization: Bearer <token> (or HTTP Basic with the token as password)"})
	}))
}

// presentedToken reports whether r carries the admin token, compared in
// constant time.
func presentedToken(r *http.Request, token string) bool {
	var got string
	if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		got = strings.TrimSpace(a[7:])
	} else if _, pw, ok := r.BasicAuth(); ok {
		got = pw
	} else {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(token)) == 1
}

// isLocal reports whether r comes from this host, directly or through a
// trusted proxy, and names us by an IP literal or localhost.
func (b *Bridge) isLocal(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	peer = peer.Unmap()
	if !containsAddr(b.trusted, peer) && (r.Header.Get("X-Forwarded-For") != "" || r.Header.Get("Forwarded") != "") {
		return false // a proxy we were not told to trust: the real client is elsewhere
	}
	if !b.clientIP(r).IsLoopback() {
		return false
	}
	return localHost(r.Host)
}

// localHost reports whether a Host header names this machine in a way DNS
// cannot rebind: an IP literal, "localhost" or a name under ".localhost".
func localHost(h string) bool {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	h = strings.TrimSuffix(strings.ToLower(strings.Trim(h, "[]")), ".")
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	return h == "localhost" || strings.HasSuffix(h, ".localhost")
}

func (b *Bridge) handleAPIStatus(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, b.status())
}

// maxDeadLettersListed bounds one GET /api/v1/deadletters answer (?limit=).
const maxDeadLettersListed = 10_000

// handleAPIDeadLetters lists dead letters, oldest first: ?endpoint= and
// ?rule= filter, ?limit= keeps the newest N (default 1000).
func (b *Bridge) handleAPIDeadLetters(w http.ResponseWriter, r *http.Request) {
	limit := 1000
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			writeJSON(w, http.StatusBadRequest, map[string]any{"status": 400, "error": "limit: want a positive integer"})
			return
		}
		limit = min(n, maxDeadLettersListed)
	}
	jobs, _, err := b.deadLetters()
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]any{"status": 500, "error": "reading dead letters: " + err.Error()})
		return
	}
	ep, rule := r.URL.Query().Get("endpoint"), r.URL.Query().Get("rule")
	out := []DeadLetter{}
	for _, j := range jobs {
		if (ep == "" || j.Target == ep) && (rule == "" || j.Rule == rule) {
			out = append(out, deadLetterOf(j))
		}
	}
	total := len(out)
	if len(out) > limit {
		out = out[len(out)-limit:]
	}
	writeJSON(w, http.StatusOK, map[string]any{"count": total, "dead_letters": out})
}

// RetryResult is what a retry answers.
type RetryResult struct {
	Retried int         `json:"retried"`
	IDs     []string    `json:"ids"`     // webhook-ids re-queued
	Skipped []RetrySkip `json:"skipped"` // dead letters left alone
	Error   string      `json:"error,omitempty"`
	Status  int         `json:"status,omitempty"`
}

// RetrySkip is a dead letter a retry left alone, and why.
type RetrySkip struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

// handleAPIRetryOne re-queues one dead letter, named by its webhook-id (or its
// seq).
func (b *Bridge) handleAPIRetryOne(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	res, err := b.retryDeadLetters(func(j *queue.Job) bool {
		return j.ID == id || strconv.FormatUint(j.Seq, 10) == id
	})
	switch {
	case err != nil:
		b.answerRetry(w, r, http.StatusServiceUnavailable, RetryResult{Error: err.Error()})
	case res.Retried == 0 && len(res.Skipped) > 0:
		b.answerRetry(w, r, http.StatusConflict, RetryResult{IDs: []string{}, Skipped: res.Skipped, Error: res.Skipped[0].Reason})
	case res.Retried == 0:
		b.answerRetry(w, r, http.StatusNotFound, RetryResult{IDs: []string{}, Skipped: []RetrySkip{}, Error: fmt.Sprintf("no dead letter %q", id)})
	default:
		b.answerRetry(w, r, http.StatusOK, res)
	}
}

// handleAPIRetryAll re-queues every dead letter (?endpoint= limits it to one
// endpoint).
func (b *Bridge) handleAPIRetryAll(w http.ResponseWriter, r *http.Request) {
	ep := r.URL.Query().Get("endpoint")
	if ep == "" {
		ep = r.PostFormValue("endpoint")
	}
	res, err := b.retryDeadLetters(func(j *queue.Job) bool { return ep == "" || j.Target == ep })
	if err != nil {
		b.answerRetry(w, r, http.StatusServiceUnavailable, RetryResult{Error: err.Error()})
		return
	}
	b.answerRetry(w, r, http.StatusOK, res)
}

// answerRetry answers JSON, or, for a form on the status page (a browser
// asking for HTML), redirects back to it with the outcome.
func (b *Bridge) answerRetry(w http.ResponseWriter, r *http.Request, code int, res RetryResult) {
	if strings.Contains(r.Header.Get("Accept"), "text/html") {
		http.Redirect(w, r, fmt.Sprintf("/?retried=%d&skipped=%d&failed=%d#deadletters", res.Retried, len(res.Skipped),
			btoi(code >= 400)), http.StatusSeeOther)
		return
	}
	if code >= 400 {
		res.Status = code
	}
	if res.IDs == nil {
		res.IDs = []string{}
	}
	if res.Skipped == nil {
		res.Skipped = []RetrySkip{}
	}
	writeJSON(w, code, res)
}

func btoi(v bool) int {
	if v {
		return 1
	}
	return 0
}

// retryDeadLetters moves the dead letters match picks back to the outbox,
// with their attempts reset, their webhook-ids kept and max_age counted from
// now, re-enables endpoints a 410 had disabled, and hands the jobs to their
// deliverers. Dead letters of endpoints no longer configured are skipped.
// Retries are serialised; it blocks for one store commit.
func (b *Bridge) retryDeadLetters(match func(*queue.Job) bool) (RetryResult, error) {
	b.reviveMu.Lock()
	defer b.reviveMu.Unlock()
	res := RetryResult{IDs: []string{}, Skipped: []RetrySkip{}}
	var q queue.Batch
	// Reports the deliverers have not committed yet go first, so that a
	// pending "disabled" mark cannot land after the re-enable below.
	b.retired.takeInto(&q)
	takenDone, takenDead, takenMeta := q.Done, q.Dead, q.Meta
	perTarget := map[string][]*queue.Job{}
	now := b.now()
	err := b.store.DeadLetters(func(j *queue.Job) {
		if !match(j) {
			return
		}
		if b.deliverer(j.Target) == nil {
			res.Skipped = append(res.Skipped, RetrySkip{ID: j.ID, Reason: fmt.Sprintf("endpoint %q is no longer configured", j.Target)})
			return
		}
		j.Attempts, j.Reason, j.Status, j.DeadAt, j.Revived = 0, "", 0, time.Time{}, now.UTC()
		q.Revive = append(q.Revive, j)
		perTarget[j.Target] = append(perTarget[j.Target], j)
		res.IDs = append(res.IDs, j.ID)
	})
	if err != nil {
		b.retired.add(takenDone, takenDead, takenMeta)
		return res, fmt.Errorf("reading dead letters: %w", err)
	}
	for target := range perTarget {
		q.Meta = append(q.Meta, queue.KV{Key: []byte("disabled/" + target)}) // nil Value: delete
	}
	if len(q.Revive) == 0 && len(takenDone)+len(takenDead)+len(takenMeta) == 0 {
		return res, nil
	}
	if err := b.store.Commit(&q); err != nil {
		b.m.commitErrs.Inc()
		b.retired.add(takenDone, takenDead, takenMeta)
		return RetryResult{IDs: []string{}, Skipped: []RetrySkip{}}, fmt.Errorf("store: %w", err)
	}
	res.Retried = len(q.Revive)
	for target, jobs := range perTarget {
		b.log.Info("dead letters re-queued", "endpoint", target, "count", len(jobs))
		select {
		case b.deliverer(target).revive <- jobs:
		case <-b.stopDeliver:
			// Shutting down: they are in the outbox and go out after the restart.
		}
	}
	return res, nil
}
