package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// TemplateData prepares parsed JSON for a text/template. Objects and arrays
// print as JSON rather than Go's map[a:1] and [1 2]; field access, index and
// range work as before. A null prints as a marker that CheckNull turns into
// an error, because a null field is a missing value, not the text
// "<no value>" (a thermostat must not be sent that). The json helper still
// encodes a null as null.
func TemplateData(v any) any {
	if v == nil {
		return nil // no payload at all (a timer's event): as before
	}
	return templateValue(v, "")
}

func templateValue(v any, name string) any {
	switch x := v.(type) {
	case map[string]any:
		o := make(jsonObject, len(x))
		for k, e := range x {
			o[k] = templateValue(e, k)
		}
		return o
	case []any:
		a := make(jsonArray, len(x))
		for i, e := range x {
			a[i] = templateValue(e, fmt.Sprintf("%s[%d]", name, i))
		}
		return a
	case nil:
		return jsonNull(name)
	}
	return v
}

type (
	jsonObject map[string]any
	jsonArray  []any
	jsonNull   string // the field's name
)

func (o jsonObject) String() string { return marshalString(o) }
func (a jsonArray) String() string  { return marshalString(a) }

// nullMark brackets a null's name in rendered output; NUL never appears in
// text that passed through JSON.
const nullMark = "\x00null:"

func (n jsonNull) String() string               { return nullMark + string(n) + "\x00" }
func (n jsonNull) MarshalJSON() ([]byte, error) { return []byte("null"), nil }

func marshalString(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(err)
	}
	return string(b)
}

// CheckNull returns an error naming the null field a rendering printed, or nil.
func CheckNull(out []byte) error {
	i := bytes.Index(out, []byte(nullMark))
	if i < 0 {
		return nil
	}
	name := out[i+len(nullMark):]
	if j := bytes.IndexByte(name, 0); j >= 0 {
		name = name[:j]
	}
	if len(name) == 0 {
		return fmt.Errorf("the value is null")
	}
	return fmt.Errorf("field %q is null", name)
}
