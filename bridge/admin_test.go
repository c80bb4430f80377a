package bridge

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"
)

const testAdminToken = "admin-token-7f3a9c"

// apiGet fetches path from the daemon's API (from loopback) and decodes it.
func apiGet(t *testing.T, d *daemon, path string, out any) {
	t.Helper()
	resp, err := http.Get(d.httpURL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, resp.StatusCode, raw)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, raw)
	}
}

func apiPost(t *testing.T, d *daemon, path string) (int, RetryResult) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, d.httpURL+path, nil)
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var res RetryResult
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatalf("POST %s: %d %v: %s", path, resp.StatusCode, err, raw)
	}
	return resp.StatusCode, res
}

// A 410 disables the endpoint and dead-letters its events; retrying one
// through the API re-enables the endpoint and delivers it with its original
// webhook-id; retry-all delivers the rest; the re-enable survives a restart.
func TestRetryDeadLettersReenablesEndpoint(t *testing.T) {
	b := startBroker(t)
	rx := newReceiver(t)
	rx.setRespond(func(int, *http.Request, http.ResponseWriter) int { return http.StatusGone })
	store := t.TempDir()
	cfg := testConfig(store, b.URL(), rx.URL(), coldRule)
	d := startDaemon(t, cfg)
	p := newPublisher(t, b.URL())
	for _, room := range []string{"a", "b", "c"} {
		p.temp("home/"+room+"/temperature", 20)
		p.temp("home/"+room+"/temperature", 10)
	}
	waitFor(t, "three dead letters", func() bool { return len(deadLetters(d)) == 3 })
	rx.setRespond(nil) // 200 from now on
	hitsBefore := len(rx.all())

	var list struct {
		Count       int          `json:"count"`
		DeadLetters []DeadLetter `json:"dead_letters"`
	}
	apiGet(t, d, "/api/v1/deadletters", &list)
	if list.Count != 3 || len(list.DeadLetters) != 3 {
		t.Fatalf("list: %+v", list)
	}
	first := list.DeadLetters[0]
	if first.Endpoint != "rx" || first.Status != 410 || first.Rule != "cold" || !strings.Contains(first.Reason, "410") || first.Attempts != 1 {
		t.Fatalf("dead letter: %+v", first)
	}
	var ev map[string]any
	if err := json.Unmarshal(first.Body, &ev); err != nil || ev["id"] != first.ID {
		t.Fatalf("body is not the event: %v %s", err, first.Body)
	}
	var st Status
	apiGet(t, d, "/api/v1/status", &st)
	if st.DeadLetters != 3 || len(st.Endpoints) == 0 || !st.Endpoints[0].Disabled || st.Endpoints[0].DeadLetters != 3 {
		t.Fatalf("status before retry: %+v", st.Endpoints)
	}

	code, res := apiPost(t, d, "/api/v1/deadletters/"+first.ID+"/retry")
	if code != http.StatusOK || res.Retried != 1 || len(res.IDs) != 1 || res.IDs[0] != first.ID {
		t.Fatalf("retry one: %d %+v", code, res)
	}
	got := rx.waitDelivered(1, 10*time.Second)
	if got[0].ID != first.ID || got[0].Verified != nil {
		t.Fatalf("delivered %s (verify: %v), want %s", got[0].ID, got[0].Verified, first.ID)
	}
	if n := len(rx.all()) - hitsBefore; n != 1 {
		t.Fatalf("retrying one dead letter sent %d requests", n)
	}
	if d.b.deliverer("rx").Status().Disabled {
		t.Fatal("endpoint still disabled after a retry")
	}
	waitFor(t, "two dead letters left", func() bool { return len(deadLetters(d)) == 2 })

	// Unknown ids: 404, nothing happens.
	if code, res := apiPost(t, d, "/api/v1/deadletters/evt_nope/retry"); code != http.StatusNotFound || res.Retried != 0 {
		t.Fatalf("unknown id: %d %+v", code, res)
	}
	// Retrying the same id again: it is no longer a dead letter.
	if code, _ := apiPost(t, d, "/api/v1/deadletters/"+first.ID+"/retry"); code != http.StatusNotFound {
		t.Fatalf("second retry of the same id: %d", code)
	}

	code, res = apiPost(t, d, "/api/v1/deadletters/retry")
	if code != http.StatusOK || res.Retried != 2 {
		t.Fatalf("retry all: %d %+v", code, res)
	}
	rx.waitDelivered(3, 10*time.Second)
	waitFor(t, "no dead letters", func() bool { return len(deadLetters(d)) == 0 })
	for _, id := range []string{list.DeadLetters[1].ID, list.DeadLetters[2].ID} {
		found := false
		for _, h := range rx.all() {
			found = found || (h.ID == id && h.Code == http.StatusOK)
		}
		if !found {
			t.Errorf("dead letter %s was not delivered with its original webhook-id", id)
		}
	}
	// New events flow again.
	p.temp("home/d/temperature", 20)
	p.temp("home/d/temperature", 10)
	rx.waitDelivered(4, 10*time.Second)

	// The re-enable is durable.
	d.stop(t)
	if v, err := d.b.store.Meta("disabled/rx"); err == nil && v != nil {
		t.Fatal("disabled mark still stored after the retry")
	}
}

