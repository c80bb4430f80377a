package bridge

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"golang.org/x/time/rate"

	"github.com/edgehook/edgehook/bridge/queue"
	"github.com/edgehook/edgehook/bridge/webhook"
)

// retrySchedule is the wait before retry n (PRODUCT.md §4): immediately, then
// 5s, 30s, 2m, 10m, 30m, 1h, then hourly; each ±20% jitter.
var retrySchedule = [...]time.Duration{0, 5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute, 30 * time.Minute, time.Hour}

// backoff returns the jittered wait after the n-th failed attempt (n >= 1).
func backoff(n int) time.Duration {
	d := time.Hour
	if n-1 < len(retrySchedule) {
		d = retrySchedule[n-1]
	}
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// memWindow is how many jobs of one target are held in memory; the rest wait
// on disk and are loaded, in order, as the window drains.
const memWindow = 2048

// attemptFunc makes one delivery attempt of a job.
type attemptFunc func(ctx context.Context, j *queue.Job) error

// deliverer delivers the jobs of one target (an endpoint, or the MQTT publish
// actions). Jobs of one series go out one at a time, in order; different series
// never wait for each other; at most concurrency attempts run at once. One
// goroutine (run) owns the scheduling state; attempts run in goroutines of their
// own and report on results. Send new jobs on in, in Seq order, after they are
// committed.
type deliverer struct {
	target      string
	attempt     attemptFunc
	concurrency int
	limiter     *rate.Limiter // nil: unlimited
	maxAge      atomic.Int64  // time.Duration; a reload may change it
	store       *queue.Outbox
	retire      func(done, dead []*queue.Job, meta []queue.KV) // never blocks
	flush       func()                                         // commits what retire collected, now
	log         *slog.Logger
	m           *targetMetrics
	wait        *metrics.PrometheusHistogram
	now         func() time.Time

	in      chan *queue.Job // new jobs; buffered, the run loop drains it quickly
	work    chan result     // attempts for the workers; capacity concurrency
	results chan result     // capacity concurrency: workers never block on it

	// Owned by run.
	series   map[string]*seriesQ
	ready    []*seriesQ // heads that may be attempted now, in order
	waiting  seriesHeap // heads waiting for their retry time
	inflight int
	mem      int
	overflow uint64 // first Seq not loaded into memory; 0 when all are loaded
	loaded   uint64 // highest Seq loaded by a scan (later arrivals at or below it are duplicates)
	disabled bool
	rateWake time.Time

	conn atomic.Pointer[endpointConn] // endpoints: URL, secret…; a reload swaps it

	mu     sync.Mutex // guards status
	status targetStatus
}

// targetStatus is a snapshot for the status page, /readyz and metrics.
type targetStatus struct {
	Inflight  int
	LastError string
	LastAt    time.Time // of the last attempt
	NextRetry time.Time
	Disabled  bool
	Delivered int64
}

type seriesQ struct {
	key   string
	jobs  []*queue.Job
	busy  bool      // head in flight
	next  time.Time // head waits until then (retry)
	index int       // in waiting, -1 when not there
}

type result struct {
	s     *seriesQ
	j     *queue.Job
	err   error
	start time.Time
}

func newDeliverer(target string, attempt attemptFunc, concurrency int, ratePerSec float64, maxAge time.Duration,
	store *queue.Outbox, retire func(done, dead []*queue.Job, meta []queue.KV), flush func(),
	log *slog.Logger, m *metricSet, now func() time.Time) *deliverer {
	d := &deliverer{
		target: target, attempt: attempt, concurrency: max(1, concurrency),
		store: store, retire: retire, flush: flush, log: log.With("endpoint", target), m: m.forTarget(target), wait: m.queueWait, now: now,
		in:       make(chan *queue.Job, 1024),
		work:     make(chan result, max(1, concurrency)),
		results:  make(chan result, max(1, concurrency)),
		series:   map[string]*seriesQ{},
		overflow: 1, // load whatever the store holds on the first turn
	}
	d.maxAge.Store(int64(maxAge))
	if ratePerSec > 0 {
		d.limiter = rate.NewLimiter(rate.Limit(ratePerSec), max(1, int(ratePerSec)))
	}
	return d
}

// Status returns a snapshot. Safe for concurrent use.
func (d *deliverer) Status() targetStatus {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.status
}

// run delivers until stop is closed, then lets attempts in flight finish
// until hard is done (whose end also cancels them), and returns. Jobs not
// delivered stay in the outbox.
func (d *deliverer) run(stop <-chan struct{}, hard context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	// Long-lived workers make the attempts (a goroutine per attempt would grow
	// a fresh stack for every HTTP request).
	var workers sync.WaitGroup
	for i := 0; i < d.concurrency; i++ {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for w := range d.work {
				w.start = d.now()
				if w.j.Attempts == 0 {
					d.wait.Update(w.j.Age(w.start).Seconds())
				}
				w.err = d.attempt(hard, w.j)
				d.results <- w
			}
		}()
	}
	defer func() {
		close(d.work)
		workers.Wait()
	}()
	stopping := false
	for {
		if !stopping {
			d.load()
			d.dispatch()
		} else if d.inflight == 0 {
			return
		}
		d.publishStatus()
		var wake <-chan time.Time
		if t, ok := d.nextWake(); ok && !stopping {
			timer.Reset(max(0, t.Sub(d.now())))
			wake = timer.C
		}
		select {
		case j := <-d.in:
			d.add(j)
		case r := <-d.results:
			d.handle(r)
		case <-wake:
			d.promote()
		case <-stop:
			stop = nil
			stopping = true
		case <-hard.Done():
			if d.inflight == 0 {
				return
			}
			// Attempts see the cancellation and report back; keep draining results.
			r := <-d.results
			d.handle(r)
		}
	}
}

