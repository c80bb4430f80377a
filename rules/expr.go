package rules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"
)

// maxExprLen bounds a `when` expression's source.
const maxExprLen = 4096

// compileExpr compiles a `when` expression over the payload's JSON fields
// (expr-lang/expr: memory-safe, side-effect free, always terminating). Names
// are the payload's top-level fields; a misspelled function is refused here,
// not at the first message. It also returns the fields the expression reads,
// so that a reading without one of them is rejected as missing rather than
// evaluated with nil.
func compileExpr(src string) (*vm.Program, []string, error) {
	if strings.TrimSpace(src) == "" {
		return nil, nil, errors.New("empty expression")
	}
	if len(src) > maxExprLen {
		// expr's parser recurses per parenthesis, and parentheses make no
		// nodes for MaxNodes to count: a huge one could overflow the stack.
		return nil, nil, fmt.Errorf("longer than %d bytes", maxExprLen)
	}
	tree, err := parser.Parse(src)
	if err != nil {
		return nil, nil, exprError(err)
	}
	var unknown []string
	idents := map[string]bool{}
	local := map[string]bool{} // names bound by `let`
	ast.Walk(&tree.Node, visitor(func(n *ast.Node) {
		switch v := (*n).(type) {
		case *ast.CallNode:
			if id, ok := v.Callee.(*ast.IdentifierNode); ok {
				unknown = append(unknown, id.Value)
			}
		case *ast.IdentifierNode:
			idents[v.Value] = true
		case *ast.VariableDeclaratorNode:
			local[v.Name] = true
		}
	}))
	if len(unknown) > 0 {
		return nil, nil, fmt.Errorf("unknown function %q", unknown[0])
	}
	p, err := expr.Compile(src, expr.Env(map[string]any{}), expr.AllowUndefinedVariables(), expr.AsBool(), expr.MaxNodes(2000))
	if err != nil {
		return nil, nil, exprError(err)
	}
	var fields []string
	for name := range idents {
		if !local[name] && name != "$env" {
			fields = append(fields, name)
		}
	}
	sort.Strings(fields)
	return p, fields, nil
}

// missingField names the first field the expression reads that the reading
// lacks (absent or null), or "".
func (r *Rule) missingField(fields map[string]any) string {
	for _, name := range r.exprFields {
		if fields[name] == nil {
			return name
		}
	}
	return ""
}

type visitor func(*ast.Node)

func (v visitor) Visit(n *ast.Node) { v(n) }

// exprError keeps the first line of expr's multi-line error (the others draw a caret).
func exprError(err error) error {
	msg, _, _ := strings.Cut(err.Error(), "\n")
	return errors.New(msg)
}

// evalExpr runs a rule's expression on a payload's fields. A missing field is
// nil; a type mismatch (comparing nil or a string with a number) is an error,
// which the caller counts as a rejected reading.
func (r *Rule) evalExpr(fields map[string]any) (bool, error) {
	out, err := expr.Run(r.prog, fields)
	if err != nil {
		return false, exprError(err)
	}
	b, ok := out.(bool)
	if !ok {
		return false, errors.New("expression did not give true or false")
	}
	return b, nil
}

// payloadFields parses a JSON object payload for `when` expressions. Numbers
// become float64, so `temperature < 18` compares numbers.
func payloadFields(payload []byte) (map[string]any, Reject) {
	dec := json.NewDecoder(bytes.NewReader(payload))
	var m map[string]any
	if err := dec.Decode(&m); err != nil || dec.More() {
		var probe any
		if json.Unmarshal(payload, &probe) == nil {
			return nil, NotNumber // valid JSON, but not an object
		}
		return nil, Malformed
	}
	return m, OK
}