// A dead letter that expired (max_age) gets a fresh max_age when retried: it
// is delivered, not expired again at once.
func TestRetryExpiredDeadLetter(t *testing.T) {
	b := startBroker(t)
	rx := newReceiver(t)
	rx.setRespond(func(int, *http.Request, http.ResponseWriter) int { return http.StatusServiceUnavailable })
	cfg := strings.Replace(testConfig(t.TempDir(), b.URL(), rx.URL(), coldRule), `timeout = "2s"`, `timeout = "2s"
max_age = "3s"`, 1)
	d := startDaemon(t, cfg)
	p := newPublisher(t, b.URL())
	p.temp("home/a/temperature", 20)
	p.temp("home/a/temperature", 10)
	waitFor(t, "an expired dead letter", func() bool { return len(deadLetters(d)) == 1 })
	dl := deadLetters(d)[0]
	if !strings.Contains(dl.Reason, "max_age") {
		t.Fatalf("reason: %q", dl.Reason)
	}
	time.Sleep(3100 * time.Millisecond) // older than max_age by any measure
	rx.setRespond(nil)
	if code, res := apiPost(t, d, "/api/v1/deadletters/"+dl.ID+"/retry"); code != http.StatusOK || res.Retried != 1 {
		t.Fatalf("retry: %d %+v", code, res)
	}
	got := rx.waitDelivered(1, 10*time.Second)
	if got[0].ID != dl.ID {
		t.Fatalf("delivered %s, want %s", got[0].ID, dl.ID)
	}
}

// Dead letters of an endpoint that a reload removed are not retried (there
// is nowhere to send them): 409, and they stay.
func TestRetrySkipsRemovedEndpoint(t *testing.T) {
	b := startBroker(t)
	rx := newReceiver(t)
	rx.setRespond(func(int, *http.Request, http.ResponseWriter) int { return http.StatusBadRequest })
	store := t.TempDir()
	d := startDaemon(t, testConfig(store, b.URL(), rx.URL(), coldRule))
	p := newPublisher(t, b.URL())
	p.temp("home/a/temperature", 20)
	p.temp("home/a/temperature", 10)
	waitFor(t, "a dead letter", func() bool { return len(deadLetters(d)) == 1 })
	d.stop(t)

	// Restart with the endpoint renamed: "rx" is gone.
	cfg := strings.Replace(testConfig(store, b.URL(), rx.URL(), strings.Replace(coldRule, `["rx"]`, `["rx2"]`, 1)), `name = "rx"`, `name = "rx2"`, 1)
	d = startDaemon(t, cfg)
	dl := deadLetters(d)
	if len(dl) != 1 {
		t.Fatalf("dead letters after restart: %d", len(dl))
	}
	code, res := apiPost(t, d, "/api/v1/deadletters/"+dl[0].ID+"/retry")
	if code != http.StatusConflict || len(res.Skipped) != 1 || !strings.Contains(res.Error, "no longer configured") {
		t.Fatalf("retry to a removed endpoint: %d %+v", code, res)
	}
	if len(deadLetters(d)) != 1 {
		t.Fatal("the dead letter was lost")
	}
}

