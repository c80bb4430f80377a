package bridge

import (
	"context"
	"crypto/subtle"
	"errors"
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
//   - loopback clients, directly or through a trusted proxy on this host that
//     says so in X-Forwarded-For, addressing us by an IP literal or
//     "localhost" (so a web page cannot reach us through DNS rebinding); or
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

// isLocal reports whether r comes from this host: the TCP peer is loopback,
// every hop a proxy recorded in X-Forwarded-For is loopback too (and the
// peer is a trusted proxy if there are any), there is no Forwarded header
// (which we do not parse), and the Host header names us by an IP literal or
// localhost. A trusted proxy elsewhere on the network never makes a request
// local, whatever it forwards.
func (b *Bridge) isLocal(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !peer.Unmap().IsLoopback() {
		return false
	}
	if r.Header.Get("Forwarded") != "" {
		return false
	}
	if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
		if !containsAddr(b.trusted, peer.Unmap()) {
			return false // a proxy we were not told to trust: the real client is elsewhere
		}
		for _, hop := range strings.Split(strings.Join(xff, ","), ",") {
			a, err := netip.ParseAddr(strings.TrimSpace(hop))
			if err != nil || !a.Unmap().IsLoopback() {
				return false
			}
		}
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
	ep, rule := r.URL.Query().Get("endpoint"), r.URL.Query().Get("rule")
	out := []DeadLetter{}
	total := 0
	err := b.store.DeadLetters(func(j *queue.Job) {
		if (ep == "" || j.Target == ep) && (rule == "" || j.Rule == rule) {
			total++
			out = append(out, deadLetterOf(j))
			if len(out) > limit {
				out = out[1:] // keep the newest
			}
		}
	})
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]any{"status": 500, "error": "reading dead letters: " + err.Error()})
		return
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
	res, err := b.retryDeadLetters(r.Context(), func(j *queue.Job) bool {
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
	res, err := b.retryDeadLetters(r.Context(), func(j *queue.Job) bool { return ep == "" || j.Target == ep })
	if err != nil {
		b.answerRetry(w, r, http.StatusServiceUnavailable, RetryResult{Error: err.Error()})
		return
	}
	b.answerRetry(w, r, http.StatusOK, res)
}

// DeleteResult is what a delete answers.
type DeleteResult struct {
	Deleted int      `json:"deleted"`
	IDs     []string `json:"ids"`
	Error   string   `json:"error,omitempty"`
	Status  int      `json:"status,omitempty"`
}

// handleAPIDeleteOne throws one dead letter away (DELETE, or POST …/delete
// from the page's form).
func (b *Bridge) handleAPIDeleteOne(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	ids, err := b.deleteDeadLetters(func(j *queue.Job) bool { return j.ID == id || strconv.FormatUint(j.Seq, 10) == id })
	switch {
	case err != nil:
		b.answerDelete(w, r, http.StatusServiceUnavailable, DeleteResult{IDs: []string{}, Error: err.Error()})
	case len(ids) == 0:
		b.answerDelete(w, r, http.StatusNotFound, DeleteResult{IDs: ids, Error: fmt.Sprintf("no dead letter %q", id)})
	default:
		b.answerDelete(w, r, http.StatusOK, DeleteResult{Deleted: len(ids), IDs: ids})
	}
}

// handleAPIDeleteAll throws every dead letter away (?endpoint= limits it to
// one endpoint).
func (b *Bridge) handleAPIDeleteAll(w http.ResponseWriter, r *http.Request) {
	ep := r.URL.Query().Get("endpoint")
	ids, err := b.deleteDeadLetters(func(j *queue.Job) bool { return ep == "" || j.Target == ep })
	if err != nil {
		b.answerDelete(w, r, http.StatusServiceUnavailable, DeleteResult{IDs: []string{}, Error: err.Error()})
		return
	}
	b.answerDelete(w, r, http.StatusOK, DeleteResult{Deleted: len(ids), IDs: ids})
}

func (b *Bridge) answerDelete(w http.ResponseWriter, r *http.Request, code int, res DeleteResult) {
	if wantsHTML(r) {
		seeOther(w, backToPage(r, fmt.Sprintf("deleted=%d&failed=%d", res.Deleted, btoi(code >= 400))))
		return
	}
	if code >= 400 {
		res.Status = code
	}
	writeJSON(w, code, res)
}

// wantsHTML reports whether r is a browser's form post from the status page.
func wantsHTML(r *http.Request) bool { return strings.Contains(r.Header.Get("Accept"), "text/html") }

// backToPage is a relative URL from an /api/v1/deadletters/… request back to
// the status page, so that it also works under a reverse proxy's sub-path.
func backToPage(r *http.Request, query string) string {
	depth := strings.Count(strings.TrimPrefix(r.URL.Path, "/"), "/")
	return strings.Repeat("../", depth) + "?" + query + "#deadletters"
}

// seeOther redirects to a relative URL as it is (http.Redirect would make it
// absolute, losing a proxy's path prefix).
func seeOther(w http.ResponseWriter, location string) {
	w.Header().Set("Location", location)
	w.WriteHeader(http.StatusSeeOther)
}

// answerRetry answers JSON, or, for a form on the status page (a browser
// asking for HTML), redirects back to it with the outcome.
func (b *Bridge) answerRetry(w http.ResponseWriter, r *http.Request, code int, res RetryResult) {
	if wantsHTML(r) {
		seeOther(w, backToPage(r, fmt.Sprintf("retried=%d&skipped=%d&failed=%d", res.Retried, len(res.Skipped), btoi(code >= 400))))
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

// reviveChunk is how many dead letters one ingest commit re-queues.
const reviveChunk = 500

// errStopping answers a retry or delete that arrives during shutdown.
var errStopping = errors.New("edgehook is shutting down; nothing more was changed")

// retryDeadLetters puts the dead letters match picks back in the outbox:
// under a new Seq (so they are loaded like any new event, within the memory
// window), with their webhook-id, attempts reset and max_age counted from
// now. Ingest commits them, a chunk at a time, and hands them to their
// deliverers; one of an endpoint a 410 disabled re-enables it. Dead letters
// that never rendered, or whose endpoint is no longer configured, are
// skipped. Retries and deletes are serialised.
func (b *Bridge) retryDeadLetters(ctx context.Context, match func(*queue.Job) bool) (RetryResult, error) {
	b.reviveMu.Lock()
	defer b.reviveMu.Unlock()
	res := RetryResult{IDs: []string{}, Skipped: []RetrySkip{}}
	var seqs []uint64
	err := b.store.DeadLetters(func(j *queue.Job) {
		switch {
		case !match(j):
		case j.Undeliverable:
			res.Skipped = append(res.Skipped, RetrySkip{ID: j.ID, Reason: "cannot be retried: it was never rendered (" + j.Reason +
				"); fix the rule, and new events will use it"})
		case b.deliverer(j.Target) == nil:
			res.Skipped = append(res.Skipped, RetrySkip{ID: j.ID, Reason: fmt.Sprintf("endpoint %q is no longer configured", j.Target)})
		default:
			seqs = append(seqs, j.Seq)
		}
	})
	if err != nil {
		return res, fmt.Errorf("reading dead letters: %w", err)
	}
	for len(seqs) > 0 {
		chunk := seqs[:min(len(seqs), reviveChunk)]
		seqs = seqs[len(chunk):]
		req := reviveRequest{done: make(chan error, 1)}
		for _, seq := range chunk {
			j, err := b.store.DeadLetter(seq)
			if err != nil {
				return res, fmt.Errorf("reading dead letters: %w", err)
			}
			if j != nil {
				req.jobs = append(req.jobs, j)
			}
		}
		select {
		case b.reviveReq <- req:
		case <-b.ingestDone:
			return res, errStopping
		case <-ctx.Done():
			return res, ctx.Err()
		}
		if err := <-req.done; err != nil {
			return res, err
		}
		res.Retried += len(req.jobs)
		for _, j := range req.jobs {
			res.IDs = append(res.IDs, j.ID)
		}
	}
	if res.Retried > 0 {
		b.log.Info("dead letters re-queued", "count", res.Retried)
	}
	return res, nil
}

// reviveRequest asks ingest to put dead letters back in the outbox.
type reviveRequest struct {
	jobs []*queue.Job // dead letters, as stored
	done chan error   // capacity 1
}

// applyRevive commits a reviveRequest and hands the jobs to the deliverers,
// in Seq order like every new job. It runs on the ingest goroutine.
func (b *Bridge) applyRevive(ctx context.Context, req reviveRequest) {
	var bt batch
	now := b.now().UTC()
	for _, dl := range req.jobs {
		j := *dl
		j.Seq = b.store.NextSeq()
		j.Attempts, j.Reason, j.Status, j.DeadAt, j.Revived = 0, "", 0, time.Time{}, now
		bt.q.Discard = append(bt.q.Discard, dl.Seq)
		bt.q.Put = append(bt.q.Put, &j)
		bt.jobs = append(bt.jobs, &j)
	}
	if !b.commit(ctx, &bt.q) {
		req.done <- errStopping
		return
	}
	for _, j := range bt.jobs {
		if d := b.deliverer(j.Target); d != nil {
			d.in <- j
		}
	}
	req.done <- nil
}

// deleteDeadLetters throws away the dead letters match picks, and returns
// their ids.
func (b *Bridge) deleteDeadLetters(match func(*queue.Job) bool) ([]string, error) {
	b.reviveMu.Lock()
	defer b.reviveMu.Unlock()
	var q queue.Batch
	ids := []string{}
	err := b.store.DeadLetters(func(j *queue.Job) {
		if match(j) {
			q.Discard = append(q.Discard, j.Seq)
			ids = append(ids, j.ID)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("reading dead letters: %w", err)
	}
	if len(ids) == 0 {
		return ids, nil
	}
	if b.stopping.Load() {
		return nil, errStopping
	}
	if err := b.store.Commit(&q); err != nil {
		b.m.commitErrs.Inc()
		return nil, err
	}
	b.log.Info("dead letters deleted", "count", len(ids))
	return ids, nil
}
