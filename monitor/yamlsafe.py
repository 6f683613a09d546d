"""Safe YAML for files people write: no aliases, no duplicate keys, and line numbers kept.

PyYAML's ``safe_load`` already refuses arbitrary objects, but it expands
aliases (an "alias bomb" of nested anchors grows exponentially) and silently
keeps the last of two duplicate keys (a rule that quietly loses its query).
Both are refused here. Every mapping key and sequence item also gets its
1-based line and column, so validation errors can point at the exact spot.

Parsing goes through libyaml (``CSafeLoader``) when PyYAML was built with it, else
the pure-Python ``SafeLoader``: the same node tree either way (libyaml's composer
hands back an alias's anchored node itself, which is how aliases are caught), and
the checks above run on that tree, whichever parser built it. A feed list of
10,000 entries loads several times faster with libyaml, which a start and every
reload feel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from monitor.errors import Problem

KeyPath = tuple[str | int, ...]

# libyaml when available; the same safe constructor and resolver either way.
_Loader: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = getattr(
    yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class YamlDoc:
    """A loaded document plus where each value came from."""

    source: str
    data: Any
    marks: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)

    def line_of(self, path: KeyPath) -> tuple[int | None, int | None]:
        """The closest known position for ``path`` (walks up to the nearest parent)."""
        p = tuple(path)
        while True:
            if p in self.marks:
                return self.marks[p]
            if not p:
                return (None, None)
            p = p[:-1]

    def problem(self, path: KeyPath, reason: str) -> Problem:
        line, col = self.line_of(path)
        return Problem(self.source, format_path(path), reason, line, col)


def format_path(path: KeyPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class YamlError(Exception):
    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def _mark(node: yaml.Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


def _construct(node: yaml.Node, path: KeyPath, doc: YamlDoc, anchors: set[int],
               scalars: yaml.constructor.SafeConstructor) -> Any:
    doc.marks[path] = _mark(node)
    if id(node) in anchors:
        line, col = _mark(node)
        raise YamlError(Problem(doc.source, format_path(path),
                                "YAML aliases (*name) are not allowed", line, col))
    anchors.add(id(node))
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                line, col = _mark(key_node)
                raise YamlError(Problem(doc.source, format_path(path),
                                        "YAML merge keys (<<) are not allowed", line, col))
            key = _construct(key_node, (*path, "<key>"), doc, anchors, scalars)
            doc.marks.pop((*path, "<key>"), None)
            if not isinstance(key, str | int | float | bool) and key is not None:
                line, col = _mark(key_node)
                raise YamlError(Problem(doc.source, format_path(path),
                                        "mapping keys must be plain scalars", line, col))
            skey = str(key)
            if skey in out:
                line, col = _mark(key_node)
                raise YamlError(Problem(doc.source, format_path((*path, skey)),
                                        f"duplicate key {skey!r}", line, col))
            out[skey] = _construct(value_node, (*path, skey), doc, anchors, scalars)
            doc.marks[(*path, skey)] = _mark(key_node)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*path, i), doc, anchors, scalars)
                for i, item in enumerate(node.value)]
    return scalars.construct_object(node, deep=True)


def load_yaml(text: str, source: str) -> YamlDoc:
    """Parse one YAML document safely. Raises YamlError with file, line and reason."""
    doc = YamlDoc(source=source, data=None)
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        col = mark.column + 1 if mark else None
        reason = f"invalid YAML: {e.problem or e.context or e}"
        raise YamlError(Problem(source, "", reason, line, col)) from e
    except yaml.YAMLError as e:
        raise YamlError(Problem(source, "", f"invalid YAML: {e}")) from e
    if node is None:
        return doc
    # One safe constructor for every scalar of the document (only scalars reach it).
    scalars = yaml.SafeLoader("")
    try:
        doc.data = _construct(node, (), doc, set(), scalars)
    finally:
        scalars.dispose()
    return doc


def load_yaml_file(path: Path) -> YamlDoc:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise YamlError(Problem(str(path), "", f"cannot read file: {e}")) from e
    return load_yaml(text, str(path))
