package bridge

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/edgehook/edgehook/rules"
)

func reflectValue(v any) reflect.Value { return reflect.ValueOf(v).Elem() }

// checkName checks the name of element p (an endpoint or inbound route):
// required, label-safe (it becomes a metric label and a store key), unique.
func checkName(d *decoder, p, name, kind string, seen map[string]bool) {
	switch {
	case name == "":
		d.fail(p+".name", "required")
	case !nameRE.MatchString(name):
		d.fail(p+".name", "%q: use letters, digits, '.', '_' and '-' (at most 64)", name)
	case seen[name]:
		d.fail(p+".name", "duplicate %s name %q", kind, name)
	}
	seen[name] = true
}

// validPort reports whether port is empty (the scheme's default) or a decimal
// port number in range; zero (any free port) only where allowZero.
func validPort(port string, allowZero bool) bool {
	if port == "" {
		return true
	}
	n, err := strconv.ParseUint(port, 10, 16)
	return err == nil && (n > 0 || allowZero)
}

// nameRE is what endpoint and inbound names may look like: they become metric
// labels and store keys.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// validate checks values and relations the decoder cannot, and makes relative
// paths absolute. Problems are recorded on d.
func (l *loader) validate(d *decoder, cfg *Config) {
	defer func() {
		l.errs = append(l.errs, d.errs...)
		d.errs = nil
	}()
	m := &cfg.MQTT
	if m.Broker != "embedded" {
		u, err := url.Parse(m.Broker)
		switch {
		case err != nil || u.Host == "":
			d.fail("mqtt.broker", "want tcp://host:port, ssl://, ws://, wss:// or \"embedded\", got %q", m.Broker)
		case !oneOf(u.Scheme, "tcp", "ssl", "tls", "mqtt", "mqtts", "ws", "wss"):
			d.fail("mqtt.broker", "unsupported scheme %q (want tcp, ssl, ws or wss)", u.Scheme)
		case !validPort(u.Port(), false):
			d.fail("mqtt.broker", "port %q is out of range (1-65535)", u.Port())
		}
	}
	if m.ClientID == "" || !utf8.ValidString(m.ClientID) || strings.ContainsRune(m.ClientID, 0) {
		d.fail("mqtt.client_id", "must be a non-empty, stable client id (the broker keeps our session under it)")
	}
	if m.QoS < 0 || m.QoS > 2 {
		d.fail("mqtt.qos", "must be 0, 1 or 2")
	}
	if m.StatusTopic != "" {
		if err := rules.CheckPublishTopic(m.StatusTopic, false); err != nil {
			d.fail("mqtt.status_topic", "%v", err)
		}
	}
	if m.MaxPayload < 1 || m.MaxPayload > 256<<20 {
		d.fail("mqtt.max_payload", "must be between 1B and 256MiB")
	}
	if m.KeepAlive < time.Second || m.KeepAlive > 18*time.Hour {
		d.fail("mqtt.keepalive", "must be between 1s and 18h")
	}
	if (m.TLS.CertFile == "") != (m.TLS.KeyFile == "") {
		d.fail("mqtt.tls.cert_file", "cert_file and key_file go together")
	}
	for _, f := range []struct {
		key string
		p   *string
	}{{"mqtt.tls.ca_file", &m.TLS.CAFile}, {"mqtt.tls.cert_file", &m.TLS.CertFile}, {"mqtt.tls.key_file", &m.TLS.KeyFile},
		{"http.tls_cert_file", &cfg.HTTP.TLSCertFile}, {"http.tls_key_file", &cfg.HTTP.TLSKeyFile}} {
		*f.p = l.abs(*f.p)
		if *f.p != "" {
			if _, err := readLimited(*f.p); err != nil {
				d.fail(f.key, "%s: %v", *f.p, err)
			}
		}
	}

	h := &cfg.HTTP
	if _, port, err := net.SplitHostPort(h.Listen); err != nil || port == "" {
		d.fail("http.listen", "want host:port such as 127.0.0.1:8321, got %q", h.Listen)
	} else if !validPort(port, true) {
		d.fail("http.listen", "port %q is out of range (0-65535)", port)
	}
	if (h.TLSCertFile == "") != (h.TLSKeyFile == "") {
		d.fail("http.tls_cert_file", "tls_cert_file and tls_key_file go together")
	}
	for i, p := range h.TrustedProxies {
		if _, err := parsePrefix(p); err != nil {
			d.fail(fmt.Sprintf("http.trusted_proxies[%d]", i), "%v", err)
		}
	}

	s := &cfg.Store
	if s.Dir == "" {
		d.fail("store.dir", "required")
	}
	s.Dir = l.abs(s.Dir)
	if !oneOf(s.Sync, "fsync", "os") {
		d.fail("store.sync", "want \"fsync\" (survives power loss) or \"os\" (survives a crash), got %q", s.Sync)
	}
	if s.MaxBytes < 1<<20 {
		d.fail("store.max_bytes", "must be at least 1MiB")
	}

	for i, p := range cfg.Rules.Files {
		if _, err := filepath.Match(p, ""); err != nil {
			d.fail(fmt.Sprintf("rules.files[%d]", i), "bad pattern %q: %v", p, err)
		}
	}

	l.validateInbound(d, cfg)
	seen := map[string]bool{}
	for i := range cfg.Endpoints {
		e := &cfg.Endpoints[i]
		p := fmt.Sprintf("endpoint[%d]", i)
		checkName(d, p, e.Name, "endpoint", seen)
		u, err := url.Parse(e.URL)
		switch {
		case e.URL == "":
			d.fail(p+".url", "required")
		case err != nil || u.Host == "" || !oneOf(u.Scheme, "http", "https"):
			d.fail(p+".url", "want an absolute http:// or https:// URL")
		case u.User != nil:
			d.fail(p+".url", "credentials in the URL would be logged; put them in headers (Authorization) instead")
		case !validPort(u.Port(), false):
			d.fail(p+".url", "port %q is out of range (1-65535)", u.Port())
		}
		if !oneOf(e.Method, "POST", "PUT", "PATCH") {
			d.fail(p+".method", "want POST, PUT or PATCH, got %q", e.Method)
		}
		switch e.Signing {
		case "standard-webhooks", "github":
			if !e.Secret.Set || (e.Secret.File == "" && e.Secret.Reveal() == "") {
				d.fail(p+".signing", "signing = %q needs secret or secret_file", e.Signing)
			}
		case "none":
		default:
			d.fail(p+".signing", "want \"standard-webhooks\", \"github\" or \"none\", got %q", e.Signing)
		}
		for k := range e.Headers {
			switch {
			case !validHeaderName(k):
				d.fail(p+".headers."+k, "invalid header name")
			case oneOf(http.CanonicalHeaderKey(k), "Webhook-Id", "Webhook-Timestamp", "Webhook-Signature", "X-Hub-Signature-256", "Content-Length", "Host"):
				d.fail(p+".headers."+k, "edgehook sets this header itself")
			case strings.ContainsAny(e.Headers[k], "\r\n\x00"):
				d.fail(p+".headers."+k, "header value contains a control character")
			}
		}
		if e.Timeout <= 0 || e.Timeout > 10*time.Minute {
			d.fail(p+".timeout", "must be between 1ms and 10m")
		}
		if e.Concurrency < 1 || e.Concurrency > 256 {
			d.fail(p+".concurrency", "must be between 1 and 256")
		}
		if e.Rate < 0 {
			d.fail(p+".rate", "must be >= 0 (0 = unlimited)")
		}
		if e.MaxAge <= 0 {
			d.fail(p+".max_age", "must be positive")
		}
	}
}

