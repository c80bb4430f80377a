package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/edgehook/edgehook/bridge"
	"github.com/edgehook/edgehook/bridge/webhook"
)

// headerFlags collects repeated -H "Name: value" flags.
type headerFlags []string

func (h *headerFlags) String() string     { return strings.Join(*h, ", ") }
func (h *headerFlags) Set(v string) error { *h = append(*h, v); return nil }

// secretFlags is how sign and verify find the secret and scheme: given
// directly, from a file, or from a route or endpoint of a config.
type secretFlags struct {
	config, route, endpoint, secret, secretFile, scheme string
	body                                                string
}

func (e *env) secretFlagSet(name string, s *secretFlags) *flag.FlagSet {
	fs := e.flagSet(name)
	fs.StringVar(&s.config, "c", "", "config file to take the secret from (with --route or --endpoint)")
	fs.StringVar(&s.config, "config", "", "same as -c")
	fs.StringVar(&s.route, "route", "", "an [[inbound]] route of the config")
	fs.StringVar(&s.endpoint, "endpoint", "", "an [[endpoint]] of the config")
	fs.StringVar(&s.secret, "secret", "", "the secret (whsec_<base64> or raw); prefer --secret-file")
	fs.StringVar(&s.secretFile, "secret-file", "", "a file holding the secret")
	fs.StringVar(&s.scheme, "scheme", "", "standard-webhooks (default), github or token")
	fs.StringVar(&s.body, "body-file", "-", "the body; - for standard input")
	return fs
}

// resolve returns the secret and scheme the flags point at.
func (e *env) resolveSecret(s *secretFlags) (secret, scheme string, code int, err error) {
	scheme = s.scheme
	switch {
	case s.config != "":
		cfg, _, err := bridge.Load(s.config, e.getenv)
		if err != nil {
			return "", "", exitConfig, err
		}
		found := false
		for _, in := range cfg.Inbound {
			if s.route != "" && in.Name == s.route {
				secret, found = in.Secret.Reveal(), true
				if scheme == "" {
					scheme = in.Verify
				}
			}
		}
		for _, ep := range cfg.Endpoints {
			if s.endpoint != "" && ep.Name == s.endpoint {
				secret, found = ep.Secret.Reveal(), true
				if scheme == "" {
					scheme = ep.Signing
				}
			}
		}
		if !found {
			return "", "", exitUsage, errors.New("name a route (--route) or endpoint (--endpoint) of the config")
		}
	case s.secretFile != "":
		b, err := os.ReadFile(s.secretFile)
		if err != nil {
			return "", "", exitUsage, err
		}
		secret = strings.TrimRight(string(b), "\r\n")
	case s.secret != "":
		secret = s.secret
	default:
		return "", "", exitUsage, errors.New("give the secret: --secret-file F, --secret S, or -c FILE --route NAME")
	}
	if scheme == "" {
		scheme = webhook.SchemeStandard
	}
	switch scheme {
	case webhook.SchemeStandard, webhook.SchemeGitHub, "token":
	default:
		return "", "", exitUsage, fmt.Errorf("scheme %q cannot be signed (want standard-webhooks, github or token)", scheme)
	}
	return secret, scheme, exitOK, nil
}

func readBody(path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(io.LimitReader(os.Stdin, 64<<20))
	}
	return os.ReadFile(path)
}

