"""LogQL as Loki reads it, for the tests: queries parsed by Loki's own parser (the logqlcheck
checker of go_checkers.py), the fields each reads from a line, and a small evaluator of a log
query's pipeline on a line, to try the queries on real log lines.

Grafana's variables are replaced before parsing."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from report_pipeline_tests.deploy.go_checkers import checker

# Labels Loki itself adds when a stage fails (e.g. a line that is not JSON), not fields of a line.
LOKI_OWN_LABELS = frozenset({"__error__", "__error_details__"})
# `$name`, or `${name}` with an optional path and format (`${__value.raw}`, `${report:regex}`)
GRAFANA_VARIABLE = re.compile(r"\$\{(\w+)[^}]*\}|\$(\w+)")


class LogQLError(AssertionError):
    """Loki's parser refused a query; the message has Loki's error for each."""


def variables_in(text: str) -> set[str]:
    """The Grafana variables `text` refers to."""
    return {braced or bare for braced, bare in GRAFANA_VARIABLE.findall(text)}


def interpolate(text: str, values: Mapping[str, str]) -> str:
    """`text` with each Grafana variable replaced by its value in `values` (KeyError if missing)."""
    return GRAFANA_VARIABLE.sub(lambda m: values[m.group(1) or m.group(2)], text)


@dataclass(frozen=True)
class Query:
    """One query as Loki's parser read it: the stream selector's matchers and the pipeline."""

    text: str
    metric: bool
    selector: tuple[dict[str, str], ...]
    stages: tuple[dict[str, Any], ...]
    grouping: tuple[str, ...]

    def stream_labels(self) -> set[str]:
        return {m["name"] for m in self.selector}

    def filters(self) -> Iterator[dict[str, Any]]:
        """Every single comparison of the label filter stages (`name op value`)."""
        pending = [s["label_filter"] for s in self.stages if "label_filter" in s]
        while pending:
            node = pending.pop()
            if "and" in node or "or" in node:
                pending.extend(node.get("and", node.get("or")))
            else:
                yield node

    def fields(self) -> set[str]:
        """The fields of a line the query filters on, formats with or groups by: everything it
        reads that is neither a stream label nor a label Loki adds itself."""
        read = {f["name"] for f in self.filters()} | set(self.grouping)
        read.update(field for s in self.stages for field in s.get("fields", []))
        return read - self.stream_labels() - LOKI_OWN_LABELS

    def selects(self, line: str, stream: Mapping[str, str]) -> bool:
        """Whether the pipeline keeps `line` of a stream with the labels `stream` (the selector is
        not applied: the caller chooses the stream)."""
        labels = dict(stream)
        for stage in self.stages:
            if "line_filter" in stage:
                if not _line_matches(stage["line_filter"], line):
                    return False
            elif stage.get("parser") == "json":
                labels.update(_json_labels(line, stream))
            elif "label_filter" in stage:
                if not _labels_match(stage["label_filter"], labels):
                    return False
            elif "line_format" not in stage and "drop" not in stage:
                raise NotImplementedError(f"the test's evaluator does not know the stage {stage}")
        return True


def parse(queries: list[str]) -> list[Query]:
    """Each query as Loki 3.5's parser reads it; LogQLError naming every query it refuses."""
    result = subprocess.run(
        [str(checker("logql")), *queries], capture_output=True, text=True, timeout=60
    )
    reports = [json.loads(line) for line in result.stdout.splitlines()]
    errors = [f"{r['query']}\n  {r['error']}" for r in reports if r.get("error")]
    if errors or result.returncode != 0 or len(reports) != len(queries):
        raise LogQLError("\n".join(errors) or result.stderr)
    return [
        Query(
            r["query"], r["metric"], tuple(r["selector"]), tuple(r["stages"]), tuple(r["grouping"])
        )
        for r in reports
    ]


def _line_matches(node: dict[str, Any], line: str) -> bool:
    if "all" in node:
        return all(_line_matches(n, line) for n in node["all"])
    if "any" in node:
        return any(_line_matches(n, line) for n in node["any"])
    op, value = node["op"], node["value"]
    if op in ("|=", "!="):
        return (value in line) == (op == "|=")
    if op in ("|~", "!~"):
        return (re.search(value, line) is not None) == (op == "|~")
    raise NotImplementedError(f"line filter {op}")


def _json_labels(line: str, stream: Mapping[str, str]) -> dict[str, str]:
    """What Loki's `| json` adds: each top-level and nested key (joined with `_`) with its value as
    text, arrays skipped; a key clashing with a stream label gets `_extracted`; a line that is not
    a JSON object gets `__error__`."""
    try:
        document = json.loads(line)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        return {"__error__": "JSONParserErr"}
    labels: dict[str, str] = {}

    def add(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                add(f"{prefix}_{key}" if prefix else key, inner)
        elif not isinstance(value, list):
            name = re.sub(r"[^a-zA-Z0-9_]", "_", prefix)
            name = f"{name}_extracted" if name in stream else name
            text = "" if value is None else json.dumps(value)
            labels[name] = value if isinstance(value, str) else text

    add("", document)
    return labels


def _labels_match(node: dict[str, Any], labels: Mapping[str, str]) -> bool:
    if "and" in node:
        return all(_labels_match(n, labels) for n in node["and"])
    if "or" in node:
        return any(_labels_match(n, labels) for n in node["or"])
    if "number" in node:
        raise NotImplementedError(f"numeric label filter on {node['name']}")
    actual, op, value = labels.get(node["name"], ""), node["op"], node["value"]
    if op in ("=", "!="):
        return (actual == value) == (op == "=")
    if op in ("=~", "!~"):
        return (re.fullmatch(value, actual) is not None) == (op == "=~")
    raise NotImplementedError(f"label filter {op}")
