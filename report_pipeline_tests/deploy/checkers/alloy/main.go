// Command alloycheck parses Alloy configuration files with Alloy's own parser
// (github.com/grafana/alloy/syntax) and prints each file's blocks and attributes as one JSON
// document on stdout, so the tests read the configuration as Alloy does. Syntax errors go to
// stderr and the exit status is 1.
//
// Built and cached by report_pipeline_tests/deploy/go_checkers.py.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/grafana/alloy/syntax/ast"
	"github.com/grafana/alloy/syntax/parser"
	"github.com/grafana/alloy/syntax/token"
)

// block is a block statement: `name "label" { attributes and blocks }`.
type block struct {
	Name       string         `json:"name"`
	Label      string         `json:"label"`
	Attributes map[string]any `json:"attributes"`
	Blocks     []block        `json:"blocks"`
}

func main() {
	failed := false
	files := map[string][]block{}
	for _, path := range os.Args[1:] {
		source, err := os.ReadFile(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			failed = true
			continue
		}
		file, err := parser.ParseFile(path, source)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			failed = true
			continue
		}
		top, _ := body(file.Body)
		files[path] = top
	}
	if failed {
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(files); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func body(statements ast.Body) ([]block, map[string]any) {
	blocks := []block{}
	attributes := map[string]any{}
	for _, statement := range statements {
		switch s := statement.(type) {
		case *ast.BlockStmt:
			inner, innerAttributes := body(s.Body)
			blocks = append(blocks, block{strings.Join(s.Name, "."), s.Label, innerAttributes, inner})
		case *ast.AttributeStmt:
			attributes[s.Name.Name] = value(s.Value)
		}
	}
	return blocks, attributes
}

// value is an expression as JSON: literals as themselves, references as {"ref": "a.b.c"}, any
// other expression as {"expr": its Go type}.
func value(expression ast.Expr) any {
	switch e := expression.(type) {
	case *ast.LiteralExpr:
		switch e.Kind {
		case token.STRING:
			text, err := strconv.Unquote(e.Value)
			if err != nil {
				return map[string]any{"expr": e.Value}
			}
			return text
		case token.NUMBER, token.FLOAT:
			number, _ := strconv.ParseFloat(e.Value, 64)
			return number
		case token.BOOL:
			return e.Value == "true"
		default:
			return nil
		}
	case *ast.ArrayExpr:
		elements := []any{}
		for _, element := range e.Elements {
			elements = append(elements, value(element))
		}
		return elements
	case *ast.ObjectExpr:
		fields := map[string]any{}
		for _, field := range e.Fields {
			fields[field.Name.Name] = value(field.Value)
		}
		return fields
	case *ast.IdentifierExpr:
		return map[string]any{"ref": e.Ident.Name}
	case *ast.AccessExpr:
		if inner, ok := value(e.Value).(map[string]any); ok {
			if ref, ok := inner["ref"].(string); ok {
				return map[string]any{"ref": ref + "." + e.Name.Name}
			}
		}
	}
	return map[string]any{"expr": fmt.Sprintf("%T", expression)}
}
