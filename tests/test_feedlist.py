"""Feed lists in YAML and OPML: what loads, what is refused (all at once), and the shipped lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.errors import ConfigError
from monitor.fetch.feedlist import export_opml, load_feed_list, load_feed_lists, parse_interval
from monitor.models import FeedSpec

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_feed_list(path)
    return [str(p) for p in info.value.problems]


def test_yaml_full_and_bare_entries(tmp_path: Path) -> None:
    path = write(tmp_path, "feeds.yaml", """\
feeds:
  - https://feeds.example.com/a.xml
  - url: https://www.example.org/rss
    title: World
    outlet: Example Times
    language: en-GB
    interval: 15m
    tags: [world, europe]
  - url: http://example.net/feed
    tags: solo
    interval: 3600
""")
    assert load_feed_list(path) == [
        FeedSpec(url="https://feeds.example.com/a.xml"),
        FeedSpec(url="https://www.example.org/rss", title="World", outlet="Example Times",
                 language="en", interval=900.0, tags=("world", "europe")),
        FeedSpec(url="http://example.net/feed", interval=3600.0, tags=("solo",)),
    ]


def test_yaml_bare_list_and_empty(tmp_path: Path) -> None:
    assert load_feed_list(write(tmp_path, "a.yml", "- https://x.example/rss\n")) == [
        FeedSpec(url="https://x.example/rss")]
    assert load_feed_list(write(tmp_path, "b.yaml", "")) == []
    assert load_feed_list(write(tmp_path, "c.yaml", "feeds:\n")) == []


def test_yaml_every_problem_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, "feeds.yaml", """\
feeds:
  - url: ftp://example.com/feed
  - title: no url here
  - url: https://ok.example/rss
    colour: blue
  - url: https://ok.example/rss
  - url: https://lang.example/rss
    language: english
  - url: https://fast.example/rss
    interval: 5s
  - 42
""")
    found = problems(path)
    src = str(path)
    assert f"{src}:2:5: feeds[0].url: URL scheme must be http or https: 'ftp://example.com/feed'" \
        in found
    assert f"{src}:3:5: feeds[1]: missing url" in found
    assert any(p.startswith(f"{src}:5:5: feeds[2].colour: unknown key") for p in found)
    assert f"{src}:6:5: feeds[3].url: duplicate feed URL https://ok.example/rss " \
        "(first at line 4)" in found
    assert any(":8:" in p and "feeds[4].language: not a language tag" in p for p in found)
    assert any(":10:" in p and "feeds[5].interval" in p and "floor" in p for p in found)
    assert any(":11:" in p and "feeds[6]" in p for p in found)
    assert len(found) == 7


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    found = problems(write(tmp_path, "bad.yaml", "feeds:\n  - url: [unclosed\n"))
    assert len(found) == 1
    assert "invalid YAML" in found[0]
    assert str(tmp_path / "bad.yaml") in found[0]


def test_yaml_wrong_shape(tmp_path: Path) -> None:
    found = problems(write(tmp_path, "shape.yaml", "feeds: {url: https://x.example}\nother: 1\n"))
    assert any("feeds: expected a list of feeds" in p for p in found)
    assert any("other: unknown key" in p for p in found)


def test_missing_file_is_config_error(tmp_path: Path) -> None:
    found = problems(tmp_path / "nope.yaml")
    assert "cannot read feed list" in found[0]


OPML = """<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0">
  <head><title>subs</title></head>
  <body>
    <outline text="News">
      <outline text="Europe" title="Europe">
        <outline type="rss" text="BBC Europe" xmlUrl="https://feeds.example.co.uk/europe.xml"
                 language="en-GB" category="/world/europe,wire"/>
      </outline>
      <outline type="rss" text="Plain" xmlUrl="https://plain.example/rss"/>
    </outline>
    <outline type="rss" text="Top" xmlUrl="https://top.example/feed" outlet="Top Outlet"
             interval="600"/>
  </body>