// Who may use the status page and /api/v1.
func TestAdminAccess(t *testing.T) {
	b := startBroker(t)
	rx := newReceiver(t)
	withToken := func(cfg string) string {
		return strings.Replace(cfg, `listen = "127.0.0.1:0"`, `listen = "127.0.0.1:0"
trusted_proxies = ["127.0.0.1"]
admin_token = "`+testAdminToken+`"`, 1)
	}
	noToken := func(cfg string) string {
		return strings.Replace(cfg, `listen = "127.0.0.1:0"`, `listen = "127.0.0.1:0"
trusted_proxies = ["127.0.0.1"]`, 1)
	}
	do := func(d *daemon, method, path string, h map[string]string) (int, http.Header, string) {
		t.Helper()
		req, _ := http.NewRequest(method, d.httpURL+path, nil)
		for k, v := range h {
			if k == "Host" {
				req.Host = v
				continue
			}
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(raw)
	}
	remote := map[string]string{"X-Forwarded-For": "203.0.113.9"} // through the trusted local proxy
	paths := []string{"/", "/api/v1/status", "/api/v1/deadletters"}

	d := startDaemon(t, noToken(testConfig(t.TempDir(), b.URL(), rx.URL(), coldRule)))
	for _, p := range paths {
		if code, _, body := do(d, "GET", p, nil); code != 200 {
			t.Errorf("loopback GET %s: %d %s", p, code, body)
		}
		if code, _, body := do(d, "GET", p, remote); code != 403 || !strings.Contains(body, "admin_token_file") {
			t.Errorf("remote GET %s without a configured token: %d %s", p, code, body)
		}
		// DNS rebinding: a loopback peer that calls us by a foreign name.
		if code, _, _ := do(d, "GET", p, map[string]string{"Host": "attacker.example:8321"}); code != 403 {
			t.Errorf("GET %s with Host attacker.example: %d, want 403", p, code)
		}
		if code, _, _ := do(d, "GET", p, map[string]string{"Host": "localhost:8321"}); code != 200 {
			t.Errorf("GET %s with Host localhost: %d, want 200", p, code)
		}
	}
	if code, _, _ := do(d, "POST", "/api/v1/deadletters/retry", remote); code != 403 {
		t.Errorf("remote retry without a configured token: %d", code)
	}
	// A browser page on another site cannot press Retry.
	if code, _, _ := do(d, "POST", "/api/v1/deadletters/retry", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}); code != 403 {
		t.Errorf("cross-site POST: %d, want 403", code)
	}
	if code, _, _ := do(d, "POST", "/api/v1/deadletters/retry", map[string]string{"Sec-Fetch-Site": "same-origin"}); code != 200 {
		t.Errorf("same-origin POST: %d, want 200", code)
	}
	// /healthz, /readyz and /metrics stay open.
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if code, _, _ := do(d, "GET", p, remote); code != 200 {
			t.Errorf("remote GET %s: %d", p, code)
		}
	}
	d.stop(t)

	d = startDaemon(t, withToken(testConfig(t.TempDir(), b.URL(), rx.URL(), coldRule)))
	for _, p := range paths {
		code, h, _ := do(d, "GET", p, remote)
		if code != 401 || !strings.Contains(strings.Join(h.Values("WWW-Authenticate"), " "), "Basic") {
			t.Errorf("remote GET %s without the token: %d %v", p, code, h.Values("WWW-Authenticate"))
		}
		bearer := map[string]string{"X-Forwarded-For": "203.0.113.9", "Authorization": "Bearer " + testAdminToken}
		if code, _, body := do(d, "GET", p, bearer); code != 200 {
			t.Errorf("remote GET %s with the bearer token: %d %s", p, code, body)
		}
		req, _ := http.NewRequest("GET", "/", nil)
		req.SetBasicAuth("admin", testAdminToken)
		basic := map[string]string{"X-Forwarded-For": "203.0.113.9", "Authorization": req.Header.Get("Authorization")}
		if code, _, _ := do(d, "GET", p, basic); code != 200 {
			t.Errorf("remote GET %s with basic auth: %d", p, code)
		}
		wrong := map[string]string{"X-Forwarded-For": "203.0.113.9", "Authorization": "Bearer " + testAdminToken + "x"}
		if code, _, _ := do(d, "GET", p, wrong); code != 401 {
			t.Errorf("remote GET %s with a wrong token: %d", p, code)
		}
		if code, _, _ := do(d, "GET", p, nil); code != 200 {
			t.Errorf("loopback GET %s: %d", p, code)
		}
	}
	// A proxy we were not told to trust: its X-Forwarded-For makes the
	// request non-local even from loopback.
	d.stop(t)
	d = startDaemon(t, testConfig(t.TempDir(), b.URL(), rx.URL(), coldRule))
	if code, _, _ := do(d, "GET", "/api/v1/status", remote); code != 403 {
		t.Errorf("loopback request through an untrusted proxy: %d, want 403", code)
	}
	if strings.Contains(d.logs.String(), testAdminToken) {
		t.Error("the admin token is in the log")
	}
}

