// Package mqtt wraps paho.mqtt.golang (MQTT 3.1.1) for edgehook: a persistent
// session, QoS 1 subscriptions renewed on every connect, manual acks so the
// broker keeps a message until edgehook has made its events durable, a
// retained online/offline status, and a context-aware Publish that returns
// only after the broker's PUBACK. This is the only file that imports paho.
package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// ErrNotConnected is returned by Publish while the broker is unreachable.
var ErrNotConnected = errors.New("mqtt: not connected to the broker")

// Options configure a Client.
type Options struct {
	Broker       string // tcp://host:port, ssl://, ws://, wss://
	ClientID     string
	Username     string
	Password     string
	CleanSession bool
	QoS          byte     // subscription QoS
	Filters      []string // subscribed on every connect
	StatusTopic  string   // retained "online"; "offline" as last will; "" for none
	TLS          *tls.Config
	KeepAlive    time.Duration
	Buffer       int // capacity of the Messages channel (default 1024)
	Logger       *slog.Logger
}

// Message is one received PUBLISH. Ack must be called once its effects are
// durable; a message that is never acked is redelivered by the broker after a
// reconnect (with Dup set). Ack is safe to call from any goroutine, at most
// once matters; after the connection it came on is gone it does nothing.
type Message struct {
	Topic    string
	Payload  []byte
	QoS      byte
	Dup      bool
	Retained bool
	PacketID uint16
	ack      func()
}

// Ack sends the PUBACK for the message (QoS 1).
func (m Message) Ack() {
	if m.ack != nil {
		m.ack()
	}
}

// Client is a long-lived MQTT connection. New does no I/O; Connect starts it.
// All methods are safe for concurrent use.
type Client struct {
	opts Options
	log  *slog.Logger
	c    paho.Client
	msgs chan Message
	stop chan struct{}

	connected  atomic.Bool
	reconnects atomic.Int64

	mu      sync.Mutex // guards filters and closed
	filters []string
	closed  bool
}

