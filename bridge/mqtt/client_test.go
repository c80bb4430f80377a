package mqtt

import (
	"context"
	"errors"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgehook/edgehook/bridge/mosquittotest"
)

// pub returns a connected plain paho client for publishing and observing.
func pub(t *testing.T, url, id string) paho.Client {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker(url).SetClientID(id).SetCleanSession(true))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("test client connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

func publish(t *testing.T, c paho.Client, topic, payload string, retain bool) {
	t.Helper()
	if tok := c.Publish(topic, 1, retain, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
}

func recv(t *testing.T, cl *Client, within time.Duration) Message {
	t.Helper()
	select {
	case m := <-cl.Messages():
		return m
	case <-time.After(within):
		t.Fatal("no message received")
	}
	return Message{}
}

func waitConnected(t *testing.T, cl *Client) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cl.Connected() {
		if time.Now().After(deadline) {
			t.Fatal("client did not connect")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func newClient(t *testing.T, url string, filters ...string) *Client {
	t.Helper()
	cl := New(Options{Broker: url, ClientID: "edgehook-test-" + t.Name(), QoS: 1, Filters: filters, StatusTopic: "edgehook/status/" + t.Name()})
	cl.Connect()
	t.Cleanup(func() { cl.Close(200 * time.Millisecond) })
	return cl
}

// An unacked message is redelivered after a broker restart, with Dup set and
// the same packet id; acking the stale copy afterwards neither blocks nor panics.
// The ingest path relies on exactly this.
func TestUnackedMessageIsRedelivered(t *testing.T) {
	b := mosquittotest.Start(t)
	cl := newClient(t, b.URL(), "sensors/#")
	waitConnected(t, cl)
	time.Sleep(200 * time.Millisecond) // let the subscription land
	p := pub(t, b.URL(), "pub1")
	publish(t, p, "sensors/a", "17.5", false)
	first := recv(t, cl, 10*time.Second)
	if first.Topic != "sensors/a" || string(first.Payload) != "17.5" || first.Dup {
		t.Fatalf("first delivery: %+v", first)
	}
	b.Restart() // sessions persist (persistence true, graceful stop)
	second := recv(t, cl, 30*time.Second)
	if !second.Dup || second.PacketID != first.PacketID || string(second.Payload) != "17.5" {
		t.Fatalf("redelivery: %+v (first id %d)", second, first.PacketID)
	}
	done := make(chan struct{})
	go func() { first.Ack(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Ack of a message from a dead connection blocked")
	}
	second.Ack()
	// A round trip on the same connection after the PUBACK: the broker handles
	// a connection's packets in order, so once it acks this publish it has
	// read the PUBACK too. (Straight through paho: cl.Publish may still say
	// "not connected" while the client resubscribes.)
	publish(t, cl.c, "sync/"+t.Name(), "sync", false)
	// Once acked, it is not delivered again.
	b.Restart()
	waitConnected(t, cl)
	select {
	case m := <-cl.Messages():
		t.Fatalf("acked message delivered again: %+v", m)
	case <-time.After(2 * time.Second):
	}
}

// A broker that is down when the client starts is waited for.
func TestBrokerDownAtStart(t *testing.T) {
	b := mosquittotest.Start(t)
	b.Stop()
	cl := newClient(t, b.URL(), "late/#")
	time.Sleep(1500 * time.Millisecond)
	if cl.Connected() {
		t.Fatal("connected to a stopped broker")
	}
	if err := cl.Publish(context.Background(), "x", 1, false, []byte("1")); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("publish while down: %v", err)
	}
	b.Restart()
	waitConnected(t, cl)
	time.Sleep(200 * time.Millisecond)
	publish(t, pub(t, b.URL(), "pub2"), "late/x", "1", false)
	m := recv(t, cl, 10*time.Second)
	m.Ack()
}

// The status topic carries a retained "online" while connected, and
// "offline" after an abrupt loss (the will) or a clean close (published by us).
func TestStatusTopic(t *testing.T) {
	b := mosquittotest.Start(t)
	proxy := mosquittotest.NewProxy(t, b.Addr())
	topic := "edgehook/status/" + t.Name()
	seen := make(chan string, 16)
	obs := pub(t, b.URL(), "observer")
	obs.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) { seen <- string(m.Payload()) })
	next := func() string {
		select {
		case s := <-seen:
			return s
		case <-time.After(15 * time.Second):
			return "(nothing)"
		}
	}
	// await skips other values until want arrives.
	await := func(want string) {
		t.Helper()
		for {
			switch s := next(); s {
			case want:
				return
			case "(nothing)":
				t.Fatalf("status %q never came", want)
			}
		}
	}
	cl := newClient(t, proxy.URL())
	if s := next(); s != "online" {
		t.Fatalf("status after connect: %q", s)
	}
	proxy.CutAll() // the broker sees the connection die and publishes the will
	await("offline")
	await("online") // and it comes back by itself
	cl.Close(time.Second)
	await("offline")
}
