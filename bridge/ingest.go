package bridge

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/edgehook/edgehook/bridge/mqtt"
	"github.com/edgehook/edgehook/bridge/queue"
	"github.com/edgehook/edgehook/rules"
)

const (
	// maxBatch bounds how many messages share one commit.
	maxBatch = 1024
	// markWindow is how many messages back a redelivery mark stays valid. A
	// broker redelivers only messages that were in flight (at most its
	// inflight window), so an older mark for a reused packet id is stale.
	markWindow = 32768
)

// staleGrace is how long after (re)connecting stale timers wait for the
// messages the broker kept for us.
const staleGrace = 2 * time.Second

var farFuture = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// markTable holds, per MQTT packet id, the last message committed under it:
// a hash of its topic and payload and the message counter at that time (0:
// none). A flat array: 1 MiB, no pointers for the garbage collector.
type markTable [1 << 16]markSlot

type markSlot struct {
	hash uint64
	n    uint64
}

// batch is what one commit makes durable, and what happens after it.
type batch struct {
	q    queue.Batch
	acks []mqtt.Message // acked in arrival order once q is committed
	jobs []*queue.Job   // handed to the deliverers once q is committed
}

// ingest is the only owner of the rules engine. It takes MQTT messages in
// arrival order, evaluates them, and commits the resulting jobs and rule
// states together with the redelivery marks, many messages per commit (group
// commit). Only then are the messages acked (PUBACK) and the jobs handed to the
// deliverers: a message is never acked before its events are durable. Timers
// (`for`) fire here too, without any message. It returns when ctx ends; a batch
// not yet committed then stays unacked, and the broker redelivers it. Acks
// go out through acker, in arrival order; ingest returns after they are sent.
func (b *Bridge) ingest(ctx context.Context) {
	acks := make(chan []mqtt.Message, 64)
	ackerDone := make(chan struct{})
	go func() { defer close(ackerDone); acker(acks) }()
	defer func() {
		close(acks)
		<-ackerDone
	}()
	msgs := b.mq.Messages()
	connected := false
	b.engine.HoldStale(farFuture) // not connected yet
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	poll := time.NewTicker(time.Second)
	defer poll.Stop()
	for {
		b.heartbeat.Store(time.Now().UnixNano())
		// Silence means nothing while we are not connected, nor just after we
		// reconnect and the broker hands over what it kept: hold stale timers.
		if now := b.mq.Connected(); now != connected {
			connected = now
			if connected {
				b.engine.HoldStale(b.now().Add(staleGrace))
			} else {
				b.engine.HoldStale(farFuture)
			}
		}
		in := msgs
		if b.checkOutboxFull() {
			in = nil // back-pressure: the broker keeps the messages while the outbox is full
		}
		var wake <-chan time.Time
		if d, ok := b.engine.NextDeadline(); ok {
			timer.Reset(max(0, d.Sub(b.now())))
			wake = timer.C
		}
		var bt batch
		select {
		case <-ctx.Done():
			return
		case m := <-in:
			b.take(&bt, m)
		case <-wake:
			b.engine.Advance(b.now(), func(res rules.Result) { b.collect(&bt, res) })
		case <-poll.C:
			continue
		case req := <-b.swapReq:
			b.applySwap(ctx, req)
			continue
		case req := <-b.reviveReq:
			b.applyRevive(ctx, req)
			continue
		}
	drain:
		for len(bt.acks) < maxBatch && in != nil && !b.batchFull(&bt) {
			select {
			case m := <-in:
				b.take(&bt, m)
			default:
				break drain
			}
		}
		b.retired.takeInto(&bt.q)                   // deliveries ride along: no commit of their own
		var changed map[rules.SeriesKey]rules.State // for the status page
		b.engine.TakeDirty(func(k rules.SeriesKey, st *rules.State) {
			r := b.engine.Set().Rule(k.Rule)
			bt.q.States = append(bt.q.States, queue.KV{Key: []byte(k.Rule + "\x00" + k.Series), Value: rules.MarshalState(r, st)})
			if changed == nil {
				changed = map[rules.SeriesKey]rules.State{}
			}
			changed[k] = *st
		})
		if !b.commit(ctx, &bt.q) {
			return
		}
		b.view.update(changed)
		// Durable: deliveries may start, and the broker may forget the messages.
		for _, j := range bt.jobs {
			if d := b.deliverer(j.Target); d != nil {
				d.in <- j
			}
		}
		if len(bt.acks) > 0 {
			acks <- bt.acks
		}
	}
}

// acker sends PUBACKs, in the order the messages arrived, for batches ingest
// has committed. Each ack is a handoff to paho's goroutine; doing them here
// keeps ingest free for the next batch. It returns when acks is closed.
func acker(acks <-chan []mqtt.Message) {
	for batch := range acks {
		for _, m := range batch {
			m.Ack()
		}
	}
}