// New returns a Client for opts. It does not connect.
func New(o Options) *Client {
	if o.Buffer <= 0 {
		o.Buffer = 1024
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.KeepAlive <= 0 {
		o.KeepAlive = 30 * time.Second
	}
	cl := &Client{opts: o, log: o.Logger, msgs: make(chan Message, o.Buffer), stop: make(chan struct{}), filters: o.Filters}

	po := paho.NewClientOptions().
		AddBroker(o.Broker).
		SetClientID(o.ClientID).
		SetCleanSession(o.CleanSession).
		SetOrderMatters(true).    // one handler at a time, in arrival order
		SetAutoAckDisabled(true). // PUBACK only once the events are durable
		SetAutoReconnect(true).   // keep the one client; never recreate it
		SetConnectRetry(true).    // a broker down at start is waited for
		SetConnectRetryInterval(2 * time.Second).
		SetMaxReconnectInterval(10 * time.Second).
		SetKeepAlive(o.KeepAlive).
		SetPingTimeout(10 * time.Second).
		SetWriteTimeout(10 * time.Second).
		SetConnectTimeout(10 * time.Second).
		SetResumeSubs(false). // we subscribe in OnConnect, every time
		SetDefaultPublishHandler(cl.onMessage).
		SetOnConnectHandler(cl.onConnect).
		SetConnectionLostHandler(cl.onLost).
		SetReconnectingHandler(func(paho.Client, *paho.ClientOptions) {
			cl.log.Debug("mqtt reconnecting", "broker", o.Broker)
		})
	if o.Username != "" {
		po.SetUsername(o.Username)
	}
	if o.Password != "" {
		po.SetPassword(o.Password)
	}
	if o.TLS != nil {
		po.SetTLSConfig(o.TLS)
	}
	if o.StatusTopic != "" {
		po.SetBinaryWill(o.StatusTopic, []byte("offline"), 1, true)
	}
	po.SetStore(&noResendStore{Store: paho.NewMemoryStore()})
	cl.c = paho.NewClient(po)
	return cl
}

// Messages returns the channel of received messages, in arrival order. When it
// is full the MQTT client waits (back-pressure): nothing is dropped.
func (cl *Client) Messages() <-chan Message { return cl.msgs }

// Connect starts connecting in the background and returns at once. The client
// keeps retrying while the broker is down and reconnects whenever it goes away.
func (cl *Client) Connect() {
	cl.c.Connect() // with ConnectRetry the token completes only when connected; not waited for
}

// Connected reports whether the connection to the broker is up now and the
// subscriptions of the last connect were made.
func (cl *Client) Connected() bool { return cl.connected.Load() && cl.c.IsConnectionOpen() }

// Reconnects returns how many times the connection was lost.
func (cl *Client) Reconnects() int64 { return cl.reconnects.Load() }

// SetFilters replaces the subscription filters (after a reload): new ones are
// subscribed and removed ones unsubscribed now if connected, and all are
// subscribed again on every later connect.
func (cl *Client) SetFilters(ctx context.Context, filters []string) error {
	cl.mu.Lock()
	old := cl.filters
	cl.filters = filters
	cl.mu.Unlock()
	if !cl.Connected() {
		return nil
	}
	var gone []string
	keep := map[string]bool{}
	for _, f := range filters {
		keep[f] = true
	}
	for _, f := range old {
		if !keep[f] {
			gone = append(gone, f)
		}
	}
	if len(gone) > 0 {
		if err := wait(ctx, cl.c.Unsubscribe(gone...)); err != nil {
			return fmt.Errorf("mqtt unsubscribe: %w", err)
		}
	}
	return cl.subscribe(ctx, filters)
}

func (cl *Client) subscribe(ctx context.Context, filters []string) error {
	if len(filters) == 0 {
		return nil
	}
	m := make(map[string]byte, len(filters))
	for _, f := range filters {
		m[f] = cl.opts.QoS
	}
	tok := cl.c.SubscribeMultiple(m, nil) // nil: messages go to the default handler
	if err := wait(ctx, tok); err != nil {
		return fmt.Errorf("mqtt subscribe: %w", err)
	}
	st, ok := tok.(*paho.SubscribeToken)
	if !ok {
		return nil
	}
	var refused []string
	for f, code := range st.Result() {
		if code == 0x80 {
			refused = append(refused, f)
		}
	}
	if len(refused) > 0 {
		sort.Strings(refused)
		return fmt.Errorf("mqtt subscribe: broker refused %v (check its ACL)", refused)
	}
	return nil
}

// onConnect runs in its own goroutine (paho starts it) on every (re)connect.
func (cl *Client) onConnect(c paho.Client) {
	cl.mu.Lock()
	filters := cl.filters
	cl.mu.Unlock()
	cl.log.Info("mqtt connected", "broker", cl.opts.Broker, "client_id", cl.opts.ClientID, "filters", len(filters))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.subscribe(ctx, filters); err != nil {
		cl.log.Error("mqtt subscribe failed", "err", err)
	}
	// Connected means ready: the subscriptions are in place.
	cl.connected.Store(true)
	if cl.opts.StatusTopic != "" {
		// QoS 0: it is published again on every connect, and a QoS 1 publish
		// still unacknowledged when the link drops is resumed by paho in a
		// way that races with its writer (seen under -race in paho v1.5.1).
		if err := wait(ctx, c.Publish(cl.opts.StatusTopic, 0, true, []byte("online"))); err != nil {
			cl.log.Warn("mqtt status publish failed", "topic", cl.opts.StatusTopic, "err", err)
		}
	}
}

func (cl *Client) onLost(_ paho.Client, err error) {
	cl.connected.Store(false)
	cl.reconnects.Add(1)
	cl.log.Warn("mqtt connection lost; reconnecting", "broker", cl.opts.Broker, "err", err)
}

// onMessage is paho's handler. With OrderMatters it runs on paho's router
// goroutine, so it only hands the message over. It blocks while the channel is
// full (back-pressure) and gives up only when the client is closing (the
// message is then not acked, so the broker keeps it).
func (cl *Client) onMessage(_ paho.Client, m paho.Message) {
	msg := Message{Topic: m.Topic(), Payload: m.Payload(), QoS: m.Qos(), Dup: m.Duplicate(),
		Retained: m.Retained(), PacketID: m.MessageID(), ack: m.Ack}
	select {
	case cl.msgs <- msg:
	case <-cl.stop:
	}
}

// Publish sends one message and waits for the broker's acknowledgement (PUBACK
// for QoS 1) or ctx. It fails at once with ErrNotConnected while disconnected,
// so callers can answer "try later" instead of queueing blindly.
func (cl *Client) Publish(ctx context.Context, topic string, qos byte, retain bool, payload []byte) error {
	if !cl.Connected() {
		return ErrNotConnected
	}
	if err := wait(ctx, cl.c.Publish(topic, qos, retain, payload)); err != nil {
		return fmt.Errorf("mqtt publish: %w", err)
	}
	return nil
}

// Close publishes "offline" on the status topic (when connected), disconnects
// cleanly and stops handing out messages. Messages not yet acked stay with the
// broker. It waits at most about quiesce.
func (cl *Client) Close(quiesce time.Duration) {
	cl.mu.Lock()
	if cl.closed {
		cl.mu.Unlock()
		return
	}
	cl.closed = true
	cl.mu.Unlock()
	close(cl.stop)
	if cl.opts.StatusTopic != "" && cl.Connected() {
		ctx, cancel := context.WithTimeout(context.Background(), quiesce)
		_ = wait(ctx, cl.c.Publish(cl.opts.StatusTopic, 0, true, []byte("offline")))
		cancel()
	}
	cl.c.Disconnect(uint(quiesce / time.Millisecond))
	cl.connected.Store(false)
}

// noResendStore is paho's memory store minus our outgoing PUBLISH packets.
// paho resends those itself after a reconnect, which would publish a command
// edgehook had already answered 503 for (its sender retries), and its resume
// races with its own writer (paho v1.5.1, seen under -race). Whether to
// publish again is edgehook's decision: the HTTP sender retries inbound
// commands, and the outbox retries MQTT actions until a PUBACK.
type noResendStore struct {
	paho.Store
}

func (s *noResendStore) Put(key string, p packets.ControlPacket) {
	if _, pub := p.(*packets.PublishPacket); pub && strings.HasPrefix(key, "o.") {
		return
	}
	s.Store.Put(key, p)
}

func wait(ctx context.Context, t paho.Token) error {
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}
