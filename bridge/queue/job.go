package queue

import (
	"encoding/binary"
	"errors"
	"time"
)

// Job is one unit of delivery: a webhook to an endpoint, or an MQTT publish
// action. Jobs of one Target and Series are delivered in Seq order.
type Job struct {
	Seq      uint64    // outbox key, from NextSeq
	Target   string    // endpoint name, or PublishTarget for MQTT actions
	ID       string    // webhook-id: the same on every attempt and across restarts
	Series   string    // ordering key within the target
	Rule     string    // the rule that produced it (for people)
	Type     string    // "rule.fired" or "rule.resolved"
	Created  time.Time // when the event happened
	Attempts int       // failed attempts so far
	Body     []byte    // webhook body, or MQTT payload
	Topic    string    // MQTT actions: topic
	QoS      byte      // MQTT actions
	Retain   bool      // MQTT actions

	// Set on dead letters.
	Reason string    // why it was dead-lettered
	Status int       // last HTTP status, 0 if none
	DeadAt time.Time // when it was dead-lettered

	// Revived is when a person last re-queued this dead letter; max_age
	// counts from it (else from Created). Zero if never.
	Revived time.Time
	// Undeliverable marks a dead letter that never had a valid body or
	// topic (its template failed): retrying it cannot help.
	Undeliverable bool
}

// Age is how long j has been waiting for delivery at now: since it was
// created, or since it was last revived.
func (j *Job) Age(now time.Time) time.Duration {
	if j.Revived.After(j.Created) {
		return now.Sub(j.Revived)
	}
	return now.Sub(j.Created)
}

// PublishTarget is the Target of MQTT publish actions.
const PublishTarget = "@mqtt"

// Record versions: 2 adds Revived after DeadAt. Jobs never revived are
// written as version 1, which older releases read.
const (
	jobVersion  = 1
	jobVersion2 = 2
)

var errCorrupt = errors.New("corrupt job record")

// encode writes a compact, versioned binary record (Seq is the key).
func (j *Job) encode() []byte {
	b := make([]byte, 0, 64+len(j.Target)+len(j.ID)+len(j.Series)+len(j.Rule)+len(j.Body)+len(j.Topic)+len(j.Reason))
	version := byte(jobVersion)
	if !j.Revived.IsZero() {
		version = jobVersion2
	}
	b = append(b, version)
	for _, s := range []string{j.Target, j.ID, j.Series, j.Rule, j.Type, j.Topic, j.Reason} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendVarint(b, unixNano(j.Created))
	b = binary.AppendVarint(b, unixNano(j.DeadAt))
	if version == jobVersion2 {
		b = binary.AppendVarint(b, unixNano(j.Revived))
	}
	b = binary.AppendUvarint(b, uint64(j.Attempts))
	b = binary.AppendUvarint(b, uint64(j.Status))
	flags := j.QoS & 3
	if j.Retain {
		flags |= 4
	}
	if j.Undeliverable {
		flags |= 8 // older releases ignore this bit
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(len(j.Body)))
	return append(b, j.Body...)
}

func decodeJob(b []byte) (*Job, error) {
	if len(b) == 0 || (b[0] != jobVersion && b[0] != jobVersion2) {
		return nil, errCorrupt
	}
	version := b[0]
	b = b[1:]
	j := &Job{}
	for _, dst := range []*string{&j.Target, &j.ID, &j.Series, &j.Rule, &j.Type, &j.Topic, &j.Reason} {
		s, rest, ok := readString(b)
		if !ok {
			return nil, errCorrupt
		}
		*dst, b = s, rest
	}
	times := []*time.Time{&j.Created, &j.DeadAt}
	if version == jobVersion2 {
		times = append(times, &j.Revived)
	}
	for _, dst := range times {
		v, k := binary.Varint(b)
		if k <= 0 {
			return nil, errCorrupt
		}
		*dst = fromUnixNano(v)
		b = b[k:]
	}
	for _, dst := range []*int{&j.Attempts, &j.Status} {
		v, k := binary.Uvarint(b)
		if k <= 0 || v > 1<<31 {
			return nil, errCorrupt
		}
		*dst = int(v)
		b = b[k:]
	}
	if len(b) < 1 {
		return nil, errCorrupt
	}
	j.QoS, j.Retain, j.Undeliverable = b[0]&3, b[0]&4 != 0, b[0]&8 != 0
	b = b[1:]
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) != n {
		return nil, errCorrupt
	}
	j.Body = append([]byte(nil), b[k:]...)
	return j, nil
}

// jobTarget reads only the target of an encoded job.
func jobTarget(b []byte) (string, bool) {
	if len(b) == 0 || (b[0] != jobVersion && b[0] != jobVersion2) {
		return "", false
	}
	t, _, ok := readString(b[1:])
	return t, ok
}

// readString reads a length-prefixed string and returns the rest of b.
func readString(b []byte) (s string, rest []byte, ok bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return "", nil, false
	}
	return string(b[k : k+int(n)]), b[k+int(n):], true
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