func (d *deliverer) nextWake() (time.Time, bool) {
	var t time.Time
	if len(d.waiting) > 0 {
		t = d.waiting[0].next
	}
	if !d.rateWake.IsZero() && (t.IsZero() || d.rateWake.Before(t)) {
		t = d.rateWake
	}
	return t, !t.IsZero()
}

// add takes a newly committed job. A revived one (a dead letter a person
// retried) re-enables an endpoint a 410 disabled.
func (d *deliverer) add(j *queue.Job) {
	if d.disabled && !j.Revived.IsZero() {
		d.reenable()
	}
	switch {
	case j.Seq <= d.loaded:
		return // already loaded from the store (or dead-lettered when disabled)
	case d.disabled:
		d.deadLetter([]*queue.Job{j}, "endpoint disabled after 410 Gone", 410, nil)
		return
	case d.overflow != 0:
		return // on disk; loaded in order later
	case d.mem >= memWindow:
		d.overflow = j.Seq
		return
	}
	d.enqueue(j)
}

// reenable lifts a 410's disable: a person retried one of its dead letters.
// The mark is deleted through retire, so it is ordered after the mark's put.
func (d *deliverer) reenable() {
	d.disabled = false
	d.retire(nil, nil, []queue.KV{{Key: []byte("disabled/" + d.target)}})
	d.log.Info("endpoint re-enabled by a dead-letter retry")
}

func (d *deliverer) enqueue(j *queue.Job) {
	s := d.series[j.Series]
	if s == nil {
		s = &seriesQ{key: j.Series, index: -1}
		d.series[j.Series] = s
	}
	s.jobs = append(s.jobs, j)
	d.mem++
	if len(s.jobs) == 1 && !s.busy && s.next.IsZero() {
		d.ready = append(d.ready, s)
	}
}