// Who counts as local, by peer address and forwarding headers (no network:
// the requests are built by hand).
func TestIsLocal(t *testing.T) {
	b := &Bridge{trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("192.168.1.0/24")}}
	for _, c := range []struct {
		peer string
		h    map[string]string
		want bool
	}{
		{"127.0.0.1:5000", nil, true},
		{"[::1]:5000", nil, true},
		{"192.168.1.20:5000", nil, false},
		// A trusted proxy elsewhere on the LAN cannot vouch for loopback.
		{"192.168.1.50:5000", map[string]string{"X-Forwarded-For": "127.0.0.1"}, false},
		// A trusted proxy on this host, forwarding a local client, or a remote one.
		{"127.0.0.1:5000", map[string]string{"X-Forwarded-For": "127.0.0.1"}, true},
		{"127.0.0.1:5000", map[string]string{"X-Forwarded-For": "127.0.0.1, 203.0.113.9"}, false},
		{"127.0.0.1:5000", map[string]string{"X-Forwarded-For": "203.0.113.9, 127.0.0.1"}, false},
		{"127.0.0.1:5000", map[string]string{"X-Forwarded-For": "garbage"}, false},
		// Forwarded is not parsed: never local.
		{"127.0.0.1:5000", map[string]string{"Forwarded": "for=127.0.0.1"}, false},
		// DNS rebinding.
		{"127.0.0.1:5000", map[string]string{"Host": "attacker.example"}, false},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.peer
		r.Host = "127.0.0.1:8321"
		for k, v := range c.h {
			if k == "Host" {
				r.Host = v
			} else {
				r.Header.Set(k, v)
			}
		}
		if got := b.isLocal(r); got != c.want {
			t.Errorf("peer %s %v: local=%v, want %v", c.peer, c.h, got, c.want)
		}
	}
	// An untrusted local proxy's X-Forwarded-For makes it non-local.
	b.trusted = nil
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr, r.Host = "127.0.0.1:5000", "127.0.0.1:8321"
	r.Header.Set("X-Forwarded-For", "127.0.0.1")
	if b.isLocal(r) {
		t.Error("X-Forwarded-For from an untrusted proxy was believed")
	}
}

func TestLocalHost(t *testing.T) {
	for h, want := range map[string]bool{
		"127.0.0.1:8321": true, "localhost:8321": true, "LOCALHOST": true, "[::1]:8321": true, "foo.localhost": true,
		"192.168.1.5:8321": true, "localhost.": true,
		"pi.local:8321": false, "attacker.example": false, "localhost.example.com": false, "": false,
	} {
		if got := localHost(h); got != want {
			t.Errorf("localHost(%q) = %v, want %v", h, got, want)
		}
	}
}

