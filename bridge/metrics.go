package bridge

import (
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/VictoriaMetrics/metrics"

	"github.com/edgehook/edgehook/rules"
)

// metricSet holds edgehook's Prometheus metrics. Names start with edgehook_;
// label values come only from config names (rules, endpoints, routes) and fixed
// words, never from topics, payloads or URLs. Safe for concurrent use.
type metricSet struct {
	set *metrics.Set

	received      *metrics.Counter
	retained      *metrics.Counter
	redelivered   *metrics.Counter
	rejected      map[rules.Reject]*metrics.Counter
	commits       *metrics.Counter
	commitErrs    *metrics.Counter
	commitTime    *metrics.PrometheusHistogram // ingest commits: durable before the MQTT ack
	reloadsOK     *metrics.Counter
	reloadsFailed *metrics.Counter
	queueWait     *metrics.PrometheusHistogram // event time → first attempt starts
	reconnects    *metrics.Counter             // set from the MQTT client at each scrape

	mu    sync.Mutex // guards rules
	rules map[string]*ruleMetrics
}

func newMetricSet() *metricSet {
	// # TYPE lines make histograms and counters self-describing to any
	// Prometheus parser. The library's switch is process-wide; edgehook
	// always wants it on.
	metrics.ExposeMetadata(true)
	s := metrics.NewSet()
	m := &metricSet{
		set:           s,
		received:      s.NewCounter(`edgehook_messages_received_total`),
		retained:      s.NewCounter(`edgehook_messages_skipped_total{reason="retained"}`),
		redelivered:   s.NewCounter(`edgehook_messages_skipped_total{reason="redelivered"}`),
		rejected:      map[rules.Reject]*metrics.Counter{},
		rules:         map[string]*ruleMetrics{},
		commits:       s.NewCounter(`edgehook_store_commits_total`),
		commitErrs:    s.NewCounter(`edgehook_store_commit_errors_total`),
		commitTime:    s.NewPrometheusHistogramExt(`edgehook_store_commit_seconds`, fastBuckets),
		reloadsOK:     s.NewCounter(`edgehook_config_reloads_total{result="ok"}`),
		reloadsFailed: s.NewCounter(`edgehook_config_reloads_total{result="error"}`),
		queueWait:     s.NewPrometheusHistogramExt(`edgehook_delivery_wait_seconds`, fastBuckets),
		reconnects:    s.NewCounter(`edgehook_mqtt_reconnects_total`),
	}
	for _, r := range rules.Rejects() {
		m.rejected[r] = s.NewCounter(fmt.Sprintf(`edgehook_messages_rejected_total{reason=%q}`, r.String()))
	}
	return m
}

// fastBuckets resolve sub-millisecond to second durations.
var fastBuckets = []float64{.0001, .00025, .0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 5}

// label quotes a label value the way the Prometheus text format wants.
func label(v string) string {
	if !strings.ContainsAny(v, "\\\"\n") {
		return `"` + v + `"`
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(v) + `"`
}

// ruleMetrics are one rule's counters, looked up once per rule.
type ruleMetrics struct {
	evaluated *metrics.Counter
	fired     *metrics.Counter
	resolved  *metrics.Counter
	rejected  map[rules.Reject]*metrics.Counter
}

func (m *metricSet) forRule(rule string) *ruleMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	if rm, ok := m.rules[rule]; ok {
		return rm
	}
	l := label(rule)
	rm := &ruleMetrics{
		evaluated: m.set.GetOrCreateCounter(`edgehook_rule_evaluations_total{rule=` + l + `}`),
		fired:     m.set.GetOrCreateCounter(`edgehook_rule_events_total{rule=` + l + `,type="rule.fired"}`),
		resolved:  m.set.GetOrCreateCounter(`edgehook_rule_events_total{rule=` + l + `,type="rule.resolved"}`),
		rejected:  map[rules.Reject]*metrics.Counter{},
	}
	for _, r := range rules.Rejects() {
		rm.rejected[r] = m.set.GetOrCreateCounter(`edgehook_readings_rejected_total{rule=` + l + `,reason="` + r.String() + `"}`)
	}
	m.rules[rule] = rm
	return rm
}

// targetMetrics are one endpoint's counters and latency histogram.
type targetMetrics struct {
	ok, retry, rejected, gone *metrics.Counter
	dead                      *metrics.Counter
	latency                   *metrics.PrometheusHistogram
}

func (m *metricSet) forTarget(target string) *targetMetrics {
	l := label(target)
	c := func(result string) *metrics.Counter {
		return m.set.GetOrCreateCounter(`edgehook_deliveries_total{endpoint=` + l + `,result="` + result + `"}`)
	}
	return &targetMetrics{
		ok: c("ok"), retry: c("retry"), rejected: c("rejected"), gone: c("gone"),
		dead: m.set.GetOrCreateCounter(`edgehook_dead_letters_total{endpoint=` + l + `}`),
		latency: m.set.GetOrCreatePrometheusHistogramExt(`edgehook_delivery_latency_seconds{endpoint=`+l+`}`,
			[]float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 3600}),
	}
}

func (m *metricSet) gauge(name string, f func() float64) {
	m.set.GetOrCreateGauge(name, f)
}

// write renders every metric, plus Go runtime and process metrics.
func (m *metricSet) write(w io.Writer) {
	m.set.WritePrometheus(w)
	metrics.WriteProcessMetrics(w)
}