// cmdSign prints the headers a sender would add to a body, or a curl command.
func (e *env) cmdSign(args []string) int {
	var s secretFlags
	fs := e.secretFlagSet("sign", &s)
	id := fs.String("id", "", "webhook-id (default: a new msg_ id)")
	ts := fs.Int64("timestamp", 0, "webhook-timestamp in Unix seconds (default: now)")
	curl := fs.String("curl", "", "print a curl command that POSTs the signed body to this URL")
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	secret, scheme, code, err := e.resolveSecret(&s)
	if err != nil {
		fmt.Fprintln(e.stderr, "edgehook sign:", err)
		return code
	}
	body, err := readBody(s.body)
	if err != nil {
		fmt.Fprintln(e.stderr, "edgehook sign:", err)
		return exitUsage
	}
	now := time.Now()
	if *ts != 0 {
		now = time.Unix(*ts, 0)
	}
	if *id == "" {
		*id = "msg_" + strconv.FormatInt(now.UnixNano(), 36)
	}
	var headers [][2]string
	switch scheme {
	case webhook.SchemeStandard:
		keys, err := webhook.DecodeKeys(secret)
		if err != nil {
			fmt.Fprintln(e.stderr, "edgehook sign:", err)
			return exitUsage
		}
		var sigs []string
		for _, k := range keys {
			sigs = append(sigs, webhook.Sign(k, *id, now, body))
		}
		headers = [][2]string{{webhook.HeaderID, *id}, {webhook.HeaderTimestamp, strconv.FormatInt(now.Unix(), 10)},
			{webhook.HeaderSignature, strings.Join(sigs, " ")}}
	case webhook.SchemeGitHub:
		headers = [][2]string{{webhook.HeaderGitHub, webhook.SignGitHub([]byte(webhook.SplitSecrets(secret)[0]), body)}, {webhook.HeaderID, *id}}
	case "token":
		headers = [][2]string{{webhook.HeaderToken, webhook.SplitSecrets(secret)[0]}, {webhook.HeaderID, *id}}
	}
	if *curl == "" {
		for _, h := range headers {
			fmt.Fprintf(e.stdout, "%s: %s\n", h[0], h[1])
		}
		return exitOK
	}
	fmt.Fprintf(e.stdout, "curl -sS -X POST %s -H %s", shellQuote(*curl), shellQuote("Content-Type: application/json"))
	for _, h := range headers {
		fmt.Fprintf(e.stdout, " -H %s", shellQuote(h[0]+": "+h[1]))
	}
	fmt.Fprintf(e.stdout, " --data-binary %s\n", shellQuote(string(body)))
	return exitOK
}

// cmdVerify checks headers and a body against a secret: exit 0 if valid, 1 if not.
func (e *env) cmdVerify(args []string) int {
	var s secretFlags
	fs := e.secretFlagSet("verify", &s)
	var hs headerFlags
	fs.Var(&hs, "H", `a header, "Name: value" (repeat it)`)
	headersFile := fs.String("headers-file", "", "a file of header lines (e.g. from curl -D)")
	tolerance := fs.Duration("tolerance", 5*time.Minute, "accepted clock difference for webhook-timestamp")
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	secret, scheme, code, err := e.resolveSecret(&s)
	if err != nil {
		fmt.Fprintln(e.stderr, "edgehook verify:", err)
		return code
	}
	h := map[string]string{}
	add := func(line string) {
		if k, v, ok := strings.Cut(line, ":"); ok {
			h[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
		}
	}
	for _, line := range hs {
		add(line)
	}
	if *headersFile != "" {
		f, err := os.Open(*headersFile)
		if err != nil {
			fmt.Fprintln(e.stderr, "edgehook verify:", err)
			return exitUsage
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			add(sc.Text())
		}
		f.Close()
	}
	body, err := readBody(s.body)
	if err != nil {
		fmt.Fprintln(e.stderr, "edgehook verify:", err)
		return exitUsage
	}
	switch scheme {
	case webhook.SchemeStandard:
		keys, kerr := webhook.DecodeKeys(secret)
		if kerr != nil {
			fmt.Fprintln(e.stderr, "edgehook verify:", kerr)
			return exitUsage
		}
		err = webhook.Verify(keys, h[webhook.HeaderID], h[webhook.HeaderTimestamp], h[webhook.HeaderSignature], body, time.Now(), *tolerance)
	case webhook.SchemeGitHub:
		var keys [][]byte
		for _, s := range webhook.SplitSecrets(secret) {
			keys = append(keys, []byte(s))
		}
		err = webhook.VerifyGitHub(keys, h[strings.ToLower(webhook.HeaderGitHub)], body)
	case "token":
		err = webhook.VerifyToken(webhook.SplitSecrets(secret), h[strings.ToLower(webhook.HeaderToken)])
	}
	if err != nil {
		fmt.Fprintln(e.stdout, "invalid:", webhook.Describe(err))
		return exitFailure
	}
	fmt.Fprintln(e.stdout, "valid")
	return exitOK
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
