package bridge

import (
	"sync"
	"time"

	"github.com/edgehook/edgehook/bridge/queue"
)

// retireWindow is how long reports may wait for ingest's next commit before
// the retirer commits them itself. Deleting delivered jobs is not urgent: one
// whose deletion is lost in a crash is sent again after the restart, with the
// same webhook-id.
const retireWindow = 20 * time.Millisecond

// retirements collects what the deliverers report — delivered jobs to delete,
// dead letters, metadata — until a commit takes it: ingest adds it to its next
// batch (no extra fsync, and no commit of ours delaying ingest's), or the
// retirer commits it when ingest has been idle for retireWindow. Safe for
// concurrent use.
type retirements struct {
	mu      sync.Mutex // guards pending
	pending queue.Batch
	wake    chan struct{} // capacity 1: tells the retirer that reports are waiting
}

func newRetirements() *retirements { return &retirements{wake: make(chan struct{}, 1)} }

// add records reports. It never blocks.
func (r *retirements) add(done, dead []*queue.Job, meta []queue.KV) {
	r.mu.Lock()
	r.pending.Done = append(r.pending.Done, done...)
	r.pending.Dead = append(r.pending.Dead, dead...)
	r.pending.Meta = append(r.pending.Meta, meta...)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// takeInto moves every pending report into q.
func (r *retirements) takeInto(q *queue.Batch) {
	r.mu.Lock()
	q.Done = append(q.Done, r.pending.Done...)
	q.Dead = append(q.Dead, r.pending.Dead...)
	q.Meta = append(q.Meta, r.pending.Meta...)
	r.pending = queue.Batch{}
	r.mu.Unlock()
}

// retirer commits reports that ingest did not pick up within retireWindow.
// It returns when stop is closed, after committing what is left.
func (b *Bridge) retirer(stop <-chan struct{}) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-b.retired.wake:
		case <-stop:
			b.flushRetired()
			return
		}
		timer.Reset(retireWindow)
		select {
		case <-timer.C:
		case <-stop:
			b.flushRetired()
			return
		}
		b.flushRetired()
	}
}

// flushRetired commits the pending reports now, retrying while the store
// fails (and giving up after a few tries once Run is stopping: the jobs stay
// in the outbox and are sent again after a restart, with the same ids).
func (b *Bridge) flushRetired() {
	var q queue.Batch
	b.retired.takeInto(&q)
	for attempt := 1; ; attempt++ {
		err := b.store.Commit(&q)
		if err == nil {
			return
		}
		b.m.commitErrs.Inc()
		if attempt == 1 || attempt%30 == 0 {
			b.log.Error("store commit failed (delivered events may be sent again after a restart)", "err", err)
		}
		if attempt >= 5 && b.stopping.Load() {
			return
		}
		time.Sleep(min(time.Duration(attempt)*100*time.Millisecond, 2*time.Second))
	}
}
