package bridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/template"

	"github.com/edgehook/edgehook/rules"
)

// textTemplate is a compiled Go text/template that fails on a missing key
// instead of rendering "<no value>". Safe for concurrent use.
type textTemplate struct {
	t      *template.Template
	static bool // no actions: renders to its source text
}

// inboundFuncs are the helpers inbound templates may call.
var inboundFuncs = template.FuncMap{
	"json": func(v any) (string, error) {
		b, err := json.Marshal(v)
		return string(b), err
	},
	"lower": strings.ToLower,
	"upper": strings.ToUpper,
}

// compileTemplate parses text; errors read like `template: unexpected "}"`.
func compileTemplate(name, text string, funcs template.FuncMap) (*textTemplate, error) {
	t, err := template.New(name).Funcs(funcs).Option("missingkey=error").Parse(text)
	if err != nil {
		// "template: topic:1: function ..." → "line 1: function ..."
		msg := strings.TrimPrefix(err.Error(), "template: "+name+":")
		if n, rest, ok := strings.Cut(msg, ": "); ok && n != "" && strings.Trim(n, "0123456789") == "" {
			msg = "line " + n + ": " + rest
		}
		return nil, errors.New(msg)
	}
	return &textTemplate{t: t, static: !strings.Contains(text, "{{")}, nil
}

// render executes the template with data.
func (t *textTemplate) render(data any) ([]byte, error) {
	var b bytes.Buffer
	if err := t.t.Execute(&b, rules.TemplateData(data)); err != nil {
		return nil, errors.New(cleanExecError(err.Error()))
	}
	if err := rules.CheckNull(b.Bytes()); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// cleanExecError turns text/template's execution errors into something a
// sender can act on: `template: topic:1:14: executing "topic" at <.zone>: map
// has no entry for key "zone"` becomes `field "zone" is missing`.
func cleanExecError(msg string) string {
	if i := strings.Index(msg, `map has no entry for key "`); i >= 0 {
		rest := msg[i+len(`map has no entry for key "`):]
		if j := strings.IndexByte(rest, '"'); j >= 0 {
			return fmt.Sprintf("field %q is missing", rest[:j])
		}
	}
	if i := strings.Index(msg, ": executing "); i >= 0 {
		if j := strings.Index(msg[i:], ": "); j >= 0 {
			if k := strings.Index(msg[i+j+2:], ": "); k >= 0 {
				return msg[i+j+2+k+2:]
			}
		}
	}
	return msg
}
