"""Writing marks into the corpus files: what `python -m report_pipeline_tests.conformance --report
--mark` does with each divergence it finds, so a developer reviews a diff instead of editing by
hand.

A divergence where the local engine refused with NOT_SUPPORTED gets `local_not_supported:` (the
engine's own words for the construct); any other gets `known_divergence:` (the first difference);
a stale mark (the engine now answers as Trino, or no longer refuses) is removed.
Keys are inserted as text, as the entry's first key, so the files' comments and layout stay as
written.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import yaml

from report_pipeline_tests.conformance.corpus import CORPUS_DIR
from report_pipeline_tests.conformance.harness import Divergence

_REFUSED = re.compile(
    r"^outcome: local NOT_SUPPORTED \((?P<message>.*?)(?: is not supported.*)?\) \| trino"
)


def mark_for(detail: str) -> tuple[str, str]:
    """The key and value a divergence's entry gets."""
    refused = _REFUSED.match(detail)
    if refused:
        return "local_not_supported", refused.group("message")
    return "known_divergence", detail if len(detail) <= 160 else detail[:157] + "..."


def write_marks(divergences: list[Divergence], corpus_dir: Path = CORPUS_DIR) -> int:
    """Mark every entry that diverges (its first divergence decides); returns how many were
    marked."""
    by_file: dict[str, dict[int, Divergence]] = defaultdict(dict)
    for divergence in divergences:
        if divergence.detail.startswith("corpus:"):
            continue  # the entry itself needs a human
        by_file[divergence.entry.file].setdefault(divergence.entry.index, divergence)
    marked = 0
    for name, entries in by_file.items():
        path = corpus_dir / f"{name}.yaml"
        lines = path.read_text().splitlines(keepends=True)
        document = yaml.compose(path.read_text())
        assert isinstance(document, yaml.MappingNode), f"{path} is not a mapping"
        items = document.value
        sequence = next(value for key, value in items if key.value == "entries")
        # from the last entry up, so earlier line numbers stay valid
        for index in sorted(entries, reverse=True):
            node = sequence.value[index]
            detail = entries[index].detail
            if detail.startswith("stale "):
                _remove_mark(lines, node)
                marked += 1
                continue
            key, value = mark_for(detail)
            row, column = node.start_mark.line, node.start_mark.column
            text = lines[row]
            lines[row] = f"{text[:column]}{key}: {json.dumps(value)}\n{' ' * column}{text[column:]}"
            marked += 1
        path.write_text("".join(lines))
    return marked


def _remove_mark(lines: list[str], node: yaml.MappingNode) -> None:
    """Delete an entry's one-line mark; when it was the entry's first key, the next key takes its
    `- `."""
    for key, value in node.value:
        if key.value not in ("local_not_supported", "known_divergence"):
            continue
        row = key.start_mark.line
        if value.end_mark.line != row:
            raise ValueError(f"the mark on line {row + 1} spans several lines: remove it by hand")
        prefix = lines[row][: key.start_mark.column]
        del lines[row]
        if prefix.strip():  # `  - local_not_supported: ...`: the dash moves to the next key's line
            lines[row] = prefix + lines[row][len(prefix) :]
        return
