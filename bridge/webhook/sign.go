// Package webhook signs, verifies and sends webhooks. sign.go is pure: the
// Standard Webhooks v1 scheme (HMAC-SHA256 over "id.timestamp.body", base64,
// several space-separated signatures for key rotation) and GitHub's
// X-Hub-Signature-256 (HMAC-SHA256 over the body, hex). Every MAC comparison
// uses hmac.Equal (constant time).
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Header names.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
	HeaderGitHub    = "X-Hub-Signature-256"
	HeaderToken     = "X-Edgehook-Token"
)

// Verification errors. Callers branch on them with errors.Is; all mean 401.
var (
	ErrMissingHeader = errors.New("missing signature header")
	ErrBadTimestamp  = errors.New("invalid timestamp")
	ErrTooOld        = errors.New("timestamp too old")
	ErrTooNew        = errors.New("timestamp too far in the future")
	ErrBadSignature  = errors.New("no valid signature")
)

// DecodeKey returns the HMAC key for a secret. Per the Standard Webhooks spec a
// secret "whsec_<base64>" is base64-decoded; any other secret is used as raw bytes.
func DecodeKey(secret string) ([]byte, error) {
	if secret == "" {
		return nil, errors.New("secret is empty")
	}
	b64, ok := strings.CutPrefix(secret, "whsec_")
	if !ok {
		return []byte(secret), nil
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, errors.New("whsec_ secret is not valid base64")
	}
	if len(key) == 0 {
		return nil, errors.New("whsec_ secret is empty")
	}
	return key, nil
}

// SplitSecrets returns the secrets in s, one per line (blank lines and
// surrounding spaces ignored). Several secrets let both sides rotate: a sender
// signs with all of them, a receiver accepts any of them.
func SplitSecrets(s string) []string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return out
}

// DecodeKeys decodes every secret of SplitSecrets(s) with DecodeKey.
func DecodeKeys(s string) ([][]byte, error) {
	var keys [][]byte
	for _, sec := range SplitSecrets(s) {
		k, err := DecodeKey(sec)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("secret is empty")
	}
	return keys, nil
}

// Sign returns the Standard Webhooks signature header value "v1,<base64>" for
// one message. The id and timestamp are signed with the body, so neither can be
// replayed with another.
func Sign(key []byte, id string, ts time.Time, body []byte) string {
	return "v1," + base64.StdEncoding.EncodeToString(mac(key, id, ts.Unix(), body))
}

func mac(key []byte, id string, ts int64, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	var buf [64]byte
	b := append(buf[:0], id...)
	b = append(b, '.')
	b = strconv.AppendInt(b, ts, 10)
	b = append(b, '.')
	m.Write(b)
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks Standard Webhooks headers against body. The timestamp must be
// within ±tolerance of now. Any "v1,<base64>" entry of the space-separated
// signature list that matches any of keys is accepted (so both sides can rotate
// secrets); other versions are ignored.
func Verify(keys [][]byte, id, timestamp, signature string, body []byte, now time.Time, tolerance time.Duration) error {
	if id == "" || timestamp == "" || signature == "" {
		return ErrMissingHeader
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return ErrBadTimestamp
	}
	t := time.Unix(ts, 0)
	switch {
	case now.Sub(t) > tolerance:
		return ErrTooOld
	case t.Sub(now) > tolerance:
		return ErrTooNew
	}
	want := make([][]byte, len(keys))
	for i, k := range keys {
		want[i] = mac(k, id, ts, body)
	}
	// A v1 signature is base64 of exactly 32 bytes: 44 characters with padding.
	encLen := base64.StdEncoding.EncodedLen(sha256.Size)
	var got [sha256.Size + 2]byte
	for _, sig := range strings.Fields(signature) {
		version, b64, ok := strings.Cut(sig, ",")
		if !ok || version != "v1" || len(b64) != encLen {
			continue
		}
		n, err := base64.StdEncoding.Strict().Decode(got[:], []byte(b64))
		if err != nil || n != sha256.Size {
			continue
		}
		for _, w := range want {
			if hmac.Equal(got[:n], w) {
				return nil
			}
		}
	}
	return ErrBadSignature
}

// SignGitHub returns the X-Hub-Signature-256 value "sha256=<hex>" for body.
func SignGitHub(secret []byte, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// VerifyGitHub checks an X-Hub-Signature-256 header against body with any of secrets.
func VerifyGitHub(secrets [][]byte, header string, body []byte) error {
	if header == "" {
		return ErrMissingHeader
	}
	h, ok := strings.CutPrefix(header, "sha256=")
	if !ok || len(h) != 2*sha256.Size {
		return ErrBadSignature
	}
	got, err := hex.DecodeString(h)
	if err != nil {
		return ErrBadSignature
	}
	for _, s := range secrets {
		m := hmac.New(sha256.New, s)
		m.Write(body)
		if hmac.Equal(got, m.Sum(nil)) {
			return nil
		}
	}
	return ErrBadSignature
}

// VerifyToken compares a shared token in constant time.
func VerifyToken(tokens []string, got string) error {
	if got == "" {
		return ErrMissingHeader
	}
	ok := false
	for _, t := range tokens {
		// hmac.Equal is constant time for equal lengths; hashing first hides the length too.
		a, b := sha256.Sum256([]byte(t)), sha256.Sum256([]byte(got))
		if hmac.Equal(a[:], b[:]) {
			ok = true
		}
	}
	if !ok {
		return ErrBadSignature
	}
	return nil
}

// Describe returns a short, secret-free reason for a verification error.
func Describe(err error) string {
	switch {
	case errors.Is(err, ErrMissingHeader):
		return "missing signature headers"
	case errors.Is(err, ErrBadTimestamp):
		return "invalid webhook-timestamp"
	case errors.Is(err, ErrTooOld):
		return "timestamp outside tolerance (too old)"
	case errors.Is(err, ErrTooNew):
		return "timestamp outside tolerance (in the future)"
	case errors.Is(err, ErrBadSignature):
		return "signature does not match"
	}
	return fmt.Sprintf("verification failed: %v", err)
}
