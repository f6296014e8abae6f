// Command logqlcheck parses LogQL queries with Loki's own parser
// (github.com/grafana/loki/v3/pkg/logql/syntax), builds each query's pipeline as Loki would run it
// (so line_format templates and label filters are checked too), and prints one JSON line per
// query: its stream selector and the stages after it. The exit status is 1 if any query is
// invalid; the JSON line then carries the error.
//
// Usage: logqlcheck QUERY...   Built and cached by report_pipeline_tests/deploy/go_checkers.py.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/grafana/loki/v3/pkg/logql/log"
	"github.com/grafana/loki/v3/pkg/logql/syntax"
	"github.com/prometheus/prometheus/model/labels"
)

type matcher struct {
	Name  string `json:"name"`
	Op    string `json:"op"`
	Value string `json:"value"`
}

type report struct {
	Query    string           `json:"query"`
	Error    string           `json:"error,omitempty"`
	Metric   bool             `json:"metric"`
	Selector []matcher        `json:"selector"`
	Stages   []map[string]any `json:"stages"`
	Grouping []string         `json:"grouping"`
}

func main() {
	failed := false
	out := json.NewEncoder(os.Stdout)
	for _, query := range os.Args[1:] {
		r := check(query)
		if r.Error != "" {
			failed = true
		}
		if err := out.Encode(r); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	if failed {
		os.Exit(1)
	}
}

func check(query string) report {
	r := report{Query: query, Selector: []matcher{}, Stages: []map[string]any{}, Grouping: []string{}}
	expr, err := syntax.ParseExpr(query)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	switch e := expr.(type) {
	case syntax.SampleExpr:
		r.Metric = true
		if _, err := e.Extractors(); err != nil {
			r.Error = err.Error()
			return r
		}
	case syntax.LogSelectorExpr:
		if _, err := e.Pipeline(); err != nil {
			r.Error = err.Error()
			return r
		}
	}
	expr.Walk(func(node syntax.Expr) {
		switch n := node.(type) {
		case *syntax.MatchersExpr:
			for _, m := range n.Mts {
				r.Selector = append(r.Selector, matcherOf(m))
			}
		case *syntax.PipelineExpr:
			for _, stage := range n.MultiStages {
				r.Stages = append(r.Stages, stageOf(stage))
			}
		case *syntax.VectorAggregationExpr:
			if n.Grouping != nil {
				r.Grouping = append(r.Grouping, n.Grouping.Groups...)
			}
		case *syntax.RangeAggregationExpr:
			if n.Grouping != nil {
				r.Grouping = append(r.Grouping, n.Grouping.Groups...)
			}
		}
	})
	return r
}

func matcherOf(m *labels.Matcher) matcher {
	return matcher{m.Name, m.Type.String(), m.Value}
}

func stageOf(stage syntax.StageExpr) map[string]any {
	switch s := stage.(type) {
	case *syntax.LineFilterExpr:
		return map[string]any{"line_filter": lineFilter(s)}
	case *syntax.LineParserExpr:
		return map[string]any{"parser": s.Op}
	case *syntax.LogfmtParserExpr:
		return map[string]any{"parser": "logfmt"}
	case *syntax.LabelFilterExpr:
		return map[string]any{"label_filter": labelFilter(s.LabelFilterer)}
	case *syntax.LineFmtExpr:
		formatter, err := log.NewFormatter(s.Value)
		fields := []string{}
		if err == nil {
			fields = formatter.RequiredLabelNames()
		}
		return map[string]any{"line_format": s.Value, "fields": fields}
	case *syntax.DropLabelsExpr:
		return map[string]any{"drop": s.String()}
	}
	return map[string]any{"other": stage.String()}
}

// lineFilter is a line filter as {"op", "value"}, {"all": [...]} for chained filters or
// {"any": [...]} for `or`.
func lineFilter(f *syntax.LineFilterExpr) map[string]any {
	this := map[string]any{"op": f.Ty.String(), "value": f.Match}
	if f.Or != nil {
		this = map[string]any{"any": []any{this, lineFilter(f.Or)}}
	}
	if f.Left != nil {
		return map[string]any{"all": []any{lineFilter(f.Left), this}}
	}
	return this
}

// labelFilter is a label filter as {"name", "op", "value"}, {"and": [l, r]} or {"or": [l, r]}.
func labelFilter(f log.LabelFilterer) map[string]any {
	switch l := f.(type) {
	case *log.BinaryLabelFilter:
		key := "or"
		if l.And {
			key = "and"
		}
		return map[string]any{key: []any{labelFilter(l.Left), labelFilter(l.Right)}}
	case *log.StringLabelFilter:
		return map[string]any{"name": l.Name, "op": l.Type.String(), "value": l.Value}
	case *log.LineFilterLabelFilter:
		return map[string]any{"name": l.Name, "op": l.Type.String(), "value": l.Value}
	case *log.NoopLabelFilter:
		if l.Matcher != nil {
			return map[string]any{"name": l.Name, "op": l.Type.String(), "value": l.Value}
		}
	case *log.NumericLabelFilter:
		return map[string]any{"name": l.Name, "op": l.Type.String(), "number": l.Value}
	}
	return map[string]any{"other": f.String()}
}
