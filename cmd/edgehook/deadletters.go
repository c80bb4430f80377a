package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/edgehook/edgehook/bridge"
)

const deadlettersUsage = `Usage:
  edgehook deadletters list [--endpoint NAME] [--rule NAME] [--json]
  edgehook deadletters retry ID...
  edgehook deadletters retry --all [--endpoint NAME]
  edgehook deadletters delete ID...
  edgehook deadletters delete --all [--endpoint NAME]

Talks to the running daemon's API (/api/v1/deadletters). Its address comes from
[http] listen in the config (-c, default /etc/edgehook/edgehook.toml), or --url
(env EDGEHOOK_URL). A daemon listening on a non-loopback address wants the
admin token: env EDGEHOOK_ADMIN_TOKEN, else http.admin_token_file from the config.
`

// cmdDeadletters is `edgehook deadletters list|retry|delete`.
func (e *env) cmdDeadletters(ctx context.Context, args []string) int {
	if len(args) == 0 || (args[0] != "list" && args[0] != "retry" && args[0] != "delete") {
		fmt.Fprint(e.stderr, deadlettersUsage)
		if len(args) > 0 && isHelp(args[0]) {
			return exitOK
		}
		return exitUsage
	}
	sub := args[0]
	fs := e.flagSet("deadletters " + sub)
	path := e.configFlag(fs)
	base := fs.String("url", "", "the daemon's base URL, e.g. http://127.0.0.1:8321 (env EDGEHOOK_URL)")
	endpoint := fs.String("endpoint", "", "only this endpoint's dead letters")
	rule := fs.String("rule", "", "list: only this rule's dead letters")
	asJSON := fs.Bool("json", false, "list: print the API's JSON")
	all := fs.Bool("all", false, "retry/delete: every dead letter (with --endpoint: every one of that endpoint)")
	fs.Usage = func() { fmt.Fprint(e.stderr, deadlettersUsage) }
	// Flags may come after the ids too.
	var ids []string
	for rest := args[1:]; ; {
		if err := fs.Parse(rest); err != nil {
			return parseExit(err)
		}
		if rest = fs.Args(); len(rest) == 0 {
			break
		}
		ids, rest = append(ids, rest[0]), rest[1:]
	}
	if sub == "list" && len(ids) > 0 || sub != "list" && (*all == (len(ids) > 0)) {
		fmt.Fprint(e.stderr, deadlettersUsage)
		return exitUsage
	}
	api, err := e.adminClient(*path, *base)
	if err != nil {
		fmt.Fprintln(e.stderr, "edgehook:", err)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if sub == "list" {
		return e.listDeadLetters(ctx, api, *endpoint, *rule, *asJSON)
	}
	return e.changeDeadLetters(ctx, api, sub, ids, *all, *endpoint)
}

// changeDeadLetters retries or deletes (sub) the dead letters named by ids,
// or all of them (of endpoint, if given).
func (e *env) changeDeadLetters(ctx context.Context, api *adminAPI, sub string, ids []string, all bool, endpoint string) int {
	method, allPath, oneSuffix, verb := http.MethodPost, "/api/v1/deadletters/retry", "/retry", "re-queued"
	if sub == "delete" {
		method, allPath, oneSuffix, verb = http.MethodDelete, "/api/v1/deadletters", "", "deleted"
	}
	// Both bridge.RetryResult and bridge.DeleteResult decode into this.
	var res struct {
		Retried int                `json:"retried"`
		Deleted int                `json:"deleted"`
		Skipped []bridge.RetrySkip `json:"skipped"`
	}
	if all {
		q := url.Values{}
		if endpoint != "" {
			q.Set("endpoint", endpoint)
		}
		if err := api.do(ctx, method, allPath+"?"+q.Encode(), &res); err != nil {
			fmt.Fprintln(e.stderr, "edgehook:", err)
			return exitFailure
		}
		fmt.Fprintf(e.stdout, "%s %d dead letter(s)\n", verb, res.Retried+res.Deleted)
		for _, s := range res.Skipped {
			fmt.Fprintf(e.stderr, "skipped %s: %s\n", s.ID, s.Reason)
		}
		if len(res.Skipped) > 0 {
			return exitFailure
		}
		return exitOK
	}
	code := exitOK
	for _, id := range ids {
		if err := api.do(ctx, method, "/api/v1/deadletters/"+url.PathEscape(id)+oneSuffix, &res); err != nil {
			fmt.Fprintf(e.stderr, "edgehook: %s: %v\n", id, err)
			code = exitFailure
			continue
		}
		fmt.Fprintf(e.stdout, "%s %s\n", verb, id)
	}
	return code
}

func (e *env) listDeadLetters(ctx context.Context, api *adminAPI, endpoint, rule string, asJSON bool) int {
	q := url.Values{"limit": {"10000"}}
	if endpoint != "" {
		q.Set("endpoint", endpoint)
	}
	if rule != "" {
		q.Set("rule", rule)
	}
	var raw json.RawMessage
	if err := api.do(ctx, http.MethodGet, "/api/v1/deadletters?"+q.Encode(), &raw); err != nil {
		fmt.Fprintln(e.stderr, "edgehook:", err)
		return exitFailure
	}
	if asJSON {
		var out bytes.Buffer
		_ = json.Indent(&out, raw, "", "  ")
		fmt.Fprintln(e.stdout, out.String())
		return exitOK
	}
	var list struct {
		Count       int                 `json:"count"`
		DeadLetters []bridge.DeadLetter `json:"dead_letters"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		fmt.Fprintln(e.stderr, "edgehook: unexpected answer from the daemon:", err)
		return exitFailure
	}
	if list.Count == 0 {
		fmt.Fprintln(e.stdout, "no dead letters")
		return exitOK
	}
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tENDPOINT\tRULE\tSERIES\tTYPE\tDEAD AT\tATTEMPTS\tSTATUS\tREASON")
	for _, d := range list.DeadLetters {
		status := "-"
		if d.Status != 0 {
			status = fmt.Sprint(d.Status)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", d.ID, d.Endpoint, d.Rule, d.Series, d.Type,
			d.DeadAt.Local().Format(time.DateTime), d.Attempts, status, oneLine(d.Reason, 100))
	}
	tw.Flush()
	if list.Count > len(list.DeadLetters) {
		fmt.Fprintf(e.stdout, "(showing the newest %d of %d)\n", len(list.DeadLetters), list.Count)
	}
	return exitOK
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

// adminAPI calls the daemon's /api/v1.
type adminAPI struct {
	base   string
	token  string
	client *http.Client
}

// adminClient finds the daemon: --url (or EDGEHOOK_URL), else [http] listen
// from the config, else http://127.0.0.1:8321. A wildcard listen address is
// reached over loopback. The token comes from EDGEHOOK_ADMIN_TOKEN or the
// config.
func (e *env) adminClient(configPath, base string) (*adminAPI, error) {
	if base == "" {
		base, _ = e.getenv("EDGEHOOK_URL")
	}
	token, _ := e.getenv("EDGEHOOK_ADMIN_TOKEN")
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if base == "" {
		listen, scheme := "127.0.0.1:8321", "http"
		if cfg, _, err := bridge.Load(configPath, e.getenv); err == nil {
			listen = cfg.HTTP.Listen
			if cfg.HTTP.TLSCertFile != "" {
				scheme = "https"
			}
			if token == "" {
				token = cfg.HTTP.AdminToken.Reveal()
			}
		} else {
			first, _, _ := strings.Cut(err.Error(), "\n")
			fmt.Fprintf(e.stderr, "edgehook: cannot use %s (%s); trying http://%s (see --url)\n", configPath, first, listen)
		}
		host, port, err := net.SplitHostPort(listen)
		if err != nil {
			return nil, fmt.Errorf("[http] listen %q: %v", listen, err)
		}
		if a, err := netip.ParseAddr(host); host == "" || (err == nil && a.IsUnspecified()) {
			host = "127.0.0.1"
		}
		base = scheme + "://" + net.JoinHostPort(host, port)
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--url %q: want http://host:port or https://host:port", base)
	}
	if a, err := netip.ParseAddr(u.Hostname()); (err == nil && a.IsLoopback()) || u.Hostname() == "localhost" {
		// Our own daemon over loopback: its certificate names the host
		// others reach it by, and nobody can sit between us on loopback.
		tlsConf.InsecureSkipVerify = true
	}
	return &adminAPI{base: strings.TrimSuffix(base, "/"), token: token, client: &http.Client{
		Transport: &http.Transport{TLSClientConfig: tlsConf, Proxy: nil},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}, nil
}

// do calls the API and decodes its JSON answer into out; an answer other than
// 2xx becomes an error with the daemon's message.
func (a *adminAPI) do(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("cannot reach edgehook at %s (is it running? see --url): %v", a.base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var msg struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &msg) == nil && msg.Error != "" {
			return fmt.Errorf("%s (HTTP %d)", msg.Error, resp.StatusCode)
		}
		return fmt.Errorf("HTTP %d from %s", resp.StatusCode, a.base)
	}
	return json.Unmarshal(body, out)
}
