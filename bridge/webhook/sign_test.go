package webhook

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// The Standard Webhooks reference vector (standard-webhooks libraries/go/webhook_test.go).
const (
	specKey = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	specID  = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	specTS  = 1614265330
	specSig = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

var specBody = []byte(`{"test": 2432232314}`)

func TestSignSpecVector(t *testing.T) {
	key, err := DecodeKey(specKey)
	if err != nil {
		t.Fatal(err)
	}
	if got := Sign(key, specID, time.Unix(specTS, 0), specBody); got != specSig {
		t.Fatalf("Sign = %s, want %s", got, specSig)
	}
}

func TestDecodeKey(t *testing.T) {
	raw, err := DecodeKey("plain secret")
	if err != nil || string(raw) != "plain secret" {
		t.Fatalf("raw secret: %q %v", raw, err)
	}
	for _, bad := range []string{"", "whsec_", "whsec_!!!"} {
		if _, err := DecodeKey(bad); err == nil {
			t.Errorf("DecodeKey(%q) accepted", bad)
		}
	}
}

func TestVerify(t *testing.T) {
	key, _ := DecodeKey(specKey)
	other := []byte("another key")
	now := time.Unix(specTS, 0)
	tol := 5 * time.Minute
	ts := fmt.Sprint(specTS)
	tests := []struct {
		name        string
		keys        [][]byte
		id, ts, sig string
		body        string
		now         time.Time
		want        error
	}{
		{"valid", [][]byte{key}, specID, ts, specSig, string(specBody), now, nil},
		{"rotation: several signatures, one valid", [][]byte{key}, specID, ts, "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,abc " + specSig, string(specBody), now, nil},
		{"rotation: receiver holds old and new keys", [][]byte{other, key}, specID, ts, specSig, string(specBody), now, nil},
		{"wrong key", [][]byte{other}, specID, ts, specSig, string(specBody), now, ErrBadSignature},
		{"body altered by one byte", [][]byte{key}, specID, ts, specSig, `{"test": 2432232315}`, now, ErrBadSignature},
		{"body re-serialised", [][]byte{key}, specID, ts, specSig, `{"test":2432232314}`, now, ErrBadSignature},
		{"id altered", [][]byte{key}, specID + "x", ts, specSig, string(specBody), now, ErrBadSignature},
		{"missing id", [][]byte{key}, "", ts, specSig, string(specBody), now, ErrMissingHeader},
		{"missing timestamp", [][]byte{key}, specID, "", specSig, string(specBody), now, ErrMissingHeader},
		{"missing signature", [][]byte{key}, specID, ts, "", string(specBody), now, ErrMissingHeader},
		{"non-integer timestamp", [][]byte{key}, specID, "12.5", specSig, string(specBody), now, ErrBadTimestamp},
		{"stale", [][]byte{key}, specID, ts, specSig, string(specBody), now.Add(6 * time.Minute), ErrTooOld},
		{"future", [][]byte{key}, specID, ts, specSig, string(specBody), now.Add(-6 * time.Minute), ErrTooNew},
		{"at the edge of tolerance", [][]byte{key}, specID, ts, specSig, string(specBody), now.Add(5 * time.Minute), nil},
		{"v1 without comma", [][]byte{key}, specID, ts, "v1", string(specBody), now, ErrBadSignature},
		{"not base64", [][]byte{key}, specID, ts, "v1,%%%%", string(specBody), now, ErrBadSignature},
		{"truncated signature", [][]byte{key}, specID, ts, specSig[:20], string(specBody), now, ErrBadSignature},
		{"only v1a", [][]byte{key}, specID, ts, strings.Replace(specSig, "v1,", "v1a,", 1), string(specBody), now, ErrBadSignature},
	}
	for _, tt := range tests {
		err := Verify(tt.keys, tt.id, tt.ts, tt.sig, []byte(tt.body), tt.now, tol)
		if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("%s: Verify = %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestGitHub(t *testing.T) {
	secret := []byte("It's a Secret to Everybody")
	body := []byte("Hello, World!")
	// GitHub's documented example (docs.github.com, "Validating webhook deliveries").
	want := "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	if got := SignGitHub(secret, body); got != want {
		t.Fatalf("SignGitHub = %s, want %s", got, want)
	}
	if err := VerifyGitHub([][]byte{secret}, want, body); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "sha1=abc", "sha256=zz", want[:20], strings.ToUpper(want)} {
		if err := VerifyGitHub([][]byte{secret}, bad, body); err == nil {
			t.Errorf("VerifyGitHub(%q) accepted", bad)
		}
	}
	if err := VerifyGitHub([][]byte{secret}, want, []byte("Hello, World?")); err == nil {
		t.Error("altered body accepted")
	}
}

func TestVerifyToken(t *testing.T) {
	if err := VerifyToken([]string{"s3cret"}, "s3cret"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "s3cre", "s3cret ", "S3CRET"} {
		if err := VerifyToken([]string{"s3cret"}, bad); err == nil {
			t.Errorf("token %q accepted", bad)
		}
	}
}

// FuzzVerify: whatever the headers, Verify never panics and accepts only a
// signature computed with the key over exactly this id, timestamp and body.
func FuzzVerify(f *testing.F) {
	f.Add(specID, fmt.Sprint(specTS), specSig, specBody)
	f.Add("id", "0", "v1,", []byte(""))
	f.Add("a.b", "-1", "v1,AAAA v1,", []byte("{}"))
	key, _ := DecodeKey(specKey)
	now := time.Unix(specTS, 0)
	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte) {
		err := Verify([][]byte{key}, id, ts, sig, body, now, 5*time.Minute)
		if err != nil {
			return
		}
		var sec int64
		if _, e := fmt.Sscan(ts, &sec); e != nil {
			t.Fatalf("accepted unparsable timestamp %q", ts)
		}
		want := Sign(key, id, time.Unix(sec, 0), body)
		if !slices.Contains(strings.Fields(sig), want) {
			t.Fatalf("accepted %q for id=%q ts=%q body=%q; the valid signature is %q", sig, id, ts, body, want)
		}
	})
}