// commit makes q durable, retrying (with the acks held back) until it works or
// ctx ends. It reports whether q was committed.
func (b *Bridge) commit(ctx context.Context, q *queue.Batch) bool {
	for attempt := 1; ; attempt++ {
		start := time.Now()
		err := b.store.Commit(q)
		if err == nil {
			b.m.commits.Inc()
			b.m.commitTime.UpdateDuration(start)
			return true
		}
		b.m.commitErrs.Inc()
		if attempt == 1 || attempt%60 == 0 {
			b.log.Error("store commit failed; holding MQTT acks until it works", "err", err, "attempt", attempt)
		}
		// Waiting for the store on purpose is not being wedged: the
		// watchdog must not restart us for it.
		b.heartbeat.Store(time.Now().UnixNano())
		select {
		case <-ctx.Done():
			return false
		case <-time.After(min(time.Duration(attempt)*200*time.Millisecond, 5*time.Second)):
		}
	}
}

// take evaluates one message into bt.
func (b *Bridge) take(bt *batch, m mqtt.Message) {
	b.m.received.Inc()
	bt.acks = append(bt.acks, m)
	if m.Retained {
		// A retained message replayed at (re)subscription is an old reading, not
		// news: evaluating it again would re-forward it or revive a stale sensor.
		b.m.retained.Inc()
		return
	}
	if int64(len(m.Payload)) > int64(b.cfg.MQTT.MaxPayload) {
		b.m.rejected[rules.TooLarge].Inc()
		b.log.Debug("payload too large", "topic", m.Topic, "bytes", len(m.Payload))
		return
	}
	if m.QoS > 0 {
		h := hashMessage(m.Topic, m.Payload)
		if mk := b.marks[m.PacketID]; mk.n != 0 && m.Dup && mk.hash == h && b.markN-mk.n < markWindow {
			// The broker redelivers a message whose events are already durable
			// (we crashed, or the connection died, before its PUBACK). Its events
			// keep their webhook-ids; do not mint new ones.
			b.m.redelivered.Inc()
			return
		}
		b.markN++
		b.marks[m.PacketID] = markSlot{hash: h, n: b.markN}
		bt.q.Marks = append(bt.q.Marks, queue.Mark{PacketID: m.PacketID, Hash: h, N: b.markN})
		bt.q.MarkN = b.markN
	}
	now := b.now()
	// Fire due timers first, so every result Feed reports belongs to this message.
	b.engine.Advance(now, func(res rules.Result) { b.collect(bt, res) })
	accepted := false
	reject := rules.OK
	b.engine.Feed(m.Topic, m.Payload, now, func(res rules.Result) {
		if res.Reject != rules.OK {
			b.m.forRule(res.Rule.Name).rejected[res.Reject].Inc()
			if reject == rules.OK {
				reject = res.Reject
			}
			return
		}
		accepted = true
		b.collect(bt, res)
	})
	if !accepted && reject != rules.OK {
		b.m.rejected[reject].Inc()
		b.log.Debug("payload rejected", "topic", m.Topic, "reason", reject.String())
	}
}

// collect turns an evaluation result into jobs: one webhook per endpoint of
// the rule, and one MQTT publish per [[rule.publish]] action. A body or topic
// template that fails to render makes that job a dead letter, with the reason.
func (b *Bridge) collect(bt *batch, res rules.Result) {
	b.collectWith(bt, res, b.store.NextSeq, newID)
}

// collectWith is collect with the sequence and id sources given (PreviewJobs
// renders without a store).
func (b *Bridge) collectWith(bt *batch, res rules.Result, nextSeq func() uint64, mkID func(time.Time) string) {
	rm := b.m.forRule(res.Rule.Name)
	rm.evaluated.Inc()
	if res.Outcome.Event == rules.None {
		return
	}
	typ := res.Outcome.Event.String()
	b.view.event(res.Rule.Name, res.Series, typ, res.Outcome.At)
	if res.Outcome.Event == rules.Fired {
		rm.fired.Inc()
	} else {
		rm.resolved.Inc()
	}
	b.log.Debug("rule decided", "rule", res.Rule.Name, "series", res.Series, "event", typ, "why", res.Outcome.Why.String())
	r := res.Rule
	var data *rules.EventData // built once, for templates
	eventData := func(id string) *rules.EventData {
		if data == nil {
			data = templateData(res, typ)
		}
		d := *data
		d.ID = id
		return &d
	}
	for _, ep := range r.Endpoints {
		id := mkID(b.now())
		j := &queue.Job{Seq: nextSeq(), Target: ep, ID: id, Series: res.Series, Rule: r.Name, Type: typ, Created: res.Outcome.At}
		if r.Body == nil {
			j.Body = envelope(&event{ID: id, Type: typ, Rule: r, Series: res.Series, Topic: res.Topic,
				At: res.Outcome.At, Value: res.Value, HasValue: res.HasValue, Payload: res.Payload})
		} else if body, err := r.Body.Render(eventData(id)); err != nil {
			b.deadOnArrival(bt, j, "body template failed: "+err.Error())
			continue
		} else if !json.Valid(body) {
			j.Body = body
			b.deadOnArrival(bt, j, "body template did not produce valid JSON")
			continue
		} else {
			j.Body = body
		}
		bt.q.Put = append(bt.q.Put, j)
		bt.jobs = append(bt.jobs, j)
	}
	for _, a := range r.Publish {
		tpl := a.Payload
		if res.Outcome.Event == rules.Resolved {
			if tpl = a.ResolvedPayload; tpl == nil {
				continue // no resolved_payload: nothing to publish on resolve
			}
		}
		j := &queue.Job{Seq: nextSeq(), Target: queue.PublishTarget, ID: mkID(b.now()), Series: res.Series,
			Rule: r.Name, Type: typ, Created: res.Outcome.At, QoS: a.QoS, Retain: a.Retain}
		d := eventData("")
		topic, err := a.Topic.Render(d)
		switch {
		case err != nil:
			b.deadOnArrival(bt, j, "publish topic template failed: "+err.Error())
			continue
		case rules.CheckPublishTopic(string(topic), false) != nil:
			j.Topic = string(topic)
			b.deadOnArrival(bt, j, fmt.Sprintf("publish topic %q: %v", clipTopic(string(topic)), rules.CheckPublishTopic(string(topic), false)))
			continue
		}
		j.Topic = string(topic)
		if tpl == nil {
			j.Body = res.Payload
		} else if j.Body, err = tpl.Render(d); err != nil {
			b.deadOnArrival(bt, j, "publish payload template failed: "+err.Error())
			continue
		}
		bt.q.Put = append(bt.q.Put, j)
		bt.jobs = append(bt.jobs, j)
	}
}

