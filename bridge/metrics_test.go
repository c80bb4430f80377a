package bridge

import (
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape fetches /metrics and parses it with the Prometheus text parser.
func scrape(t *testing.T, d *daemon) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(d.httpURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q", ct)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return fams
}

// value sums the samples of a family whose labels include want.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return 0
	}
	var sum float64
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Histogram != nil:
			sum += float64(m.Histogram.GetSampleCount())
		case m.Untyped != nil:
			sum += m.Untyped.GetValue()
		}
	}
	return sum
}

// /metrics parses as Prometheus text, has the families PRODUCT.md §7 and
// issue 5 name with the right types, its counters move with traffic, and its
// labels carry config names only, never topics or URLs.
func TestMetricsParseAndMove(t *testing.T) {
	b := startBroker(t)
	rx := newReceiver(t)
	inbound := `
[[inbound]]
name = "cmd"
path = "/hooks/cmd"
secret = "inbound-secret"
topic = "home/cmd"
`
	d := startDaemon(t, testConfig(t.TempDir(), b.URL(), rx.URL(), coldRule+inbound))
	before := scrape(t, d)
	types := map[string]dto.MetricType{
		"edgehook_messages_received_total":  dto.MetricType_COUNTER,
		"edgehook_messages_rejected_total":  dto.MetricType_COUNTER,
		"edgehook_rule_evaluations_total":   dto.MetricType_COUNTER,
		"edgehook_rule_events_total":        dto.MetricType_COUNTER,
		"edgehook_outbox_jobs":              dto.MetricType_GAUGE,
		"edgehook_outbox_bytes":             dto.MetricType_GAUGE,
		"edgehook_deliveries_total":         dto.MetricType_COUNTER,
		"edgehook_delivery_latency_seconds": dto.MetricType_HISTOGRAM,
		"edgehook_dead_letters_total":       dto.MetricType_COUNTER,
		"edgehook_dead_letters":             dto.MetricType_GAUGE,
		"edgehook_inbound_requests_total":   dto.MetricType_COUNTER,
		"edgehook_mqtt_connected":           dto.MetricType_GAUGE,
		"edgehook_mqtt_reconnects_total":    dto.MetricType_COUNTER,
		"edgehook_config_reloads_total":     dto.MetricType_COUNTER,
		"edgehook_build_info":               dto.MetricType_GAUGE,
		"edgehook_store_commit_seconds":     dto.MetricType_HISTOGRAM,
	}
	if v := value(before, "edgehook_mqtt_connected", nil); v != 1 {
		t.Errorf("edgehook_mqtt_connected = %v", v)
	}

	p := newPublisher(t, b.URL())
	p.temp("home/a/temperature", 20)
	p.temp("home/a/temperature", 10) // fires
	p.pub("home/a/temperature", "not json")
	rx.waitDelivered(1, 10*time.Second)
	post(t, d.httpURL+"/hooks/cmd", nil, []byte(`{}`)) // 401
	d.reload(t, testConfig(d.cfg.Store.Dir, b.URL(), rx.URL(), coldRule+inbound))

	var after map[string]*dto.MetricFamily
	waitFor(t, "the delivery to be counted", func() bool {
		after = scrape(t, d)
		return value(after, "edgehook_deliveries_total", map[string]string{"endpoint": "rx", "result": "ok"}) == 1
	})
	for name, typ := range types {
		f := after[name]
		if f == nil {
			t.Errorf("%s missing", name)
			continue
		}
		if f.GetType() != typ {
			t.Errorf("%s is a %v, want %v", name, f.GetType(), typ)
		}
	}
	moved := []struct {
		name   string
		labels map[string]string
		delta  float64
	}{
		{"edgehook_messages_received_total", nil, 3},
		{"edgehook_messages_rejected_total", nil, 1},
		{"edgehook_rule_evaluations_total", map[string]string{"rule": "cold"}, 2},
		{"edgehook_rule_events_total", map[string]string{"rule": "cold", "type": "rule.fired"}, 1},
		{"edgehook_deliveries_total", map[string]string{"endpoint": "rx", "result": "ok"}, 1},
		{"edgehook_delivery_latency_seconds", map[string]string{"endpoint": "rx"}, 1},
		{"edgehook_inbound_requests_total", map[string]string{"route": "cmd", "code": "401"}, 1},
		{"edgehook_config_reloads_total", map[string]string{"result": "ok"}, 1},
	}
	for _, m := range moved {
		if got := value(after, m.name, m.labels) - value(before, m.name, m.labels); got != m.delta {
			t.Errorf("%s%v moved by %v, want %v", m.name, m.labels, got, m.delta)
		}
	}
	if v := value(after, "edgehook_build_info", map[string]string{"version": "test"}); v != 1 {
		t.Errorf("edgehook_build_info{version=test} = %v", v)
	}
	// Labels name config things only.
	for name, f := range after {
		if !strings.HasPrefix(name, "edgehook_") && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") {
			t.Errorf("metric %s is not edgehook_…", name)
		}
		if !strings.HasPrefix(name, "edgehook_") {
			continue // Go runtime metrics (go_info_ext names GOROOT)
		}
		for _, m := range f.Metric {
			for _, l := range m.Label {
				if v := l.GetValue(); strings.Contains(v, "/") || strings.Contains(v, "inbound-secret") || strings.Contains(v, "127.0.0.1") {
					t.Errorf("%s has label %s=%q: a topic, URL or secret", name, l.GetName(), v)
				}
			}
		}
	}
}
