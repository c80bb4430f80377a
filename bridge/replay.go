package bridge

import (
	"context"
	"encoding/binary"
	"strings"
	"sync"
	"time"

	"github.com/edgehook/edgehook/bridge/queue"
)

// maxReplayIDs bounds the replay memory. Only requests whose signature
// verified are remembered, so only a legitimate sender can fill it.
const maxReplayIDs = 100_000

// replayCache remembers the webhook-ids of published inbound requests, per
// route, so that a replay within the window publishes nothing. A request
// whose id is being processed right now makes a concurrent copy wait for the
// outcome: 50 parallel copies publish exactly once. The ids are also kept in
// the store, so a restart does not reopen the window. Safe for concurrent use.
type replayCache struct {
	mu       sync.Mutex // guards the maps
	seen     map[string]replayEntry
	inflight map[string]*replayClaim
}

type replayEntry struct {
	expires time.Time
	topic   string
}

// replayClaim is an id being processed; done closes when it is settled.
type replayClaim struct {
	done  chan struct{}
	ok    bool // published
	topic string
}

func newReplayCache() *replayCache {
	return &replayCache{seen: map[string]replayEntry{}, inflight: map[string]*replayClaim{}}
}

func replayKey(route, id string) string { return route + "\x00" + id }

// claim decides what to do with key at now: it returns the topic and true
// when the id was already published (a duplicate), or a claim the caller must
// settle, having become the one request allowed to publish it. A concurrent
// copy waits for the request that holds the claim; if that one does not
// publish, the copy may claim the id itself. It returns ctx's error if ctx
// ends while waiting.
func (c *replayCache) claim(ctx context.Context, key string, now time.Time) (dupTopic string, dup bool, cl *replayClaim, err error) {
	for {
		c.mu.Lock()
		if e, ok := c.seen[key]; ok && now.Before(e.expires) {
			c.mu.Unlock()
			return e.topic, true, nil, nil
		}
		other, busy := c.inflight[key]
		if !busy {
			cl := &replayClaim{done: make(chan struct{})}
			c.inflight[key] = cl
			c.mu.Unlock()
			return "", false, cl, nil
		}
		c.mu.Unlock()
		select {
		case <-other.done:
			if other.ok {
				return other.topic, true, nil, nil
			}
		case <-ctx.Done():
			return "", false, nil, ctx.Err()
		}
	}
}

// settle ends a claim: published (with the expiry of the id) or not.
func (c *replayCache) settle(key string, cl *replayClaim, published bool, topic string, expires time.Time) {
	c.mu.Lock()
	if published {
		if len(c.seen) >= maxReplayIDs {
			c.pruneLocked(time.Now())
		}
		c.seen[key] = replayEntry{expires: expires, topic: topic}
	}
	delete(c.inflight, key)
	c.mu.Unlock()
	cl.ok, cl.topic = published, topic
	close(cl.done)
}

// load installs ids kept in the store.
func (c *replayCache) load(key string, e replayEntry) {
	c.mu.Lock()
	c.seen[key] = e
	c.mu.Unlock()
}

// prune forgets expired ids and returns them, so the store can forget them too.
func (c *replayCache) prune(now time.Time) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pruneLocked(now)
}

func (c *replayCache) pruneLocked(now time.Time) []string {
	var gone []string
	for k, e := range c.seen {
		if !now.Before(e.expires) {
			gone = append(gone, k)
			delete(c.seen, k)
		}
	}
	// Still full of live ids: drop arbitrary ones rather than grow without bound.
	for k := range c.seen {
		if len(c.seen) < maxReplayIDs {
			break
		}
		gone = append(gone, k)
		delete(c.seen, k)
	}
	return gone
}

// encodeReplay stores an entry as 8 bytes of expiry (unix ns) and the topic.
func encodeReplay(e replayEntry) []byte {
	return append(binary.BigEndian.AppendUint64(nil, uint64(e.expires.UnixNano())), e.topic...)
}

func decodeReplay(v []byte) (replayEntry, bool) {
	if len(v) < 8 {
		return replayEntry{}, false
	}
	return replayEntry{expires: time.Unix(0, int64(binary.BigEndian.Uint64(v))), topic: string(v[8:])}, true
}

// restoreReplay loads the replay ids from the store, dropping expired ones.
func (b *Bridge) restoreReplay(now time.Time) (queue.Batch, error) {
	var batch queue.Batch
	err := b.store.ReplayKeys(func(k, v []byte) {
		e, ok := decodeReplay(v)
		route, _, _ := strings.Cut(string(k), "\x00")
		if !ok || !now.Before(e.expires) || b.routes.Load().byName[route] == nil {
			batch.Replay = append(batch.Replay, queue.KV{Key: append([]byte(nil), k...)})
			return
		}
		b.replay.load(string(k), e)
	})
	return batch, err
}

// pruneReplay forgets expired replay ids, in memory and in the store.
func (b *Bridge) pruneReplay(now time.Time) {
	gone := b.replay.prune(now)
	if len(gone) == 0 {
		return
	}
	batch := queue.Batch{}
	for _, k := range gone {
		batch.Replay = append(batch.Replay, queue.KV{Key: []byte(k)})
	}
	if err := b.store.Commit(&batch); err != nil {
		b.log.Warn("pruning inbound replay ids failed; will retry", "err", err)
	}
}