</opml>
"""


def test_opml_nested_outlines(tmp_path: Path) -> None:
    assert load_feed_list(write(tmp_path, "subs.opml", OPML)) == [
        FeedSpec(url="https://feeds.example.co.uk/europe.xml", title="BBC Europe",
                 language="en", tags=("News", "Europe", "world", "europe", "wire")),
        FeedSpec(url="https://plain.example/rss", title="Plain", tags=("News",)),
        FeedSpec(url="https://top.example/feed", title="Top", outlet="Top Outlet",
                 interval=600.0),
    ]


def test_opml_detected_by_content(tmp_path: Path) -> None:
    assert len(load_feed_list(write(tmp_path, "subscriptions", OPML))) == 3


def test_opml_problems(tmp_path: Path) -> None:
    text = OPML.replace("https://plain.example/rss", "javascript:alert(1)").replace(
        "https://top.example/feed", "https://feeds.example.co.uk/europe.xml")
    found = problems(write(tmp_path, "bad.opml", text))
    assert any(":10:" in p and "URL scheme" in p for p in found)
    assert any(":12:" in p and "duplicate feed URL" in p and "first at line 7" in p
               for p in found)


def test_opml_not_xml_and_entities_refused(tmp_path: Path) -> None:
    found = problems(write(tmp_path, "broken.opml", "<opml><body><outline></body>"))
    assert "invalid XML" in found[0]
    bomb = ('<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY a "aaaaaaaaaa">]>'
            '<opml><body><outline xmlUrl="https://x.example/&a;"/></body></opml>')
    found = problems(write(tmp_path, "bomb.opml", bomb))
    assert "entity declarations are not allowed" in found[0]


def test_export_round_trip(tmp_path: Path) -> None:
    feeds = [
        FeedSpec(url="https://a.example/rss?x=1&y=2", title="A <&> B", outlet="A Times",
                 language="de", interval=900.0, tags=("one", "two")),
        FeedSpec(url="https://b.example/atom"),
    ]
    text = export_opml(feeds)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    assert load_feed_list(write(tmp_path, "out.opml", text)) == feeds


def test_load_feed_lists_merges_first_wins(tmp_path: Path) -> None:
    a = write(tmp_path, "a.yaml", "- url: https://x.example/rss\n  outlet: First\n")
    b = write(tmp_path, "b.opml", export_opml([FeedSpec(url="https://x.example/rss",
                                                        outlet="Second"),
                                               FeedSpec(url="https://y.example/rss")]))
    merged = load_feed_lists([a, b])
    assert [(f.url, f.outlet) for f in merged] == [("https://x.example/rss", "First"),
                                                 ("https://y.example/rss", None)]
    bad = write(tmp_path, "bad.yaml", "- ftp://nope\n")
    with pytest.raises(ConfigError) as info:
        load_feed_lists([a, bad, tmp_path / "missing.yaml"])
    assert len(info.value.problems) == 2


@pytest.mark.parametrize(("value", "seconds"), [
    (60, 60.0), (90.5, 90.5), ("15m", 900.0), ("2h", 7200.0), ("1d", 86400.0), ("120", 120.0),
    ("45 min", 2700.0),
])
def test_parse_interval(value: object, seconds: float) -> None:
    assert parse_interval(value) == seconds


@pytest.mark.parametrize("value", ["soon", True, "10s", 5, "-5m", None])
def test_parse_interval_refuses(value: object) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies by cause
        parse_interval(value)


def test_shipped_feed_lists_load_and_agree() -> None:
    yaml_feeds = load_feed_list(ROOT / "deploy" / "feeds.yaml")
    opml_feeds = load_feed_list(ROOT / "deploy" / "feeds.opml")
    assert opml_feeds == yaml_feeds
    assert 40 <= len(yaml_feeds) <= 80
    for spec in yaml_feeds:
        assert spec.outlet, spec.url
        assert spec.language, spec.url
    languages = {f.language for f in yaml_feeds}
    assert {"en", "uk", "ru", "de", "fr"} <= languages
    tags = {t for f in yaml_feeds for t in f.tags}
    assert {"ukraine", "russia", "europe", "international", "wire"} <= tags
