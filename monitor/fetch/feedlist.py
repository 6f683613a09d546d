"""Feed lists people write: YAML (our format) and OPML (what every feed reader exports).

YAML, either a bare list or a mapping with a ``feeds:`` list; each entry is a URL
string or a mapping::

    feeds:
      - https://feeds.bbci.co.uk/news/world/rss.xml
      - url: https://www.theguardian.com/world/ukraine/rss
        outlet: The Guardian
        language: en
        interval: 10m          # seconds, or 30s / 15m / 2h / 1d; fixed, not adaptive
        tags: [ukraine, uk]

OPML: every ``<outline>`` with an ``xmlUrl``, at any depth. ``title`` (else
``text``) is the title; enclosing folder outlines and the ``category``
attribute (``"a,b"`` or ``"/a/b"``) become tags; ``language`` is OPML 2.0's
attribute; ``outlet`` and ``interval`` are ours, ignored by other readers.

Every problem in a file (missing or non-http URL, duplicate URL, unknown key,
bad language or interval) is collected and raised at once as ``ConfigError``
with the file, the key path and the line.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from xml.parsers import expat

from monitor.errors import ConfigError, Problem
from monitor.models import FeedSpec
from monitor.yamlsafe import KeyPath, YamlDoc, YamlError, format_path, load_yaml

MIN_INTERVAL = 60.0
_KEYS = frozenset({"url", "title", "outlet", "language", "interval", "tags"})
_LANG = re.compile(r"^([a-zA-Z]{2,3})(?:[-_][a-zA-Z0-9]{1,8})*$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d)?\s*$", re.IGNORECASE)
_UNITS = {"": 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


@dataclass
class _Collector:
    source: str
    problems: list[Problem] = field(default_factory=list)
    seen: dict[str, int | None] = field(default_factory=dict)

    def add(self, where: str, reason: str, line: int | None, column: int | None = None) -> None:
        self.problems.append(Problem(self.source, where, reason, line, column))


def _url_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError as e:
        return f"not a URL: {e}"
    if parts.scheme.lower() not in ("http", "https"):
        return f"URL scheme must be http or https: {url!r}"
    if not parts.hostname:
        return f"URL has no host: {url!r}"
    return None


def _dedup_key(url: str) -> str:
    parts = urlsplit(url)
    return parts._replace(scheme=parts.scheme.lower(), netloc=parts.netloc.lower()).geturl()


def parse_interval(value: object) -> float:
    """Seconds from a number or ``"30s"``/``"15m"``/``"2h"``/``"1d"``. Raises ValueError."""
    if isinstance(value, bool):
        raise ValueError("not a duration")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNITS[(m.group(2) or "").lower()]
    else:
        raise ValueError(f"not a duration: {value!r} (use seconds or e.g. 15m, 2h)")
    if seconds < MIN_INTERVAL:
        raise ValueError(f"interval {seconds:g}s is below the {MIN_INTERVAL:g}s floor")
    return seconds


def _language(value: object) -> str:
    if not isinstance(value, str) or not (m := _LANG.match(value.strip())):
        raise ValueError(f"not a language tag: {value!r} (e.g. en, de, uk)")
    return m.group(1).lower()


def _tags(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        items: list[object] = [value]
    elif isinstance(value, list):
        items = value
    else:
        raise ValueError("tags must be a list of strings")
    out: list[str] = []
    for item in items:
        if not isinstance(item, str | int) or isinstance(item, bool):
            raise ValueError("tags must be a list of strings")
        tag = str(item).strip()
        if tag and tag not in out:
            out.append(tag)
    return tuple(out)


def _register(
    col: _Collector, url: str, where: str, line: int | None, column: int | None = None
) -> bool:
    key = _dedup_key(url)
    if key in col.seen:
        first = col.seen[key]
        at = f" (first at line {first})" if first else ""
        col.add(where, f"duplicate feed URL {url}{at}", line, column)
        return False
    col.seen[key] = line
    return True


# -- YAML --------------------------------------------------------------------------

def _yaml_entry(doc: YamlDoc, col: _Collector, path: KeyPath, item: Any) -> FeedSpec | None:
    line, column = doc.line_of(path)
    where = format_path(path)
    if isinstance(item, str):
        item = {"url": item}
    if not isinstance(item, dict):
        col.add(where, "each feed is a URL or a mapping with a url", line, column)
        return None
    ok = True
    for key in item:
        if key not in _KEYS:
            kl, kc = doc.line_of((*path, key))
            col.add(format_path((*path, key)),
                    f"unknown key (allowed: {', '.join(sorted(_KEYS))})", kl, kc)
            ok = False
    url = item.get("url")
    if not isinstance(url, str) or not url.strip():
        col.add(f"{where}.url" if "url" in item else where,
                "missing url" if "url" not in item else "url must be a non-empty string",
                line, column)
        return None
    url = url.strip()
    problem = _url_problem(url)
    if problem:
        ul, uc = doc.line_of((*path, "url"))
        col.add(f"{where}.url", problem, ul, uc)
        return None
    values: dict[str, Any] = {}
    for key in ("title", "outlet"):
        value = item.get(key)
        if value is not None and not isinstance(value, str):
            kl, kc = doc.line_of((*path, key))
            col.add(f"{where}.{key}", "must be a string", kl, kc)
            ok = False
        elif isinstance(value, str) and value.strip():
            values[key] = value.strip()
    converters = (("language", _language), ("interval", parse_interval), ("tags", _tags))
    for key, convert in converters:
        if item.get(key) is None:
            continue
        try:
            values[key] = convert(item[key])
        except ValueError as e:
            kl, kc = doc.line_of((*path, key))
            col.add(f"{where}.{key}", str(e), kl, kc)
            ok = False
    if not _register(col, url, f"{where}.url", *doc.line_of((*path, "url"))):
        return None
    return FeedSpec(url=url, **values) if ok else None


def _load_yaml(text: str, source: str) -> tuple[list[FeedSpec], list[Problem]]:
    try:
        doc = load_yaml(text, source)
    except YamlError as e:
        return [], [e.problem]
    col = _Collector(source)
    data = doc.data
    base: KeyPath = ()
    if isinstance(data, dict):
        extra = [k for k in data if k != "feeds"]
        for k in extra:
            kl, kc = doc.line_of((k,))
            col.add(k, "unknown key (a feed list has only 'feeds')", kl, kc)
        data, base = data.get("feeds"), ("feeds",)
    if data is None:
        return [], col.problems
    if not isinstance(data, list):
        line, column = doc.line_of(base)
        col.add(format_path(base), "expected a list of feeds", line, column)
        return [], col.problems
    specs = [_yaml_entry(doc, col, (*base, i), item) for i, item in enumerate(data)]
    return [s for s in specs if s is not None], col.problems


# -- OPML --------------------------------------------------------------------------

def _opml_tags(folders: Sequence[str], category: str | None) -> tuple[str, ...]:
    raw = list(folders)
    if category:
        for part in re.split(r"[,]", category):
            raw.extend(p for p in part.strip().split("/") if p)
    return _tags([t for t in raw if t.strip()])


def _load_opml(data: bytes, source: str) -> tuple[list[FeedSpec], list[Problem]]:
    col = _Collector(source)
    specs: list[FeedSpec] = []
    stack: list[str | None] = []  # folder label per open outline (None: a feed outline)
    parser = expat.ParserCreate()
    state = {"body": False}

    def start(name: str, attrs: dict[str, str]) -> None:
        if name == "body":
            state["body"] = True
        if name != "outline" or not state["body"]:
            return
        line = parser.CurrentLineNumber
        where = f"outline at line {line}"
        url = (attrs.get("xmlUrl") or attrs.get("xmlurl") or "").strip()
        label = (attrs.get("title") or attrs.get("text") or "").strip()
        if not url:
            stack.append(label or None)
            return
        stack.append(None)
        problem = _url_problem(url)
        if problem:
            col.add(where, problem, line)
            return
        values: dict[str, Any] = {}
        outlet = attrs.get("outlet", "").strip()
        if outlet:
            values["outlet"] = outlet
        if label and label not in (url, outlet):  # a text that only repeats them says nothing
            values["title"] = label
        ok = True
        for key, convert in (("language", _language), ("interval", parse_interval)):
            raw = attrs.get(key, "").strip()
            if not raw:
                continue
            try:
                values[key] = convert(raw)
            except ValueError as e:
                col.add(f"{where}: {key}", str(e), line)
                ok = False
        folders = [f for f in stack[:-1] if f]
        values["tags"] = _opml_tags(folders, attrs.get("category"))
        if _register(col, url, where, line) and ok:
            specs.append(FeedSpec(url=url, **values))

    def end(name: str) -> None:
        if name == "outline" and state["body"] and stack:
            stack.pop()
        elif name == "body":
            state["body"] = False

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    # OPML never needs entities from a DTD; refuse to even look at one
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)

    def no_entities(*args: object) -> None:
        raise ValueError("entity declarations are not allowed in OPML")

    parser.EntityDeclHandler = no_entities
    try:
        parser.Parse(data, True)
    except expat.ExpatError as e:
        col.add("", f"invalid XML: {expat.ErrorString(e.code)}", e.lineno, e.offset + 1)
    except ValueError as e:
        col.add("", str(e), parser.CurrentLineNumber)
    return specs, col.problems


# -- public ------------------------------------------------------------------------

def _is_opml(path: Path, data: bytes) -> bool:
    suffix = path.suffix.lower()
    if suffix in (".opml", ".xml"):
        return True
    if suffix in (".yaml", ".yml"):
        return False
    return data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")


def load_feed_list(path: Path) -> list[FeedSpec]:
    """Every feed listed in one YAML or OPML file. Raises ConfigError listing every problem."""
    source = str(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError([Problem(source, "", f"cannot read feed list: {e.strerror or e}")]) \
            from e
    if _is_opml(path, data):
        specs, problems = _load_opml(data, source)
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise ConfigError([Problem(source, "", f"not UTF-8 text: {e.reason}")]) from e
        specs, problems = _load_yaml(text, source)
    if problems:
        raise ConfigError(problems)
    return specs


def load_feed_lists(paths: Iterable[Path]) -> list[FeedSpec]:
    """Feeds of several lists, first listing of a URL wins; every file's problems at once."""
    problems: list[Problem] = []
    out: dict[str, FeedSpec] = {}
    for path in paths:
        try:
            specs = load_feed_list(path)
        except ConfigError as e:
            problems.extend(e.problems)
            continue
        for spec in specs:
            out.setdefault(_dedup_key(spec.url), spec)
    if problems:
        raise ConfigError(problems)
    return list(out.values())


def export_opml(feeds: Iterable[FeedSpec], title: str = "news-monitor feeds") -> str:
    """The feeds as OPML 2.0: feed readers import it, ``load_feed_list`` reads it back."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title
    body = ET.SubElement(root, "body")
    for spec in feeds:
        label = spec.title or spec.outlet or spec.url
        attrs = {"type": "rss", "text": label}
        if spec.title:
            attrs["title"] = spec.title
        attrs["xmlUrl"] = spec.url
        if spec.outlet:
            attrs["outlet"] = spec.outlet
        if spec.language:
            attrs["language"] = spec.language
        if spec.interval is not None:
            attrs["interval"] = f"{spec.interval:g}"
        if spec.tags:
            attrs["category"] = ",".join(spec.tags)
        ET.SubElement(body, "outline", attrs)
    ET.indent(root, space="  ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