// validateInbound checks the [[inbound]] routes and compiles their templates.
func (l *loader) validateInbound(d *decoder, cfg *Config) {
	seen, paths := map[string]bool{}, map[string]bool{}
	for i := range cfg.Inbound {
		in := &cfg.Inbound[i]
		p := fmt.Sprintf("inbound[%d]", i)
		checkName(d, p, in.Name, "inbound route", seen)
		switch {
		case in.Path == "":
			d.fail(p+".path", "required")
		case !strings.HasPrefix(in.Path, "/") || strings.ContainsAny(in.Path, "?#% \t\r\n") || len(in.Path) > 256:
			d.fail(p+".path", "want a plain URL path such as \"/hooks/heating\"")
		case reservedPath(in.Path):
			d.fail(p+".path", "%s is edgehook's own; choose another path (e.g. under /hooks/)", in.Path)
		case paths[in.Path]:
			d.fail(p+".path", "two routes use the path %s", in.Path)
		}
		paths[in.Path] = true
		switch in.Verify {
		case "standard-webhooks", "github", "token":
			if !in.Secret.Set || (in.Secret.File == "" && in.Secret.Reveal() == "") {
				d.fail(p+".verify", "verify = %q needs secret or secret_file", in.Verify)
			}
		case "none":
			if len(in.AllowIPs) == 0 {
				d.fail(p+".verify", `verify = "none" needs allow_ips: an unsigned route must at least be limited to known addresses`)
			}
		default:
			d.fail(p+".verify", "want \"standard-webhooks\", \"github\", \"token\" or \"none\", got %q", in.Verify)
		}
		if in.Tolerance <= 0 || in.Tolerance > 24*time.Hour {
			d.fail(p+".tolerance", "must be between 1s and 24h")
		}
		for j, a := range in.AllowIPs {
			if _, err := parsePrefix(a); err != nil {
				d.fail(fmt.Sprintf("%s.allow_ips[%d]", p, j), "%v", err)
			}
		}
		if in.Rate < 0 {
			d.fail(p+".rate", "must be >= 0 (0 = unlimited)")
		}
		if in.Burst < 1 || in.Burst > 10000 {
			d.fail(p+".burst", "must be between 1 and 10000")
		}
		if in.MaxBody < 1 || in.MaxBody > 16<<20 {
			d.fail(p+".max_body", "must be between 1B and 16MiB")
		}
		if in.QoS < 0 || in.QoS > 2 {
			d.fail(p+".qos", "must be 0, 1 or 2")
		}
		if in.Topic == "" {
			d.fail(p+".topic", "required")
		} else if t, err := compileTemplate("topic", in.Topic, inboundFuncs); err != nil {
			d.fail(p+".topic", "template does not compile: %v", err)
		} else if t.static {
			if err := rules.CheckPublishTopic(in.Topic, false); err != nil {
				d.fail(p+".topic", "%v", err)
			}
		} else if len(in.AllowTopics) == 0 {
			d.fail(p+".allow_topics", "required when topic is a template: list the MQTT filters the rendered topic may match")
		}
		for j, f := range in.AllowTopics {
			if _, err := rules.ParseFilter(f); err != nil {
				d.fail(fmt.Sprintf("%s.allow_topics[%d]", p, j), "%q is not a valid MQTT filter: %v", f, err)
			}
		}
		if in.Payload != nil {
			if _, err := compileTemplate("payload", *in.Payload, inboundFuncs); err != nil {
				d.fail(p+".payload", "template does not compile: %v", err)
			}
		}
	}
}

// reservedPath reports whether path belongs to edgehook's own endpoints.
func reservedPath(path string) bool {
	switch path {
	case "/", "/healthz", "/readyz", "/metrics":
		return true
	}
	return path == "/api" || strings.HasPrefix(path, "/api/") || strings.HasPrefix(path, "/debug/")
}

func oneOf(s string, set ...string) bool {
	for _, x := range set {
		if s == x {
			return true
		}
	}
	return false
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// parsePrefix accepts a CIDR ("192.168.1.0/24") or a single address.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("invalid CIDR %q", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid address or CIDR %q", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}
