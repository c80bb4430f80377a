package bridge

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/edgehook/edgehook/rules"
)

// Config is a loaded, validated edgehook.toml plus everything it references
// (secret files read, rule files found). Load builds it; nothing mutates it
// afterwards, so it is safe to share between goroutines.
type Config struct {
	File      string       `toml:"-"` // path of the main config file
	MQTT      MQTTConfig   `toml:"mqtt"`
	HTTP      HTTPConfig   `toml:"http"`
	Store     StoreConfig  `toml:"store"`
	Rules     RulesConfig  `toml:"rules"`
	Endpoints []Endpoint   `toml:"endpoint"`
	Inbound   []Inbound    `toml:"inbound"`
	Rule      []rules.Spec `toml:"rule"` // rules may also be written in the main file

	RuleFiles []string `toml:"-"` // rule files matched by Rules.Files, in load order
}

// MQTTConfig is [mqtt].
type MQTTConfig struct {
	Broker       string    `toml:"broker"`
	ClientID     string    `toml:"client_id"`
	Username     string    `toml:"username"`
	Password     Secret    `toml:"password"`
	CleanSession bool      `toml:"clean_session"`
	QoS          int       `toml:"qos"`
	StatusTopic  string    `toml:"status_topic"`
	TLS          TLSConfig `toml:"tls"`
	// MaxPayload is the largest sensor payload evaluated; larger ones are
	// rejected as too_large. An extension to PRODUCT.md (default 256KiB).
	MaxPayload Size `toml:"max_payload"`
	// KeepAlive is the MQTT keepalive interval. An extension (default 30s).
	KeepAlive time.Duration `toml:"keepalive"`
}

// TLSConfig is [mqtt.tls].
type TLSConfig struct {
	CAFile   string `toml:"ca_file"`
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
}

// HTTPConfig is [http].
type HTTPConfig struct {
	Listen         string   `toml:"listen"`
	TLSCertFile    string   `toml:"tls_cert_file"`
	TLSKeyFile     string   `toml:"tls_key_file"`
	TrustedProxies []string `toml:"trusted_proxies"`
	AdminToken     Secret   `toml:"admin_token"`
}

// StoreConfig is [store].
type StoreConfig struct {
	Dir      string `toml:"dir"`
	Sync     string `toml:"sync"` // "fsync" or "os"
	MaxBytes Size   `toml:"max_bytes"`
}

// RulesConfig is [rules].
type RulesConfig struct {
	Files []string `toml:"files"`
	Watch bool     `toml:"watch"`
}

// Endpoint is one [[endpoint]]: where webhooks go.
type Endpoint struct {
	Name        string            `toml:"name"`
	URL         string            `toml:"url"`
	Method      string            `toml:"method"`
	Signing     string            `toml:"signing"` // standard-webhooks | github | none
	Secret      Secret            `toml:"secret"`
	Headers     map[string]string `toml:"headers"`
	Timeout     time.Duration     `toml:"timeout"`
	Concurrency int               `toml:"concurrency"`
	Rate        float64           `toml:"rate"`
	MaxAge      time.Duration     `toml:"max_age"`
}

// Inbound is one [[inbound]] route: signed webhooks we accept and publish.
type Inbound struct {
	Name        string        `toml:"name"`
	Path        string        `toml:"path"`
	Verify      string        `toml:"verify"` // standard-webhooks | github | token | none
	Secret      Secret        `toml:"secret"`
	Tolerance   time.Duration `toml:"tolerance"`
	AllowIPs    []string      `toml:"allow_ips"`
	Rate        float64       `toml:"rate"`
	Burst       int           `toml:"burst"`
	MaxBody     Size          `toml:"max_body"`
	Topic       string        `toml:"topic"`
	AllowTopics []string      `toml:"allow_topics"`
	Payload     *string       `toml:"payload"`
	QoS         int           `toml:"qos"`
	Retain      bool          `toml:"retain"`
}

// Default returns the configuration used for every key the file leaves out
// (PRODUCT.md §2).
func Default() Config {
	return Config{
		MQTT: MQTTConfig{
			Broker:      "tcp://127.0.0.1:1883",
			ClientID:    "edgehook",
			QoS:         1,
			StatusTopic: "edgehook/status",
			MaxPayload:  256 << 10,
			KeepAlive:   30 * time.Second,
		},
		HTTP:  HTTPConfig{Listen: "127.0.0.1:8321"},
		Store: StoreConfig{Dir: "/var/lib/edgehook", Sync: "fsync", MaxBytes: 256 << 20},
		Rules: RulesConfig{Files: []string{"/etc/edgehook/rules.d/*.toml"}},
	}
}

func (e *Endpoint) setDefaults() {
	e.Method = "POST"
	e.Signing = "standard-webhooks"
	e.Timeout = 15 * time.Second
	e.Concurrency = 4
	e.MaxAge = 24 * time.Hour
}

func (in *Inbound) setDefaults() {
	in.Verify = "standard-webhooks"
	in.Tolerance = 5 * time.Minute
	in.Rate = 5
	in.Burst = 10
	in.MaxBody = 64 << 10
	in.QoS = 1
}

// Secret is a secret value given inline (`secret = "…"`) or read from a file
// (`secret_file = "path"`). It never prints its value: String, Format, LogValue
// and MarshalText all give "REDACTED". Use Reveal where the value is needed.
type Secret struct {
	value string
	File  string // set when the value came from a file
	Set   bool   // the secret was configured (possibly empty)
}

// NewSecret returns a Secret holding v.
func NewSecret(v string) Secret { return Secret{value: v, Set: true} }

// Reveal returns the secret value.
func (s Secret) Reveal() string { return s.value }

const redacted = "REDACTED"

func (s Secret) String() string               { return redacted }
func (s Secret) GoString() string             { return redacted }
func (s Secret) LogValue() slog.Value         { return slog.StringValue(redacted) }
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Format makes every fmt verb print REDACTED.
func (s Secret) Format(f fmt.State, _ rune) { fmt.Fprint(f, redacted) }

// Size is a byte count written as a string such as "64KiB" or "256MiB".
type Size int64

// ConfigError is one configuration problem. It prints as
// "file:line: key: problem", the form `edgehook check` lists.
type ConfigError struct {
	File string
	Line int    // 0 when unknown
	Key  string // dotted key path without indices, e.g. "endpoint.timeout"; may be empty
	Err  error
}

func (e *ConfigError) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if e.Key == "" {
		return loc + ": " + e.Err.Error()
	}
	return loc + ": " + e.Key + ": " + e.Err.Error()
}

func (e *ConfigError) Unwrap() error { return e.Err }