// The status API and page show the rules' series, firings, endpoints,
// inbound results and dead letters, and never a secret.
func TestStatusShowsStateWithoutSecrets(t *testing.T) {
	b := startBroker(t)
	rx := newReceiver(t)
	rx.setRespond(func(n int, _ *http.Request, _ http.ResponseWriter) int {
		if n == 1 {
			return http.StatusBadRequest // the first event becomes a dead letter
		}
		return http.StatusOK
	})
	inbound := `
[[inbound]]
name = "cmd"
path = "/hooks/cmd"
secret = "inbound-secret-5e1d"
topic = "home/cmd"
`
	rxURL := rx.URL() + "/api/webhook/secret-path-9f2c"
	d := startDaemon(t, testConfig(t.TempDir(), b.URL(), rxURL, coldRule+inbound))
	p := newPublisher(t, b.URL())
	p.temp("home/a/temperature", 20)
	p.temp("home/a/temperature", 10) // fires: dead-lettered (400)
	p.temp("home/b/temperature", 20)
	p.temp("home/b/temperature", 10) // fires: delivered
	rx.waitDelivered(1, 10*time.Second)
	waitFor(t, "a dead letter", func() bool { return len(deadLetters(d)) == 1 })
	post(t, d.httpURL+"/hooks/cmd", nil, []byte(`{}`)) // unsigned: 401

	var st Status
	waitFor(t, "the status shows two firing series and an empty queue", func() bool {
		apiGet(t, d, "/api/v1/status", &st)
		// The delivered event leaves the outbox with the next commit.
		return len(st.Rules) == 1 && st.Rules[0].Firing == 2 && len(st.Endpoints) > 0 && st.Endpoints[0].QueueDepth == 0
	})
	r := st.Rules[0]
	if r.Name != "cold" || r.Condition != "below" || r.SeriesCount != 2 || r.LastEvent == nil || r.LastEvent.Type != "rule.fired" ||
		r.LastFired == nil || r.LastFired.Series != "home/b/temperature" {
		t.Fatalf("rule: %+v", r)
	}
	for _, s := range r.Series {
		if s.State != "firing" || s.Value == nil || *s.Value != 10 || s.LastEvent == nil || s.LastReading == nil || s.LastFired == nil {
			t.Errorf("series: %+v", s)
		}
	}
	if !st.Ready || !st.Broker.Connected || st.Version.Version != "test" {
		t.Errorf("status: ready=%v broker=%+v version=%+v", st.Ready, st.Broker, st.Version)
	}
	var ep *EndpointStatus
	for i := range st.Endpoints {
		if st.Endpoints[i].Name == "rx" {
			ep = &st.Endpoints[i]
		}
	}
	if ep == nil || ep.Delivered != 1 || ep.DeadLetters != 1 || ep.QueueDepth != 0 || ep.Disabled {
		t.Fatalf("endpoint: %+v", ep)
	}
	if len(st.Inbound) != 1 || len(st.Inbound[0].Recent) != 1 || st.Inbound[0].Recent[0].Status != 401 {
		t.Fatalf("inbound: %+v", st.Inbound)
	}

	resp, err := http.Get(d.httpURL + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	html := string(page)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	dl := deadLetters(d)[0]
	for _, want := range []string{"cold", "firing", "home/a/temperature", dl.ID, `action="api/v1/deadletters/` + dl.ID + `/retry"`, "Retry all", "/hooks/cmd", "401", "test"} {
		if !strings.Contains(html, want) {
			t.Errorf("status page lacks %q", want)
		}
	}
	if resp.Header.Get("X-Frame-Options") != "DENY" || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("status page headers: %v", resp.Header)
	}
	var apiText strings.Builder
	for _, p := range []string{"/api/v1/status", "/api/v1/deadletters"} {
		resp, err := http.Get(d.httpURL + p)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		apiText.Write(raw)
	}
	for _, secret := range []string{testSecret, "inbound-secret-5e1d", "secret-path-9f2c"} {
		if strings.Contains(html, secret) || strings.Contains(apiText.String(), secret) {
			t.Errorf("secret %q shown", secret)
		}
	}
}

// A browser form posting Retry is sent back to the page with the outcome.
func TestRetryFormRedirects(t *testing.T) {
	b := &Bridge{}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/api/v1/deadletters/retry", nil)
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	b.answerRetry(rec, req, 200, RetryResult{Retried: 2})
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "../../../?retried=2&skipped=0&failed=0#deadletters" {
		t.Fatalf("form retry: %d %q", rec.Code, rec.Header().Get("Location"))
	}
	// Relative, so that it works under a proxy's sub-path: from
	// /api/v1/deadletters/ID/retry four levels up is the page.
	rec = httptest.NewRecorder()
	req = httptest.NewRequest("POST", "/api/v1/deadletters/evt_1/retry", nil)
	req.Header.Set("Accept", "text/html")
	b.answerRetry(rec, req, 200, RetryResult{Retried: 1})
	base, _ := url.Parse("http://pi.local/edgehook/api/v1/deadletters/evt_1/retry")
	loc, _ := url.Parse(rec.Header().Get("Location"))
	if got := base.ResolveReference(loc); got.Path != "/edgehook/" || got.Query().Get("retried") != "1" {
		t.Fatalf("redirect resolves to %v", got)
	}
}

