// verify.go: how a Go receiver checks an edgehook webhook (Standard Webhooks).
// Run by bridge/webhook's snippet test: reads {"secret","headers","body"} on
// stdin and prints "valid" or "invalid".
package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// snippet start
// verify checks the webhook-* headers against the raw request body.
func verify(secret string, h http.Header, body []byte) bool {
	key := []byte(secret)
	if b64, ok := strings.CutPrefix(secret, "whsec_"); ok {
		key, _ = base64.StdEncoding.DecodeString(b64)
	}
	id, ts := h.Get("webhook-id"), h.Get("webhook-timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		return false // missing, malformed, stale or future timestamp
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, sig := range strings.Fields(h.Get("webhook-signature")) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return true
		}
	}
	return false
}

// snippet end

func main() {
	var in struct {
		Secret  string            `json:"secret"`
		Headers map[string]string `json:"headers"`
		Body    []byte            `json:"body"` // base64 in JSON
	}
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fmt.Println("bad input:", err)
		os.Exit(2)
	}
	h := http.Header{}
	for k, v := range in.Headers {
		h.Set(k, v)
	}
	if verify(in.Secret, h, in.Body) {
		fmt.Println("valid")
	} else {
		fmt.Println("invalid")
	}
}
