package bridge

import (
	"math"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// peerLimiter is a token bucket per peer address with bounded memory. It keeps
// two generations of at most max peers each: when the current one is full it
// becomes the previous one and the old previous one is dropped; a peer found in
// the previous generation moves back to the current one. So at most 2*max
// peers are tracked, however many addresses an attacker rotates through.
// Safe for concurrent use.
type peerLimiter struct {
	limit rate.Limit
	burst int
	max   int

	mu        sync.Mutex // guards the maps
	cur, prev map[netip.Addr]*rate.Limiter
}

func newPeerLimiter(perSecond float64, burst, max int) *peerLimiter {
	return &peerLimiter{limit: rate.Limit(perSecond), burst: burst, max: max,
		cur: map[netip.Addr]*rate.Limiter{}, prev: map[netip.Addr]*rate.Limiter{}}
}

// allow takes a token for peer at now. When none is left it reports how long
// until one will be (for Retry-After).
func (p *peerLimiter) allow(peer netip.Addr, now time.Time) (bool, time.Duration) {
	p.mu.Lock()
	lim, ok := p.cur[peer]
	if !ok {
		if lim, ok = p.prev[peer]; ok {
			delete(p.prev, peer)
		} else {
			lim = rate.NewLimiter(p.limit, p.burst)
		}
		if len(p.cur) >= p.max {
			p.prev, p.cur = p.cur, make(map[netip.Addr]*rate.Limiter, p.max)
		}
		p.cur[peer] = lim
	}
	p.mu.Unlock()
	r := lim.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Second
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// tracked returns how many peers are remembered (for tests).
func (p *peerLimiter) tracked() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.cur) + len(p.prev)
}

// retryAfterSeconds rounds a delay up to whole seconds, at least 1.
func retryAfterSeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