func TestRuleViewStates(t *testing.T) {
	for _, c := range []struct {
		sv   seriesView
		want string
	}{
		{seriesView{}, "no reading"},
		{seriesView{Seen: true}, "ok"},
		{seriesView{Seen: true, Pending: true}, "pending"},
		{seriesView{Seen: true, Active: true}, "active"},
		{seriesView{Seen: true, Active: true, Fired: true}, "firing"},
	} {
		if got := c.sv.state(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.sv, got, c.want)
		}
	}
	var l inboundLog
	l.routes = map[string]*inboundRing{}
	for i := 0; i < inboundRecent+5; i++ {
		l.add("r", InboundResult{Status: i})
	}
	got := l.recent("r")
	if len(got) != inboundRecent || got[0].Status != inboundRecent+4 || got[len(got)-1].Status != 5 {
		t.Fatalf("recent: %d entries, first %d last %d", len(got), got[0].Status, got[len(got)-1].Status)
	}
}

// A dead letter that never rendered (its body template failed) is not
// retried: that would send an empty body. It can be deleted, like any other;
// DELETE, the page's form and delete-all work.
func TestUndeliverableAndDelete(t *testing.T) {
	b := startBroker(t)
	rx := newReceiver(t)
	rx.setRespond(func(int, *http.Request, http.ResponseWriter) int { return http.StatusBadRequest })
	d := startDaemon(t, testConfig(t.TempDir(), b.URL(), rx.URL(), coldRule+`
[[rule]]
name = "broken"
topic = "home/+/temperature"
value = "temperature"
below = 18.0
endpoints = ["rx"]
body = '{"room": {{ topicPart 1 }}}'
`))
	p := newPublisher(t, b.URL())
	for _, room := range []string{"a", "b", "c"} {
		p.temp("home/"+room+"/temperature", 20)
		p.temp("home/"+room+"/temperature", 10)
	}
	waitFor(t, "six dead letters", func() bool { return len(deadLetters(d)) == 6 })
	var list struct {
		DeadLetters []DeadLetter `json:"dead_letters"`
	}
	apiGet(t, d, "/api/v1/deadletters?rule=broken", &list)
	if len(list.DeadLetters) != 3 || list.DeadLetters[0].Retryable {
		t.Fatalf("broken rule's dead letters: %+v", list.DeadLetters)
	}
	broken := list.DeadLetters[0]
	code, res := apiPost(t, d, "/api/v1/deadletters/"+broken.ID+"/retry")
	if code != http.StatusConflict || len(res.Skipped) != 1 || !strings.Contains(res.Skipped[0].Reason, "never rendered") {
		t.Fatalf("retry of an unrenderable dead letter: %d %+v", code, res)
	}
	hits := len(rx.all())
	code, res = apiPost(t, d, "/api/v1/deadletters/retry")
	if code != http.StatusOK || res.Retried != 3 || len(res.Skipped) != 3 {
		t.Fatalf("retry all: %d %+v", code, res)
	}
	rx.waitHits(hits+3, 10*time.Second) // the cold ones, attempted again (and dead again: 400)
	for _, h := range rx.all()[hits:] {
		if len(h.Body) == 0 || h.Event["rule"] != "cold" {
			t.Fatalf("retry sent %q", h.Body)
		}
	}
	waitFor(t, "six dead letters again", func() bool { return len(deadLetters(d)) == 6 })

	del := func(method, path string, h map[string]string) (int, string) {
		req, _ := http.NewRequest(method, d.httpURL+path, nil)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw) + resp.Header.Get("Location")
	}
	if code, body := del("DELETE", "/api/v1/deadletters/"+broken.ID, nil); code != 200 || !strings.Contains(body, `"deleted":1`) {
		t.Fatalf("DELETE one: %d %s", code, body)
	}
	if code, _ := del("DELETE", "/api/v1/deadletters/"+broken.ID, nil); code != 404 {
		t.Fatalf("DELETE of a deleted one: %d", code)
	}
	apiGet(t, d, "/api/v1/deadletters?rule=broken", &list)
	if code, loc := del("POST", "/api/v1/deadletters/"+list.DeadLetters[0].ID+"/delete", map[string]string{"Accept": "text/html"}); code != 303 || !strings.Contains(loc, "deleted=1") {
		t.Fatalf("form delete: %d %s", code, loc)
	}
	if code, body := del("DELETE", "/api/v1/deadletters?endpoint=nope", nil); code != 200 || !strings.Contains(body, `"deleted":0`) {
		t.Fatalf("DELETE all of another endpoint: %d %s", code, body)
	}
	if code, body := del("DELETE", "/api/v1/deadletters", nil); code != 200 || !strings.Contains(body, `"deleted":4`) {
		t.Fatalf("DELETE all: %d %s", code, body)
	}
	if n := len(deadLetters(d)); n != 0 {
		t.Fatalf("%d dead letters left", n)
	}
	if v := d.metric(t, `edgehook_dead_letters{endpoint="rx"}`); v != 0 {
		t.Fatalf("edgehook_dead_letters = %v after deleting all", v)
	}
	// Deleting is refused to other sites' pages, like retrying.
	if code, _ := del("DELETE", "/api/v1/deadletters", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}); code != 403 {
		t.Fatalf("cross-site DELETE: %d", code)
	}
}

