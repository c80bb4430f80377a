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
}

// PublishTarget is the Target of MQTT publish actions.
const PublishTarget = "@mqtt"

const jobVersion = 1

var errCorrupt = errors.New("corrupt job record")

// encode writes a compact, versioned binary record (Seq is the key).
func (j *Job) encode() []byte {
	b := make([]byte, 0, 64+len(j.Target)+len(j.ID)+len(j.Series)+len(j.Rule)+len(j.Body)+len(j.Topic)+len(j.Reason))
	b = append(b, jobVersion)
	for _, s := range []string{j.Target, j.ID, j.Series, j.Rule, j.Type, j.Topic, j.Reason} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendVarint(b, unixNano(j.Created))
	b = binary.AppendVarint(b, unixNano(j.DeadAt))
	b = binary.AppendUvarint(b, uint64(j.Attempts))
	b = binary.AppendUvarint(b, uint64(j.Status))
	flags := j.QoS & 3
	if j.Retain {
		flags |= 4
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(len(j.Body)))
	return append(b, j.Body...)
}

func decodeJob(b []byte) (*Job, error) {
	if len(b) == 0 || b[0] != jobVersion {
		return nil, errCorrupt
	}
	b = b[1:]
	j := &Job{}
	str := func() (string, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return "", false
		}
		s := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return s, true
	}
	for _, dst := range []*string{&j.Target, &j.ID, &j.Series, &j.Rule, &j.Type, &j.Topic, &j.Reason} {
		s, ok := str()
		if !ok {
			return nil, errCorrupt
		}
		*dst = s
	}
	for _, dst := range []*time.Time{&j.Created, &j.DeadAt} {
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
	j.QoS, j.Retain = b[0]&3, b[0]&4 != 0
	b = b[1:]
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) != n {
		return nil, errCorrupt
	}
	j.Body = append([]byte(nil), b[k:]...)
	return j, nil
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
