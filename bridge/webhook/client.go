package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Signing schemes.
const (
	SchemeStandard = "standard-webhooks"
	SchemeGitHub   = "github"
	SchemeNone     = "none"
)

// Delivery is one attempt to send one event.
type Delivery struct {
	URL     string
	Method  string
	Headers map[string]string // extra headers from the config
	Scheme  string            // SchemeStandard, SchemeGitHub or SchemeNone
	Keys    [][]byte          // HMAC keys (decoded); Standard Webhooks signs with each (rotation)
	ID      string            // webhook-id: the same on every attempt
	Body    []byte
	Timeout time.Duration // bounds the whole attempt, body included
}

// StatusError is a non-2xx answer.
type StatusError struct {
	Code       int
	RetryAfter time.Duration // from Retry-After, 0 if absent
	Location   string        // for redirects
	Snippet    string        // start of the response body, for people
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("receiver answered %d %s", e.Code, http.StatusText(e.Code))
	if e.Code >= 300 && e.Code < 400 {
		msg += " (redirects are not followed)"
	}
	if e.Snippet != "" {
		msg += ": " + e.Snippet
	}
	return msg
}

// Verdict is what to do with an event after an attempt.
type Verdict int

// Verdicts.
const (
	Delivered  Verdict = iota // 2xx
	Retry                     // network error, timeout, 408, 429, 5xx, 3xx
	DeadLetter                // any other 4xx: this event will never be accepted
	Disable                   // 410 Gone: the endpoint is gone
)

// Classify maps the result of Send to a Verdict (PRODUCT.md §4).
func Classify(err error) Verdict {
	if err == nil {
		return Delivered
	}
	var se *StatusError
	if !errors.As(err, &se) {
		return Retry // network errors, timeouts
	}
	switch c := se.Code; {
	case c == http.StatusGone:
		return Disable
	case c == http.StatusRequestTimeout || c == http.StatusTooManyRequests || c >= 500:
		return Retry
	case c >= 300 && c < 400:
		return Retry
	case c >= 400:
		return DeadLetter
	}
	return Retry // 1xx and anything unexpected
}

// RetryAfter returns the delay the receiver asked for, or 0.
func RetryAfter(err error) time.Duration {
	var se *StatusError
	if errors.As(err, &se) {
		return se.RetryAfter
	}
	return 0
}

// Client sends webhooks. It never follows redirects. Safe for concurrent use.
type Client struct {
	http      *http.Client
	userAgent string
	now       func() time.Time
}

// NewClient returns a Client whose connection pool keeps up to maxIdle idle
// connections per host.
func NewClient(userAgent string, maxIdle int) *Client {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          max(100, maxIdle),
		MaxIdleConnsPerHost:   max(2, maxIdle),
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &Client{
		http: &http.Client{
			Transport: tr,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse // a 3xx is a failed attempt, never followed
			},
		},
		userAgent: userAgent,
		now:       time.Now,
	}
}

// Send makes one attempt. It blocks until the receiver answers, d.Timeout
// passes or ctx ends. It returns nil for 2xx, a *StatusError for other
// answers, and the transport error otherwise. Each attempt carries the same
// webhook-id and a fresh timestamp and signature.
func (c *Client) Send(ctx context.Context, d Delivery) error {
	if d.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d.Timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, d.Method, d.URL, bytes.NewReader(d.Body))
	if err != nil {
		return fmt.Errorf("%s %s: bad request: %w", d.Method, SafeURL(d.URL), errors.Unwrap(err))
	}
	for k, v := range d.Headers {
		req.Header.Set(k, v)
	}
	if req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", c.userAgent)
	req.Header[HeaderID] = []string{d.ID}
	switch d.Scheme {
	case SchemeStandard:
		ts := c.now()
		req.Header[HeaderTimestamp] = []string{strconv.FormatInt(ts.Unix(), 10)}
		sigs := make([]string, len(d.Keys))
		for i, k := range d.Keys {
			sigs[i] = Sign(k, d.ID, ts, d.Body)
		}
		req.Header[HeaderSignature] = []string{strings.Join(sigs, " ")}
	case SchemeGitHub:
		if len(d.Keys) > 0 {
			req.Header.Set(HeaderGitHub, SignGitHub(d.Keys[0], d.Body))
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// net/http names the whole URL, and a webhook URL's path is often
		// its secret (Home Assistant's webhook id): name only the host.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("%s %s: %w", d.Method, SafeURL(d.URL), err)
	}
	defer resp.Body.Close()
	// Read a little for the error message, drain a bounded amount so the
	// connection can be reused, never everything a hostile receiver sends.
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	return &StatusError{
		Code:       resp.StatusCode,
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), c.now()),
		Location:   resp.Header.Get("Location"),
		Snippet:    printable(snippet),
	}
}

// parseRetryAfter reads delay-seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, 7*24*3600)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return min(d, 7*24*time.Hour)
		}
	}
	return 0
}

// printable keeps the first line of a response body, without control characters.
func printable(b []byte) string {
	s := strings.ToValidUTF8(string(b), "?")
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, strings.TrimSpace(s))
}

// SafeURL returns raw reduced to scheme://host/…: no user info, path or
// query, which may carry a secret (a Home Assistant webhook id, a token).
// Use it wherever a URL is shown to a person.
func SafeURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(invalid URL)"
	}
	s := u.Scheme + "://" + u.Host
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		s += "/…"
	}
	return s
}