// deadOnArrival records a job that can never be delivered as a dead letter.
func (b *Bridge) deadOnArrival(bt *batch, j *queue.Job, reason string) {
	j.Reason, j.DeadAt, j.Undeliverable = reason, b.now(), true
	bt.q.Dead = append(bt.q.Dead, j)
	b.log.Warn("event dead-lettered", "rule", j.Rule, "endpoint", j.Target, "reason", reason)
	if d := b.deliverer(j.Target); d != nil {
		d.m.dead.Inc()
	}
}

// templateData is what body and publish templates see.
func templateData(res rules.Result, typ string) *rules.EventData {
	d := &rules.EventData{Type: typ, Rule: res.Rule.Name, Condition: res.Rule.Cond.String(), Topic: res.Topic,
		Series: res.Series, At: res.Outcome.At}
	if res.HasValue {
		d.Value = res.Value
	}
	switch res.Rule.Cond {
	case rules.Below, rules.Above, rules.Drop, rules.Rise:
		d.Threshold = res.Rule.Threshold
	}
	var parsed any
	if json.Unmarshal(res.Payload, &parsed) == nil {
		d.Payload = parsed
	} else {
		d.Payload = string(res.Payload)
	}
	return d
}

// checkOutboxFull reports whether the outbox has reached store.max_bytes, and
// logs when that changes.
func (b *Bridge) checkOutboxFull() bool {
	_, bytes := b.store.Pending()
	full := bytes >= int64(b.cfg.Store.MaxBytes)
	if full != b.outboxFull.Load() {
		b.outboxFull.Store(full)
		if full {
			b.log.Warn("outbox is full (store.max_bytes): not taking MQTT messages until deliveries free space; the broker keeps them", "bytes", bytes)
		} else {
			b.log.Info("outbox has space again: taking MQTT messages")
		}
	}
	return full
}

// batchFull reports whether the outbox plus the batch being built has reached
// store.max_bytes (the batch stops growing; the next loop pauses intake).
func (b *Bridge) batchFull(bt *batch) bool {
	_, pending := b.store.Pending()
	for _, j := range bt.q.Put {
		pending += int64(len(j.Body))
	}
	return pending >= int64(b.cfg.Store.MaxBytes)
}

// hashMessage is FNV-1a over topic, a 0 byte and payload.
func hashMessage(topic string, payload []byte) uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	for i := 0; i < len(topic); i++ {
		h ^= uint64(topic[i])
		h *= prime
	}
	h *= prime // the 0 separator
	for _, c := range payload {
		h ^= uint64(c)
		h *= prime
	}
	return h
}

// Preview is one job a result would create, for `edgehook test-rule -v`.
type Preview struct {
	Target string // endpoint name, or "@mqtt"
	Topic  string // MQTT actions
	Body   []byte
	Err    string // why it would be a dead letter
}

// PreviewJobs renders what res would send, exactly as the daemon would
// (envelope or body template, MQTT actions), without a store.
func PreviewJobs(res rules.Result, id string) []Preview {
	b := &Bridge{now: time.Now, log: slog.New(slog.DiscardHandler), m: newMetricSet(), view: newRuleView(nil)}
	b.delivs.Store(&map[string]*deliverer{})
	var out []Preview
	var bt batch
	b.collectWith(&bt, res, func() uint64 { return 0 }, func(time.Time) string { return id })
	for _, j := range bt.q.Put {
		out = append(out, Preview{Target: j.Target, Topic: j.Topic, Body: j.Body})
	}
	for _, j := range bt.q.Dead {
		out = append(out, Preview{Target: j.Target, Topic: j.Topic, Body: j.Body, Err: j.Reason})
	}
	return out
}
