package mosquittotest

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy is a TCP proxy between a client and a broker that a test can break on
// purpose (the pattern of Paho's interop "restart proxy"): drop what the
// client sends (so its PUBACKs never arrive), or cut every connection.
type Proxy struct {
	l        net.Listener
	upstream string
	dropUp   atomic.Bool // discard client → broker bytes

	mu    sync.Mutex // guards conns
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// NewProxy listens on a free loopback port and forwards to upstream. It is
// closed when the test ends.
func NewProxy(t testing.TB, upstream string) *Proxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{l: l, upstream: upstream, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// URL returns tcp://host:port of the proxy.
func (p *Proxy) URL() string { return "tcp://" + p.l.Addr().String() }

// DropClientBytes makes the proxy discard (true) or forward (false) what
// clients send to the broker. Broker → client traffic keeps flowing.
func (p *Proxy) DropClientBytes(drop bool) { p.dropUp.Store(drop) }

// CutAll closes every current connection (both sides see a reset/EOF).
func (p *Proxy) CutAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

// Close stops the proxy and closes its connections.
func (p *Proxy) Close() {
	p.l.Close()
	p.CutAll()
	p.wg.Wait()
}

func (p *Proxy) track(c net.Conn, add bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if add {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", p.upstream)
		if err != nil {
			c.Close()
			continue
		}
		p.track(c, true)
		p.track(u, true)
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			p.copy(u, c, &p.dropUp)
			u.Close()
			c.Close()
			p.track(c, false)
		}()
		go func() {
			defer p.wg.Done()
			p.copy(c, u, nil)
			u.Close()
			c.Close()
			p.track(u, false)
		}()
	}
}

func (p *Proxy) copy(dst io.Writer, src io.Reader, drop *atomic.Bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && (drop == nil || !drop.Load()) {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
