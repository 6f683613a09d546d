"""YAML for files people write: safe types only, no anchors or aliases, no duplicate keys.

PyYAML's ``SafeLoader`` already refuses arbitrary objects, but it happily expands
aliases (the "billion laughs" bomb: a few lines that build gigabytes) and lets a
duplicated key silently win — in a rule file that means a rule quietly changed
meaning. Rule files gain nothing from anchors, so we refuse them outright, and a
duplicate key is an error at its own line. We return the composed node tree, not
Python objects, so every later complaint can point at a line and column.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_BYTES = 5 * 1024 * 1024


class YamlProblem(Exception):
    """One problem with a 1-based line and column."""

    def __init__(self, reason: str, line: int | None, column: int | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line
        self.column = column


class _StrictLoader(yaml.SafeLoader):
    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        mark = event.start_mark
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        if isinstance(event, yaml.AliasEvent):
            raise YamlProblem(
                f"aliases (*{event.anchor}) are not allowed in rule files", line, column)
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            raise YamlProblem(f"anchors (&{anchor}) are not allowed in rule files", line, column)
        return super().compose_node(parent, index)


def compose(text: str) -> tuple[yaml.Node | None, list[YamlProblem]]:
    """Parse ``text`` into a node tree plus every duplicate key found.

    Syntax errors, anchors and aliases stop the parse (nothing after them can be
    trusted) and raise :class:`YamlProblem`; duplicate keys are collected so the
    author sees all of them at once.
    """
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise YamlProblem(f"file is larger than {MAX_BYTES // (1024 * 1024)} MB", None, None)
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        reason = " ".join(p for p in (e.context, e.problem) if p) or "invalid YAML"
        raise YamlProblem(
            f"YAML syntax: {reason}",
            mark.line + 1 if mark else None, mark.column + 1 if mark else None) from e
    except yaml.YAMLError as e:
        raise YamlProblem(f"YAML syntax: {e}", None, None) from e
    finally:
        loader.dispose()
    problems: list[YamlProblem] = []
    if node is not None:
        _check_duplicates(node, problems)
    return node, problems


def _check_duplicates(node: yaml.Node, problems: list[YamlProblem]) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    problems.append(YamlProblem(
                        f"duplicate key {key.value!r} (first at line {seen[key.value]})",
                        key.start_mark.line + 1, key.start_mark.column + 1))
                else:
                    seen[key.value] = key.start_mark.line + 1
            _check_duplicates(value, problems)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _check_duplicates(item, problems)


def scalar(node: yaml.Node) -> Any:
    """The Python value of a scalar node under the safe resolver (int, bool, str...)."""
    loader = _StrictLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


_NULLS = frozenset({"", "~", "null", "Null", "NULL"})


def text_of(node: yaml.Node) -> str | None:
    """A scalar's text as written, or None for null / a non-scalar.

    Ids, titles, queries and term-list entries are always text; reading them raw
    spares analysts YAML 1.1's surprises (``off`` -> False, ``NO`` -> False,
    ``1e3`` -> 1000.0).
    """
    if not isinstance(node, yaml.ScalarNode):
        return None
    if node.style is None and node.value in _NULLS:
        return None
    return str(node.value)


def where(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1
