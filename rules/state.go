package rules

import (
	"encoding/binary"
	"errors"
	"math"
	"time"
)

// stateVersion is the first byte of an encoded State.
const stateVersion = 2

// MarshalState encodes st for persistence, tagged with the rule's definition hash
// so that a changed rule starts from a fresh state. The last payload is kept only
// while a timer is pending (a timer firing reports it); otherwise it is dropped
// to keep writes small.
func MarshalState(r *Rule, st *State) []byte {
	var flags byte
	for i, b := range []bool{st.Seen, st.Active, st.Fired, st.Held, st.HasLast} {
		if b {
			flags |= 1 << i
		}
	}
	payload := st.LastPayload
	if r.Deadline(st).IsZero() {
		payload = nil
	}
	b := make([]byte, 0, 64+len(st.LastTopic)+len(payload))
	b = append(b, stateVersion, flags)
	b = binary.BigEndian.AppendUint64(b, r.Hash)
	for _, t := range []time.Time{st.Since, st.LastFired, st.LastAt} {
		b = binary.AppendVarint(b, unixNano(t))
	}
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(st.Last))
	b = binary.AppendUvarint(b, uint64(len(st.LastTopic)))
	b = append(b, st.LastTopic...)
	b = binary.AppendUvarint(b, uint64(len(payload)))
	b = append(b, payload...)
	b = binary.AppendUvarint(b, uint64(len(st.Window)))
	for _, s := range st.Window {
		b = binary.AppendVarint(b, unixNano(s.At))
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(s.V))
	}
	return b
}

// UnmarshalState decodes a State written by MarshalState and returns it with
// the rule hash it was written for.
func UnmarshalState(b []byte) (State, uint64, error) {
	var st State
	bad := errors.New("rules: corrupt state record")
	if len(b) < 10 || b[0] != stateVersion {
		return st, 0, bad
	}
	flags := b[1]
	st.Seen, st.Active, st.Fired, st.Held, st.HasLast = flags&1 != 0, flags&2 != 0, flags&4 != 0, flags&8 != 0, flags&16 != 0
	hash := binary.BigEndian.Uint64(b[2:10])
	b = b[10:]
	for _, t := range []*time.Time{&st.Since, &st.LastFired, &st.LastAt} {
		v, n := binary.Varint(b)
		if n <= 0 {
			return st, 0, bad
		}
		*t = fromUnixNano(v)
		b = b[n:]
	}
	if len(b) < 8 {
		return st, 0, bad
	}
	st.Last = math.Float64frombits(binary.BigEndian.Uint64(b))
	b = b[8:]
	for _, dst := range []*[]byte{nil, &st.LastPayload} {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return st, 0, bad
		}
		v := b[k : k+int(n)]
		b = b[k+int(n):]
		if dst == nil {
			st.LastTopic = string(v)
		} else if n > 0 {
			*dst = append([]byte(nil), v...)
		}
	}
	n, k := binary.Uvarint(b)
	if k <= 0 || n > windowCap {
		return st, 0, bad
	}
	b = b[k:]
	for i := uint64(0); i < n; i++ {
		at, k := binary.Varint(b)
		if k <= 0 || len(b)-k < 8 {
			return st, 0, bad
		}
		v := math.Float64frombits(binary.BigEndian.Uint64(b[k:]))
		st.Window = append(st.Window, Sample{At: fromUnixNano(at), V: v})
		b = b[k+8:]
	}
	return st, hash, nil
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