// load fills the memory window from the store once it has drained to half.
func (d *deliverer) load() {
	if d.overflow == 0 || d.mem > memWindow/2 || d.disabled {
		return
	}
	var last uint64
	next, corrupt, err := d.store.Scan(d.target, d.overflow, memWindow-d.mem, func(j *queue.Job) {
		last = j.Seq
		d.enqueue(j)
	})
	if err != nil {
		d.log.Error("reading the outbox failed; will retry", "err", err)
		return
	}
	if corrupt > 0 {
		d.log.Error("damaged outbox records were moved aside", "count", corrupt)
	}
	d.loaded = max(d.loaded, last)
	d.overflow = next
}

// dispatch starts attempts for ready heads while capacity and the rate allow.
func (d *deliverer) dispatch() {
	now := d.now()
	d.rateWake = time.Time{}
	maxAge := time.Duration(d.maxAge.Load())
	for len(d.ready) > 0 && d.inflight < d.concurrency && !d.disabled {
		s := d.ready[0]
		j := s.jobs[0]
		if maxAge > 0 && j.Age(now) > maxAge {
			d.ready = d.ready[1:]
			d.pop(s)
			d.deadLetter([]*queue.Job{j}, fmt.Sprintf("expired: not delivered within max_age %v", maxAge), 0, nil)
			continue
		}
		if d.limiter != nil {
			r := d.limiter.ReserveN(now, 1)
			if wait := r.DelayFrom(now); wait > 0 {
				r.CancelAt(now)
				d.rateWake = now.Add(wait)
				return
			}
		}
		d.ready = d.ready[1:]
		s.busy = true
		d.inflight++
		d.work <- result{s: s, j: j} // never blocks: at most concurrency attempts are in flight
	}
}

// pop removes the head of s and schedules its next job.
func (d *deliverer) pop(s *seriesQ) {
	s.jobs[0] = nil
	s.jobs = s.jobs[1:]
	d.mem--
	if len(s.jobs) == 0 {
		delete(d.series, s.key)
		return
	}
	if !s.busy && s.next.IsZero() {
		d.ready = append(d.ready, s)
	}
}

func (d *deliverer) handle(r result) {
	d.inflight--
	s, j := r.s, r.j
	s.busy = false
	now := d.now()
	d.mu.Lock()
	d.status.LastAt = now
	d.mu.Unlock()
	verdict := webhook.Classify(r.err)
	if verdict != webhook.Delivered && verdict != webhook.Retry {
		j.Attempts++ // a failed attempt, for the dead letter's record
	}
	if d.disabled && verdict != webhook.Delivered {
		// Finished after the endpoint was disabled by another attempt.
		if verdict == webhook.Retry {
			j.Attempts++
		}
		d.pop(s)
		d.deadLetter([]*queue.Job{j}, "endpoint disabled after 410 Gone", 410, nil)
		return
	}
	switch verdict {
	case webhook.Delivered:
		d.m.ok.Inc()
		d.m.latency.Update(j.Age(now).Seconds())
		d.mu.Lock()
		d.status.Delivered++
		d.status.LastError = ""
		d.mu.Unlock()
		d.retire([]*queue.Job{j}, nil, nil)
		d.log.Debug("delivered", "delivery_id", j.ID, "attempt", j.Attempts+1, "rule", j.Rule)
		d.pop(s)
	case webhook.DeadLetter:
		d.m.rejected.Inc()
		d.setError(r.err)
		d.pop(s)
		d.deadLetter([]*queue.Job{j}, r.err.Error(), statusOf(r.err), nil)
	case webhook.Disable:
		d.m.gone.Inc()
		d.setError(r.err)
		d.pop(s)
		d.disable(j, r.err)
	default:
		d.m.retry.Inc()
		d.setError(r.err)
		j.Attempts++
		wait := max(backoff(j.Attempts), webhook.RetryAfter(r.err))
		if maxAge := time.Duration(d.maxAge.Load()); maxAge > 0 && j.Age(now.Add(wait)) > maxAge {
			d.pop(s)
			d.deadLetter([]*queue.Job{j}, fmt.Sprintf("expired: not delivered within max_age %v (last error: %v)", maxAge, r.err), statusOf(r.err), nil)
			return
		}
		d.log.Warn("delivery failed; will retry", "delivery_id", j.ID, "attempt", j.Attempts, "err", r.err, "retry_in", wait.Round(time.Millisecond))
		s.next = now.Add(wait)
		heap.Push(&d.waiting, s)
	}
}

