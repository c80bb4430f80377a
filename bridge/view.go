package bridge

import (
	"sort"
	"sync"
	"time"

	"github.com/edgehook/edgehook/rules"
)

// ruleView is what the status page shows of the rules: the rule set in force
// and a copy of every series' state with its last event. Ingest owns the
// engine and writes here after each commit (only the series that changed);
// HTTP handlers read snapshots. Safe for concurrent use.
type ruleView struct {
	mu     sync.Mutex
	set    *rules.Set
	series map[rules.SeriesKey]*seriesView
	last   map[string]lastEvent // by rule: its latest event
}

// seriesView is the part of a rules.State a person wants to see.
type seriesView struct {
	Seen, Active, Fired, Pending bool
	HasValue                     bool
	Value                        float64
	LastAt                       time.Time // last valid reading
	Since                        time.Time // the condition has held since
	LastFired                    time.Time // the series' last rule.fired
	Last                         lastEvent // the series' latest event
}

// lastEvent is one rule.fired or rule.resolved, for the status page.
type lastEvent struct {
	Series string    `json:"series"`
	Type   string    `json:"type"`
	At     time.Time `json:"at"`
}

func newRuleView(set *rules.Set) *ruleView {
	return &ruleView{set: set, series: map[rules.SeriesKey]*seriesView{}, last: map[string]lastEvent{}}
}

// update copies the states ingest just committed.
func (v *ruleView) update(states map[rules.SeriesKey]rules.State) {
	if len(states) == 0 {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for k, st := range states {
		sv := v.series[k]
		if sv == nil {
			sv = &seriesView{}
			v.series[k] = sv
		}
		sv.Seen, sv.Active, sv.Fired = st.Seen, st.Active, st.Fired
		sv.Pending = !st.Since.IsZero() && !st.Active
		sv.HasValue, sv.Value, sv.LastAt, sv.Since, sv.LastFired = st.HasLast, st.Last, st.LastAt, st.Since, st.LastFired
		if sv.Last.At.IsZero() && !st.LastFired.IsZero() {
			// Restored at start-up: the state remembers when it last fired.
			sv.Last = lastEvent{Series: k.Series, Type: "rule.fired", At: st.LastFired}
			if le, ok := v.last[k.Rule]; !ok || st.LastFired.After(le.At) {
				v.last[k.Rule] = sv.Last
			}
		}
	}
}

// event records a rule.fired or rule.resolved.
func (v *ruleView) event(rule, series, typ string, at time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	k := rules.SeriesKey{Rule: rule, Series: series}
	sv := v.series[k]
	if sv == nil {
		sv = &seriesView{}
		v.series[k] = sv
	}
	e := lastEvent{Series: series, Type: typ, At: at}
	sv.Last = e
	if typ == "rule.fired" {
		sv.LastFired = at
	}
	v.last[rule] = e
}

// swap installs a reloaded rule set and forgets the dropped series (and the
// last events of rules that are gone).
func (v *ruleView) swap(set *rules.Set, dropped []rules.SeriesKey) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.set = set
	for _, k := range dropped {
		delete(v.series, k)
	}
	for name := range v.last {
		if set.Rule(name) == nil {
			delete(v.last, name)
		}
	}
}

// maxSeriesShown bounds the series listed per rule on the status page and in
// /api/v1/status (a `+` filter may track thousands); the counts stay exact.
const maxSeriesShown = 100

// snapshot returns every rule with its series, firing ones first.
func (v *ruleView) snapshot() []RuleStatus {
	v.mu.Lock()
	defer v.mu.Unlock()
	byRule := map[string][]SeriesStatus{}
	lastFired := map[string]lastEvent{}
	for k, sv := range v.series {
		s := SeriesStatus{Series: k.Series, State: sv.state(), LastReading: timePtr(sv.LastAt), Since: timePtr(sv.Since),
			LastFired: timePtr(sv.LastFired)}
		if sv.LastFired.After(lastFired[k.Rule].At) {
			lastFired[k.Rule] = lastEvent{Series: k.Series, Type: "rule.fired", At: sv.LastFired}
		}
		if sv.HasValue {
			val := sv.Value
			s.Value = &val
		}
		if !sv.Last.At.IsZero() {
			le := sv.Last
			s.LastEvent = &le
		}
		byRule[k.Rule] = append(byRule[k.Rule], s)
	}
	var out []RuleStatus
	for _, r := range v.set.Rules() {
		rs := RuleStatus{Name: r.Name, Condition: r.Cond.String(), Topic: r.Filter.String(), Endpoints: r.Endpoints,
			Publishes: len(r.Publish)}
		if rs.Endpoints == nil {
			rs.Endpoints = []string{}
		}
		if le, ok := v.last[r.Name]; ok {
			rs.LastEvent = &le
		}
		if lf, ok := lastFired[r.Name]; ok {
			rs.LastFired = &lf
		}
		series := byRule[r.Name]
		rs.SeriesCount = len(series)
		for _, s := range series {
			if s.State == "firing" {
				rs.Firing++
			}
		}
		sort.Slice(series, func(i, j int) bool {
			if a, b := series[i].State == "firing", series[j].State == "firing"; a != b {
				return a
			}
			return series[i].Series < series[j].Series
		})
		if len(series) > maxSeriesShown {
			series = series[:maxSeriesShown]
		}
		rs.Series = series
		if rs.Series == nil {
			rs.Series = []SeriesStatus{}
		}
		out = append(out, rs)
	}
	return out
}

// state names a series' state for people: "firing" (the rule fired and has
// not resolved), "active" (the condition holds but the rule did not fire,
// e.g. in cooldown), "pending" (the condition holds, waiting out `for`), "ok",
// or "no reading" (nothing valid seen yet).
func (sv *seriesView) state() string {
	switch {
	case sv.Active && sv.Fired:
		return "firing"
	case sv.Active:
		return "active"
	case sv.Pending:
		return "pending"
	case sv.Seen:
		return "ok"
	}
	return "no reading"
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// inboundLog keeps the last few results of each inbound route for the status
// page. Safe for concurrent use.
type inboundLog struct {
	mu     sync.Mutex
	routes map[string]*inboundRing
}

// inboundRecent is how many results per route the status page shows.
const inboundRecent = 20

type inboundRing struct {
	buf  [inboundRecent]InboundResult
	next int
	n    int
}

func newInboundLog() *inboundLog { return &inboundLog{routes: map[string]*inboundRing{}} }

func (l *inboundLog) add(route string, r InboundResult) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ring := l.routes[route]
	if ring == nil {
		ring = &inboundRing{}
		l.routes[route] = ring
	}
	ring.buf[ring.next] = r
	ring.next = (ring.next + 1) % inboundRecent
	ring.n = min(ring.n+1, inboundRecent)
}

// recent returns a route's results, newest first.
func (l *inboundLog) recent(route string) []InboundResult {
	l.mu.Lock()
	defer l.mu.Unlock()
	ring := l.routes[route]
	out := []InboundResult{}
	if ring == nil {
		return out
	}
	for i := 1; i <= ring.n; i++ {
		out = append(out, ring.buf[(ring.next-i+inboundRecent)%inboundRecent])
	}
	return out
}