// A retried dead letter is durable: it goes back to the outbox in the same
// commit that takes it off the dead letters, so a restart before it is
// delivered loses nothing, and it still goes out under its webhook-id.
func TestRetriedDeadLetterSurvivesRestart(t *testing.T) {
	b := startBroker(t)
	rx := newReceiver(t)
	rx.setRespond(func(int, *http.Request, http.ResponseWriter) int { return http.StatusBadRequest })
	cfg := testConfig(t.TempDir(), b.URL(), rx.URL(), coldRule)
	d := startDaemon(t, cfg)
	p := newPublisher(t, b.URL())
	p.temp("home/a/temperature", 20)
	p.temp("home/a/temperature", 10)
	waitFor(t, "a dead letter", func() bool { return len(deadLetters(d)) == 1 })
	id := deadLetters(d)[0].ID

	// Bad requests to the API are refused, and change nothing.
	for _, q := range []string{"limit=abc", "limit=0", "limit=-3"} {
		resp, err := http.Get(d.httpURL + "/api/v1/deadletters?" + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET /api/v1/deadletters?%s: %d, want 400", q, resp.StatusCode)
		}
	}

	rx.setRespond(func(int, *http.Request, http.ResponseWriter) int { return http.StatusServiceUnavailable })
	if code, res := apiPost(t, d, "/api/v1/deadletters/"+id+"/retry"); code != http.StatusOK || res.Retried != 1 {
		t.Fatalf("retry: %d %+v", code, res)
	}
	rx.waitHits(2, 10*time.Second) // attempted again, and failed
	if n := len(deadLetters(d)); n != 0 {
		t.Fatalf("%d dead letters while the retried one waits in the outbox", n)
	}
	d.stop(t)

	rx.setRespond(nil)
	d = startDaemon(t, cfg)
	got := rx.waitDelivered(1, 10*time.Second)
	if got[0].ID != id || got[0].Verified != nil {
		t.Fatalf("after the restart delivered %s (verify: %v), want %s", got[0].ID, got[0].Verified, id)
	}
	if n := len(deadLetters(d)); n != 0 {
		t.Fatalf("%d dead letters after delivery", n)
	}
}

// FuzzIsLocal: whatever the headers say, a request is local only if its TCP
// peer is loopback and its Host names us by IP or localhost; nothing panics.
func FuzzIsLocal(f *testing.F) {
	f.Add("127.0.0.1:5000", "", "", "127.0.0.1:8321")
	f.Add("192.168.1.50:5000", "127.0.0.1", "", "127.0.0.1")
	f.Add("[::1]:1", "::1, 127.0.0.1", "", "localhost")
	f.Add("127.0.0.1:5000", "", "for=127.0.0.1", "[::1]:8321")
	f.Add("garbage", ",,", "", "a.localhost.")
	b := &Bridge{trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("192.168.1.0/24")}}
	f.Fuzz(func(t *testing.T, peer, xff, forwarded, host string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr, r.Host = peer, host
		if xff != "" {
			r.Header.Set("X-Forwarded-For", xff)
		}
		if forwarded != "" {
			r.Header.Set("Forwarded", forwarded)
		}
		if !b.isLocal(r) {
			return
		}
		h, _, err := net.SplitHostPort(peer)
		a, perr := netip.ParseAddr(h)
		if err != nil || perr != nil || !a.Unmap().IsLoopback() {
			t.Fatalf("peer %q taken as local", peer)
		}
		if forwarded != "" || !localHost(host) {
			t.Fatalf("Forwarded %q / Host %q taken as local", forwarded, host)
		}
	})
}
