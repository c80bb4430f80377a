package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/edgehook/edgehook/bridge"
	"github.com/edgehook/edgehook/rules"
)

// reading is one simulated MQTT message.
type reading struct {
	at      time.Time
	topic   string
	payload string
}

const testRuleUsage = `usage: edgehook test-rule -c FILE [--rule NAME] [-v]
         --topic T --payload P [--at TIME] [--topic T --payload P [--at TIME]]...
         [--readings FILE|-] [--until TIME]

Each --topic/--payload[/--at] group is one reading; --readings takes lines
"TIME TOPIC PAYLOAD" (# starts a comment). TIME is RFC 3339; a reading without
one happens when the previous one did (the first: now). --until advances the
clock after the last reading, so pending timers (for, stale) fire. -v prints
what each event would send. Nothing touches the network or the store.
`

// cmdTestRule feeds readings through the configured rules on a simulated
// clock and prints, for each reading, what every matching rule decided and why.
func (e *env) cmdTestRule(args []string) int {
	var (
		cfgPath, only, readingsFile, until string
		verbose                            bool
		rs                                 []reading
	)
	if v, ok := e.getenv("EDGEHOOK_CONFIG"); ok {
		cfgPath = v
	}
	usage := func(format string, a ...any) int {
		fmt.Fprintf(e.stderr, "edgehook test-rule: "+format+"\n\n%s", append(a, testRuleUsage)...)
		return exitUsage
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") {
			return usage("unexpected argument %q", a)
		}
		if name == "v" || name == "verbose" {
			verbose = true
			continue
		}
		if name == "h" || name == "help" {
			fmt.Fprint(e.stdout, testRuleUsage)
			return exitOK
		}
		if !hasVal {
			if i+1 >= len(args) {
				return usage("%s needs a value", a)
			}
			i++
			val = args[i]
		}
		switch name {
		case "c", "config":
			cfgPath = val
		case "rule":
			only = val
		case "readings":
			readingsFile = val
		case "until":
			until = val
		case "topic":
			rs = append(rs, reading{topic: val})
		case "payload":
			if len(rs) == 0 || rs[len(rs)-1].payload != "" {
				return usage("--payload must follow its --topic")
			}
			rs[len(rs)-1].payload = val
		case "at":
			if len(rs) == 0 {
				return usage("--at must follow its --topic")
			}
			t, err := time.Parse(time.RFC3339Nano, val)
			if err != nil {
				return usage("--at %q is not an RFC 3339 time", val)
			}
			rs[len(rs)-1].at = t
		default:
			return usage("unknown flag %s", a)
		}
	}
	if cfgPath == "" {
		cfgPath = "/etc/edgehook/edgehook.toml"
	}
	if readingsFile != "" {
		more, err := readReadings(readingsFile)
		if err != nil {
			return usage("%v", err)
		}
		rs = append(rs, more...)
	}
	if len(rs) == 0 {
		return usage("give at least one reading")
	}
	_, set, code := e.loadConfig(cfgPath)
	if code != exitOK {
		return code
	}
	if only != "" {
		r := set.Rule(only)
		if r == nil {
			return usage("no rule named %q", only)
		}
		set, _ = rules.NewSet([]*rules.Rule{r})
	}

	// Missing times: the previous reading's, the first one's now.
	prev := time.Now().UTC().Truncate(time.Second)
	for i := range rs {
		if rs[i].at.IsZero() {
			rs[i].at = prev
		}
		if rs[i].at.Before(prev) && i > 0 {
			return usage("reading %d (%s) is earlier than the one before it", i+1, rs[i].at.Format(time.RFC3339))
		}
		prev = rs[i].at
	}

	eng := rules.NewEngine(set)
	out := e.stdout
	events := 0
	report := func(res rules.Result) {
		st := eng.State(rules.SeriesKey{Rule: res.Rule.Name, Series: res.Series})
		if res.Reject != rules.OK {
			msg := "rejected: " + rejectText(res.Reject)
			if res.Detail != "" {
				msg += " (" + res.Detail + ")"
			}
			fmt.Fprintf(out, "    %-24s %s  [series %s]\n", res.Rule.Name, msg, res.Series)
			return
		}
		if st == nil {
			st = &rules.State{}
		}
		fmt.Fprintf(out, "    %-24s %s  [series %s]\n", res.Rule.Name, res.Rule.Explain(res.Outcome, st, res.Value, res.HasValue), res.Series)
		if res.Outcome.Event == rules.None {
			return
		}
		events++
		for _, p := range bridge.PreviewJobs(res, fmt.Sprintf("evt_test_%d", events)) {
			dest := "→ endpoint " + p.Target
			if p.Target == "@mqtt" {
				dest = "→ MQTT " + p.Topic
			}
			switch {
			case p.Err != "":
				fmt.Fprintf(out, "        %s: DEAD LETTER (%s)\n", dest, p.Err)
			case verbose:
				fmt.Fprintf(out, "        %s: %s %s\n", dest, res.Outcome.Event, p.Body)
			default:
				fmt.Fprintf(out, "        %s: %s\n", dest, res.Outcome.Event)
			}
		}
	}
	timers := func(upTo time.Time) {
		for {
			d, ok := eng.NextDeadline()
			if !ok || d.After(upTo) {
				return
			}
			fmt.Fprintf(out, "%s  (timer)\n", d.UTC().Format(time.RFC3339Nano))
			eng.Advance(d, report)
		}
	}
	for _, r := range rs {
		timers(r.at)
		fmt.Fprintf(out, "%s  %s  %s\n", r.at.UTC().Format(time.RFC3339Nano), r.topic, r.payload)
		matched := false
		eng.Feed(r.topic, []byte(r.payload), r.at, func(res rules.Result) {
			matched = true
			report(res)
		})
		if !matched {
			fmt.Fprintf(out, "    (no rule matches this topic)\n")
		}
	}
	if until != "" {
		t, err := time.Parse(time.RFC3339Nano, until)
		if err != nil {
			return usage("--until %q is not an RFC 3339 time", until)
		}
		timers(t)
	} else if d, ok := eng.NextDeadline(); ok {
		fmt.Fprintf(out, "(a timer is pending at %s; --until that time fires it)\n", d.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(out, "%d event(s)\n", events)
	return exitOK
}

func rejectText(r rules.Reject) string {
	switch r {
	case rules.Malformed:
		return "malformed JSON"
	case rules.Missing:
		return "the value (or key) is missing"
	case rules.NotNumber:
		return "not a number"
	case rules.NonFinite:
		return "NaN or infinity"
	case rules.OutOfRange:
		return "number out of range"
	case rules.InvalidUTF8:
		return "invalid UTF-8"
	case rules.ExprError:
		return "the `when` expression could not be evaluated"
	case rules.TooManySeries:
		return "too many series for this rule"
	}
	return r.String()
}

// readReadings reads "TIME TOPIC PAYLOAD" lines; - is standard input.
func readReadings(path string) ([]reading, error) {
	var r io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	var out []reading
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		ts, rest, _ := strings.Cut(line, " ")
		topic, payload, _ := strings.Cut(strings.TrimSpace(rest), " ")
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil || topic == "" {
			return nil, fmt.Errorf("%s:%d: want TIME TOPIC PAYLOAD with an RFC 3339 time", path, n)
		}
		out = append(out, reading{at: t, topic: topic, payload: strings.TrimSpace(payload)})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].at.Before(out[j].at) })
	return out, sc.Err()
}
