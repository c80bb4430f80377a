package bridge

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/edgehook/edgehook/rules"
)

// newID returns an event id: "evt_" and 26 characters of Crockford base32 over
// a 48-bit millisecond time and 80 random bits (a ULID), so ids sort by time.
// It contains no '.', as Standard Webhooks requires.
func newID(now time.Time) string {
	const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
	var raw [16]byte
	binary.BigEndian.PutUint64(raw[:8], uint64(now.UnixMilli())<<16)
	_, _ = rand.Read(raw[6:]) // crypto/rand.Read never fails (Go 1.24+)
	var out [4 + 26]byte
	copy(out[:], "evt_")
	// 128 bits as 26 base32 digits (the first digit carries 3 bits).
	hi, lo := binary.BigEndian.Uint64(raw[:8]), binary.BigEndian.Uint64(raw[8:])
	for i := 25; i >= 0; i-- {
		out[4+i] = alphabet[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}

// event is what an envelope describes.
type event struct {
	ID       string
	Type     string // rule.fired | rule.resolved
	Rule     *rules.Rule
	Series   string
	Topic    string
	At       time.Time
	Value    float64
	HasValue bool
	Payload  []byte
}

// envelope renders the default webhook body of PRODUCT.md §4:
//
//	{"type","id","rule","series","topic","condition","threshold","value","at","payload"}
//
// threshold and value are null when they do not apply; payload is the MQTT
// payload as JSON when it parses, else as a string.
func envelope(e *event) []byte {
	b := make([]byte, 0, 256+len(e.Payload))
	b = append(b, `{"type":`...)
	b = appendString(b, e.Type)
	b = append(b, `,"id":`...)
	b = appendString(b, e.ID)
	b = append(b, `,"rule":`...)
	b = appendString(b, e.Rule.Name)
	b = append(b, `,"series":`...)
	b = appendString(b, e.Series)
	b = append(b, `,"topic":`...)
	b = appendString(b, e.Topic)
	b = append(b, `,"condition":`...)
	b = appendString(b, e.Rule.Cond.String())
	b = append(b, `,"threshold":`...)
	switch e.Rule.Cond {
	case rules.Below, rules.Above, rules.Drop, rules.Rise:
		b = appendFloat(b, e.Rule.Threshold)
	default:
		b = append(b, "null"...)
	}
	b = append(b, `,"value":`...)
	if e.HasValue {
		b = appendFloat(b, e.Value)
	} else {
		b = append(b, "null"...)
	}
	b = append(b, `,"at":`...)
	b = appendString(b, formatTime(e.At))
	b = append(b, `,"payload":`...)
	b = appendPayload(b, e.Payload)
	return append(b, '}')
}

// formatTime is RFC 3339 in UTC with milliseconds: 2026-11-25T07:00:00.123Z.
func formatTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// appendPayload embeds a payload as JSON when it is valid JSON, else as a string.
func appendPayload(b, p []byte) []byte {
	if t := bytes.TrimSpace(p); len(t) > 0 && utf8.Valid(t) && json.Valid(t) {
		return append(b, t...)
	}
	return appendString(b, string(p))
}

// appendFloat formats like encoding/json (shortest form; exponent outside 1e-6..1e21).
func appendFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, "null"...)
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	return strconv.AppendFloat(b, f, format, -1, 64)
}

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD, as
// encoding/json does; <, > and & are left alone (the body is not HTML).
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&15])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
