package rules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"text/template"
	"time"
)

// Template is a compiled Go text/template for rule bodies and publish actions,
// with the helpers json, topicPart and round. A missing key is an error, not
// "<no value>". Safe for concurrent use.
type Template struct {
	t      *template.Template
	static bool // no actions
}

// EventData is what rule templates see.
type EventData struct {
	ID        string    // webhook-id (empty for publish actions)
	Type      string    // rule.fired | rule.resolved
	Rule      string    // rule name
	Condition string    // below, above, drop, rise, when, stale, forward
	Topic     string    // concrete MQTT topic
	Series    string    // topic, or topic[key] with `key`
	Value     any       // float64, or nil when there is none
	Threshold any       // float64, or nil when the condition has none
	At        time.Time // when it happened
	Payload   any       // the MQTT payload: parsed JSON, or the string
}

func funcs(topic string) template.FuncMap {
	return template.FuncMap{
		"json": func(v any) (string, error) {
			b, err := json.Marshal(v)
			return string(b), err
		},
		// topicPart N is level N (0-based) of the event's topic; topicPart N T of topic T.
		"topicPart": func(n int, t ...string) string {
			if len(t) > 0 {
				return TopicPart(t[0], n)
			}
			return TopicPart(topic, n)
		},
		"round": func(n int, v any) (float64, error) {
			f, err := toFloat(v)
			if err != nil {
				return 0, err
			}
			p := math.Pow(10, float64(n))
			return math.Round(f*p) / p, nil
		},
	}
}

func toFloat(v any) (float64, error) {
	switch x := v.(type) {
	case float64:
		return x, nil
	case int:
		return float64(x), nil
	case json.Number:
		return x.Float64()
	case string:
		return strconv.ParseFloat(x, 64)
	case nil, jsonNull:
		return 0, errors.New("round of a missing value")
	}
	return 0, fmt.Errorf("round of %T", v)
}

// ParseTemplate compiles text. Errors read "line 1: function \"x\" not defined".
func ParseTemplate(name, text string) (*Template, error) {
	t, err := template.New(name).Funcs(funcs("")).Option("missingkey=error").Parse(text)
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), "template: "+name+":")
		if n, rest, ok := strings.Cut(msg, ": "); ok && n != "" && strings.Trim(n, "0123456789") == "" {
			msg = "line " + n + ": " + rest
		}
		return nil, errors.New(msg)
	}
	return &Template{t: t, static: !strings.Contains(text, "{{")}, nil
}

// Static reports whether the template has no actions.
func (t *Template) Static() bool { return t.static }

// Render executes the template for one event.
func (t *Template) Render(d *EventData) ([]byte, error) {
	tt := t.t
	if !t.static {
		c, err := t.t.Clone() // bind topicPart to this event's topic
		if err != nil {
			return nil, err
		}
		tt = c.Funcs(funcs(d.Topic))
	}
	data := *d
	data.Payload = TemplateData(d.Payload)
	var b bytes.Buffer
	if err := tt.Execute(&b, &data); err != nil {
		msg := err.Error()
		if i := strings.Index(msg, "> "); i >= 0 && strings.Contains(msg, "executing") {
			msg = msg[i+2:]
		}
		return nil, errors.New(msg)
	}
	if err := CheckNull(b.Bytes()); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