// promote moves heads whose retry time has come to ready.
func (d *deliverer) promote() {
	now := d.now()
	for len(d.waiting) > 0 && !d.waiting[0].next.After(now) {
		s := heap.Pop(&d.waiting).(*seriesQ)
		s.next = time.Time{}
		if len(s.jobs) > 0 {
			d.ready = append(d.ready, s)
		}
	}
}

func (d *deliverer) setError(err error) {
	d.mu.Lock()
	d.status.LastError = err.Error()
	d.mu.Unlock()
}

func statusOf(err error) int {
	var se *webhook.StatusError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

func (d *deliverer) deadLetter(jobs []*queue.Job, reason string, status int, meta []queue.KV) {
	now := d.now()
	for _, j := range jobs {
		j.Reason, j.Status, j.DeadAt = reason, status, now
	}
	if len(jobs) > 0 {
		d.m.dead.Add(len(jobs))
		d.log.Warn("dead-lettered", "count", len(jobs), "reason", reason)
	}
	d.retire(nil, jobs, meta)
}

// disable handles a 410: the endpoint is gone. Every job of this target that is
// not in flight becomes a dead letter, and so does every later one until a
// dead-letter retry re-enables it.
func (d *deliverer) disable(j *queue.Job, err error) {
	d.disabled = true
	d.log.Error("endpoint answered 410 Gone: disabled, its events become dead letters (retry a dead letter to re-enable it)")
	inflight := map[uint64]bool{}
	for _, s := range d.series {
		if s.busy && len(s.jobs) > 0 {
			inflight[s.jobs[0].Seq] = true
		}
	}
	// Delivered jobs whose deletion is not committed yet must not be
	// mistaken for undelivered ones by the scan below.
	d.flush()
	jobs := []*queue.Job{j}
	scanned := j.Seq
	_, _, scanErr := d.store.Scan(d.target, 0, int(^uint(0)>>1), func(sj *queue.Job) {
		scanned = max(scanned, sj.Seq)
		if !inflight[sj.Seq] && sj.Seq != j.Seq {
			jobs = append(jobs, sj)
		}
	})
	if scanErr != nil {
		d.log.Error("reading the outbox failed", "err", scanErr)
	}
	// Forget everything in memory but the heads in flight.
	for k, s := range d.series {
		if s.busy && len(s.jobs) > 0 {
			s.jobs = s.jobs[:1]
			continue
		}
		delete(d.series, k)
	}
	d.ready, d.waiting, d.mem, d.overflow = nil, nil, len(inflight), 0
	d.loaded = max(d.loaded, scanned) // arrivals up to here were dead-lettered by the scan
	d.deadLetter(jobs, fmt.Sprintf("endpoint disabled: %v", err), 410,
		[]queue.KV{{Key: []byte("disabled/" + d.target), Value: []byte(d.now().UTC().Format(time.RFC3339))}})
}

func (d *deliverer) publishStatus() {
	var next time.Time
	if len(d.waiting) > 0 {
		next = d.waiting[0].next
	}
	d.mu.Lock()
	d.status.Inflight = d.inflight
	d.status.NextRetry = next
	d.status.Disabled = d.disabled
	d.mu.Unlock()
}

// seriesHeap orders waiting series by retry time.
type seriesHeap []*seriesQ

func (h seriesHeap) Len() int           { return len(h) }
func (h seriesHeap) Less(i, j int) bool { return h[i].next.Before(h[j].next) }
func (h seriesHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *seriesHeap) Push(x any) {
	s := x.(*seriesQ)
	s.index = len(*h)
	*h = append(*h, s)
}
func (h *seriesHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	s.index = -1
	*h = old[:len(old)-1]
	return s
}
