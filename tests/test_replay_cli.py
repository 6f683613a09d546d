"""The replay contract and the CLI's setup checks, through the real console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SEEDS = sorted((Path(__file__).resolve().parent / "data" / "seeds").glob("*.txt"))


def cli(*args: str, cwd: Path = ROOT, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWS_MONITOR_")}
    return subprocess.run([sys.executable, "-m", "monitor", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, input=stdin, timeout=120, check=False)


def seed_records() -> list[dict[str, str]]:
    out = []
    for i, path in enumerate(SEEDS):
        text = path.read_text(encoding="utf-8")
        out.append({"id": f"seed{i}", "title": text.split(". ")[0][:150], "content": text,
                    "outlet": ["DW", "RT"][i], "url": f"https://outlet{i}.example/paris",
                    "published": f"2025-03-11T1{8 - i}:00:00Z"})
    return out


def test_replay_seeds_form_one_story_with_one_new_alert(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in seed_records()))
    res = cli("replay", str(src), "--rules", str(ROOT / "rules"), "--out", str(tmp_path / "o"))
    assert res.returncode == 0, res.stderr
    out = [json.loads(x) for x in (tmp_path / "o").read_text().splitlines()]
    assert [o["id"] for o in out] == ["seed0", "seed1"]  # input order, not published order
    assert out[0]["story_id"] == out[1]["story_id"]
    assert all(o["rules"] for o in out)
    # seed1 was published first, so it opened the story; seed0 came an hour later from a
    # second outlet, past the 30-minute update interval: one update, never a second "new".
    assert [o["alert"] for o in out] == ["story.updated", "story.new"]
    assert "2 articles" in res.stderr


def test_replay_reports_bad_lines_and_keeps_going(tmp_path: Path) -> None:
    recs = seed_records()
    lines = [json.dumps(recs[0]), "{not json", json.dumps({"id": "x"}), "[1, 2]",
             json.dumps({"title": "no id"}),
             json.dumps({**recs[0], "id": "dup", "title": recs[0]["title"]}),
             json.dumps({"id": "other", "title": "Bakery wins bread award in the valley",
                         "published": "2025-03-12T00:00:00Z"})]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(lines) + "\n")
    res = cli("replay", str(src), "--rules", str(ROOT / "rules"))
    assert res.returncode == 0, res.stderr
    for n in (2, 3, 4, 5):
        assert f"skipped line {n}:" in res.stderr
    out = [json.loads(x) for x in res.stdout.splitlines()]
    assert [o["id"] for o in out] == ["seed0", "dup", "other"]
    assert out[1]["story_id"] == out[0]["story_id"] and out[1]["alert"] is None  # same URL
    assert out[2]["rules"] == [] and out[2]["alert"] is None
    assert out[2]["story_id"] != out[0]["story_id"]


def test_check_accepts_the_shipped_setup() -> None:
    res = cli("check", "--config", str(ROOT / "deploy" / "monitor.yaml"))
    assert res.returncode == 0, res.stderr
    assert "ok:" in res.stdout


def test_check_reports_broken_config_with_file_line_and_key(tmp_path: Path) -> None:
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text(f"rules:\n  paths: [{ROOT / 'rules'}]\npoll:\n  concurrency: -3\n"
                   "  timeout: soon\n")
    res = cli("check", "--config", str(cfg))
    assert res.returncode == 2
    assert f"{cfg}:4:3: poll.concurrency" in res.stderr
    assert f"{cfg}:5:3: poll.timeout" in res.stderr


def test_check_reports_broken_rule_file_with_file_and_line(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    bad = rules / "bad.yaml"
    bad.write_text("rules:\n  - id: one\n    title: One\n    severity: high\n"
                   "    query: '(peacekeep* AND Ukraine'\n")
    feeds = tmp_path / "feeds.yaml"
    feeds.write_text("- url: https://example.org/feed.xml\n")
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text(f"rules:\n  paths: [{rules}]\nfeeds:\n  files: [{feeds}]\n")
    res = cli("check", "--config", str(cfg))
    assert res.returncode == 2
    assert f"{bad}:5" in res.stderr
    assert "one" in res.stderr


def test_match_explains_from_stdin() -> None:
    rec = seed_records()[0]
    res = cli("match", "-", "--json", "--rules", str(ROOT / "rules"), stdin=json.dumps(rec))
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.splitlines()[0])
    assert "peace" in json.dumps(out).lower()


def test_match_explains_a_feed_url_within_the_address_guard(tmp_path: Path) -> None:
    from tests.support.feed_server import FeedServer
    from tests.test_e2e import rss

    rec = seed_records()[0]
    cfg = tmp_path / "monitor.yaml"
    with FeedServer() as srv:
        srv.set("/f.xml", rss([{"title": rec["title"], "link": "http://example.org/p",
                                "summary": rec["content"]}]))
        blocked = cli("match", srv.url("/f.xml"), "--rules", str(ROOT / "rules"), cwd=tmp_path)
        assert blocked.returncode == 2
        assert "blocked_address" in blocked.stderr
        (tmp_path / "feeds.yaml").write_text(f"- url: {srv.url('/f.xml')}\n")
        cfg.write_text(f"rules:\n  paths: [{ROOT / 'rules'}]\nfeeds:\n  files: [feeds.yaml]\n"
                       "poll:\n  allow_networks: [127.0.0.0/8]\n")
        res = cli("match", srv.url("/f.xml"), "--json", "--config", str(cfg), cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        out = json.loads(res.stdout.splitlines()[0])
        assert "ukraine-peacekeeping-force" in json.dumps(out)


def replay_lines(tmp_path: Path, lines: list[bytes]) -> tuple[subprocess.CompletedProcess[str],
                                                             list[dict[str, Any]]]:
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    res = cli("replay", str(src), "--rules", str(ROOT / "rules"), "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    return res, [json.loads(x) for x in out.read_text().splitlines()]


def test_replay_reports_a_line_that_is_not_utf8_and_keeps_going(tmp_path: Path) -> None:
    recs = seed_records()
    res, rows = replay_lines(tmp_path, [
        json.dumps(recs[0]).encode(),
        b'{"id": "latin1", "title": "Caf\xe9 owners protest new rules"}',
        json.dumps(recs[1]).encode()])
    assert "skipped line 2: not UTF-8" in res.stderr
    assert [r["id"] for r in rows] == ["seed0", "seed1"]


def test_replay_skips_a_published_time_that_is_not_iso_8601(tmp_path: Path) -> None:
    res, rows = replay_lines(tmp_path, [json.dumps(r).encode() for r in [
        {"id": "rfc822", "title": "Bakery wins award", "published": "Tue, 11 Mar 2025 18:00:00"},
        {"id": "number", "title": "Bakery wins award", "published": 1741716000},
        {"id": "null", "title": "Bakery wins award", "published": None},
        {"id": "empty", "title": "Bakery wins award", "published": ""}]])
    assert "skipped line 1: 'published' is not an ISO 8601 time" in res.stderr
    assert "skipped line 2: 'published' must be an ISO 8601 string" in res.stderr
    assert [r["id"] for r in rows] == ["null", "empty"]  # absent dates are fine: undated


def test_replay_gives_ids_back_as_they_were_given(tmp_path: Path) -> None:
    recs = seed_records()
    _, rows = replay_lines(tmp_path, [json.dumps({**recs[0], "id": 7}).encode(),
                                      json.dumps({**recs[1], "id": "7"}).encode()])
    assert [r["id"] for r in rows] == [7, "7"]
    assert rows[0]["story_id"] == rows[1]["story_id"]


def test_replay_out_into_a_missing_folder_is_a_setup_error(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(seed_records()[0]) + "\n")
    out = tmp_path / "nope" / "out.jsonl"
    res = cli("replay", str(src), "--rules", str(ROOT / "rules"), "--out", str(out))
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert f"cannot write {out}: folder {out.parent} does not exist" in res.stderr
    if Path("/dev/full").exists():  # the folder exists, the write fails: same kind of message
        full = cli("replay", str(src), "--rules", str(ROOT / "rules"), "--out", "/dev/full")
        assert full.returncode == 2
        assert "Traceback" not in full.stderr
        assert "cannot write /dev/full: No space left on device" in full.stderr


def test_replay_takes_story_and_alert_tuning_from_the_config(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in seed_records()))
    (tmp_path / "feeds.yaml").write_text("[]\n")

    def run(tuning: str) -> list[dict[str, Any]]:
        cfg = tmp_path / "monitor.yaml"
        cfg.write_text(f"feeds: {{files: [feeds.yaml]}}\nrules: {{paths: [{ROOT / 'rules'}]}}\n"
                       + tuning)
        res = cli("replay", str(src), "--config", str(cfg), "--out", str(tmp_path / "o"))
        assert res.returncode == 0, res.stderr
        return [json.loads(x) for x in (tmp_path / "o").read_text().splitlines()]

    # The second outlet's article comes an hour after the first: an update by default.
    default = run("")
    assert [o["alert"] for o in default] == ["story.updated", "story.new"]
    assert run("alerts: {update_interval: 2h}\n")[0]["alert"] is None
    assert run("alerts: {updates: 'off'}\n")[0]["alert"] is None
    short = run("stories: {window: 30m}\n")
    assert short[0]["story_id"] != short[1]["story_id"]
    assert [o["alert"] for o in short] == ["story.new", "story.new"]
    # The seeds share their story by a similarity of ~0.5: a bar above it splits them.
    strict = run("stories: {join_threshold: 0.9}\n")
    assert strict[0]["story_id"] != strict[1]["story_id"]
    assert run("stories: {join_threshold: 0.3}\n")[0]["story_id"] == default[0]["story_id"]


def test_replay_reports_the_story_each_article_ends_in(tmp_path: Path) -> None:
    """A later report cuts a story in two (story repair): the earlier reports it moved are
    reported in their final story, and ``stories.split_bar: 0`` turns the repair off."""
    stories = Path(__file__).resolve().parent / "data" / "stories"
    names = ["navy_2011_b", "navy_2008_a", "navy_2008_b", "navy_2011_a"]
    records = []
    for n, name in enumerate(names):
        title, _, body = (stories / f"{name}.txt").read_text(encoding="utf-8").partition("\n")
        records.append({"id": name, "title": title, "content": body, "outlet": f"o{n}",
                        "url": f"https://o{n}.example/{name}",
                        "published": f"2025-03-11T12:{n:02d}:00Z"})
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "feeds.yaml").write_text("[]\n")

    def run(stories_cfg: str) -> dict[str, str]:
        cfg = tmp_path / "monitor.yaml"
        cfg.write_text(f"feeds: {{files: [feeds.yaml]}}\nrules: {{paths: [{ROOT / 'rules'}]}}\n"
                       f"stories: {stories_cfg}\n")
        res = cli("replay", str(src), "--config", str(cfg), "--out", str(tmp_path / "o"))
        assert res.returncode == 0, res.stderr
        return {o["id"]: o["story_id"]
                for o in map(json.loads, (tmp_path / "o").read_text().splitlines())}

    # a join threshold low enough for the story to take in both navy actions
    repaired = run("{join_threshold: 0.15}")
    assert repaired["navy_2008_a"] == repaired["navy_2008_b"]
    assert repaired["navy_2011_a"] == repaired["navy_2011_b"]
    assert repaired["navy_2008_a"] != repaired["navy_2011_b"]
    assert len(set(run("{join_threshold: 0.15, split_bar: 0}").values())) == 1
