package bridge

import (
	"fmt"
	"io"
	"strings"

	"github.com/VictoriaMetrics/metrics"

	"github.com/edgehook/edgehook/rules"
)

// metricSet holds edgehook's Prometheus metrics. Names start with edgehook_;
// label values come only from config names (rules, endpoints, routes) and fixed
// words, never from topics, payloads or URLs. Safe for concurrent use.
type metricSet struct {
	set *metrics.Set

	received    *metrics.Counter
	retained    *metrics.Counter
	redelivered *metrics.Counter
	rejected    map[rules.Reject]*metrics.Counter
	commits     *metrics.Counter
	commitErrs  *metrics.Counter
}

func newMetricSet() *metricSet {
	s := metrics.NewSet()
	m := &metricSet{
		set:         s,
		received:    s.NewCounter(`edgehook_messages_received_total`),
		retained:    s.NewCounter(`edgehook_messages_skipped_total{reason="retained"}`),
		redelivered: s.NewCounter(`edgehook_messages_skipped_total{reason="redelivered"}`),
		rejected:    map[rules.Reject]*metrics.Counter{},
		commits:     s.NewCounter(`edgehook_store_commits_total`),
		commitErrs:  s.NewCounter(`edgehook_store_commit_errors_total`),
	}
	for _, r := range rules.Rejects() {
		m.rejected[r] = s.NewCounter(fmt.Sprintf(`edgehook_messages_rejected_total{reason=%q}`, r.String()))
	}
	return m
}

// label quotes a label value the way the Prometheus text format wants.
func label(v string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(v) + `"`
}

func (m *metricSet) counter(format string, args ...string) *metrics.Counter {
	vals := make([]any, len(args))
	for i, a := range args {
		vals[i] = label(a)
	}
	return m.set.GetOrCreateCounter(fmt.Sprintf(format, vals...))
}

func (m *metricSet) ruleEvaluated(rule string) {
	m.counter(`edgehook_rule_evaluations_total{rule=%s}`, rule).Inc()
}

func (m *metricSet) ruleFired(rule, typ string) {
	m.counter(`edgehook_rule_events_total{rule=%s,type=%s}`, rule, typ).Inc()
}

func (m *metricSet) ruleRejected(rule string, r rules.Reject) {
	m.counter(`edgehook_readings_rejected_total{rule=%s,reason=%s}`, rule, r.String()).Inc()
}

func (m *metricSet) delivery(target, result string) {
	m.counter(`edgehook_deliveries_total{endpoint=%s,result=%s}`, target, result).Inc()
}

func (m *metricSet) deadLetter(target string, n int) {
	m.counter(`edgehook_dead_letters_total{endpoint=%s}`, target).Add(n)
}

func (m *metricSet) latency(target string, seconds float64) {
	m.set.GetOrCreatePrometheusHistogramExt(fmt.Sprintf(`edgehook_delivery_latency_seconds{endpoint=%s}`, label(target)),
		[]float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 3600}).Update(seconds)
}

func (m *metricSet) gauge(name string, f func() float64) {
	m.set.GetOrCreateGauge(name, f)
}

// write renders every metric, plus Go runtime and process metrics.
func (m *metricSet) write(w io.Writer) {
	m.set.WritePrometheus(w)
	metrics.WriteProcessMetrics(w)
}
