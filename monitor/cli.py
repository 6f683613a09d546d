"""``news-monitor``: run the daemon, poll once, check a setup, replay or explain articles.

Exit codes: 0 success; 1 the work ran but failed (for ``once``: every feed failed, or an
alert could not be delivered to a sink and waits for a retry or went to the dead-letter
file); 2 the setup is wrong (config, rules, feeds) and nothing ran; 75 (``EX_TEMPFAIL``)
the store could not be opened at start, which may pass by itself (Redis not up yet): the
systemd unit restarts on 75 but not on 2, where a restart would only fail the same way.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from loguru import logger

from monitor import __version__
from monitor.config import Settings, load_settings
from monitor.errors import ConfigError, MonitorError, RuleError, StoreError
from monitor.logs import setup_logging

if TYPE_CHECKING:
    from monitor.alerts.sinks import Sink
    from monitor.match.rules import RuleSet
    from monitor.service import RunSummary

EXIT_FAILED = 1
EXIT_SETUP = 2
EXIT_TEMPFAIL = 75


def _settings(ctx: click.Context, log_level: str | None = None) -> Settings:
    """The settings, loaded once per run; logging is set up with them.

    ``log_level`` is the command's own default, below ``--log-level`` and above the
    configured level: a replay is quiet unless asked, whatever the daemon logs.
    """
    obj: dict[str, Any] = ctx.ensure_object(dict)
    if "settings" not in obj:
        try:
            obj["settings"] = load_settings(obj.get("config"))
        except ConfigError as e:
            click.echo(f"error: {e}", err=True)
            ctx.exit(EXIT_SETUP)
        s: Settings = obj["settings"]
        setup_logging(obj.get("log_level") or log_level or s.log.level,
                      obj.get("log_format") or s.log.format)
    settings: Settings = obj["settings"]
    return settings


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    """Keep an option given after the command; one given before it stays when it is not."""
    if value is not None and param.name is not None:
        ctx.ensure_object(dict)[param.name] = value


LOG_LEVELS = click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False)
LOG_FORMATS = click.Choice(["text", "json"])
_config_option = click.option(
    "--config", "-c", type=click.Path(path_type=Path, dir_okay=False), expose_value=False,
    callback=_remember, help="Config file (also accepted before the command).")
_log_level_option = click.option(
    "--log-level", type=LOG_LEVELS, expose_value=False, callback=_remember,
    help="Log level (default: log.level; also accepted before the command).")
_log_format_option = click.option(
    "--log-format", type=LOG_FORMATS, expose_value=False, callback=_remember,
    help="Log format (default: log.format; also accepted before the command).")


def common_options(command: Callable[..., None]) -> Callable[..., None]:
    """``--config``, ``--log-level`` and ``--log-format``, after the command as before it."""
    return _config_option(_log_level_option(_log_format_option(command)))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="news-monitor")
@click.option("--config", "-c", type=click.Path(path_type=Path, dir_okay=False),
              help="Config file (default: $NEWS_MONITOR_CONFIG, ./monitor.yaml, "
                   "~/.config/news-monitor/monitor.yaml, /etc/news-monitor/monitor.yaml).")
@click.option("--log-level", type=LOG_LEVELS)
@click.option("--log-format", type=LOG_FORMATS)
@click.pass_context
def main(ctx: click.Context, config: Path | None, log_level: str | None,
         log_format: str | None) -> None:
    """Watch news feeds, match rules, and alert once per story."""
    obj = ctx.ensure_object(dict)
    obj.update(log_level=log_level and log_level.upper(), log_format=log_format)
    if config is not None:
        obj["config"] = config


def _run_service(ctx: click.Context, once: bool) -> None:
    from monitor.fdlimit import raise_open_files_limit
    from monitor.service import Service

    settings = _settings(ctx)
    before, after = raise_open_files_limit()
    if after != before:
        logger.debug("open files limit raised from {} to {}", before, after)

    async def go() -> int:
        service = Service(settings)
        try:
            await service.start()
        except StoreError as e:
            logger.error("cannot start, the store is unavailable (try again later): {}", e)
            await service.close()
            return EXIT_TEMPFAIL
        except MonitorError as e:
            logger.error("cannot start: {}", e)
            await service.close()
            return EXIT_SETUP
        try:
            if once:
                summary = await service.run_once()
                logger.info("polled {} feeds: {} failed, {} new articles, {} alerts, "
                            "{} deliveries, {} failed deliveries", summary.feeds,
                            summary.failed, summary.new, summary.alerts, summary.delivered,
                            summary.delivery_failures)
                return _once_exit_code(summary)
            await service.run()
            return 0
        finally:
            await service.close()

    ctx.exit(asyncio.run(go()))


def _once_exit_code(summary: RunSummary) -> int:
    """1 when the run let the operator down; 0 when it did its job, maybe not for every feed.

    ``once`` runs from cron, where a non-zero exit pages someone. Alerts that did not reach
    a sink are exactly what they run it for, and every feed failing means the network, the
    proxy or the machine is at fault. One dead feed among sixty is neither: ``feeds`` lists
    it with its error, and it is tried again next time.
    """
    all_failed = bool(summary.feeds) and summary.failed == summary.feeds
    return EXIT_FAILED if all_failed or summary.delivery_failures else 0


@main.command()
@common_options
@click.pass_context
def run(ctx: click.Context) -> None:
    """Run the daemon until SIGTERM (SIGHUP reloads config, feeds and rules)."""
    _run_service(ctx, once=False)


@main.command()
@common_options
@click.pass_context
def once(ctx: click.Context) -> None:
    """Poll every feed once, deliver the alerts, and exit."""
    _run_service(ctx, once=True)


@main.command()
@common_options
@click.option("--show", is_flag=True, help="Print the effective configuration (secrets masked).")
@click.pass_context
def check(ctx: click.Context, show: bool) -> None:
    """Validate config, feed lists, rules and sinks; list every problem found.

    Whatever ``run`` would refuse at start must fail here too (the installer gates on
    this), so the sinks are built as ``run`` builds them, which reads their secrets.
    """
    from monitor.alerts.build import build_sinks
    from monitor.config import describe, prepare_state_dir
    from monitor.match.rules import NO_ACTIVE_RULES, load_rules
    from monitor.service import load_feeds

    problems: list[str] = []
    settings = _settings(ctx)
    n_feeds = n_rules = 0
    idle = False
    try:
        n_feeds = len(load_feeds(settings))
    except ConfigError as e:
        problems.append(str(e))
    try:
        rule_set = load_rules(settings.rules.paths)
        n_rules, idle = len(rule_set), not rule_set.active
    except RuleError as e:
        problems.append(str(e))
    try:
        prepare_state_dir(settings, keep=False, strict=True)
    except ConfigError as e:
        problems.append(str(e))
    try:
        sinks = build_sinks(settings)
    except ConfigError as e:
        problems.append(str(e))
    else:
        asyncio.run(_close_sinks(sinks.values()))
    if show:
        click.echo(json.dumps(describe(settings), indent=2, default=str))
    if problems:
        click.echo("error: " + "\n".join(problems), err=True)
        ctx.exit(EXIT_SETUP)
    if idle:
        click.echo(f"warning: {NO_ACTIVE_RULES}", err=True)
    click.echo(f"ok: config {settings.source}, {n_feeds} feeds, {n_rules} rules")


async def _close_sinks(sinks: Iterable[Sink]) -> None:
    for sink in sinks:
        await sink.aclose()


def _load_rule_set(ctx: click.Context, rules_path: Path | None) -> RuleSet:
    """``--rules`` when given, else the configured rules; a broken set exits with the reasons."""
    from monitor.match.rules import load_rules

    try:
        return load_rules([rules_path] if rules_path else _settings(ctx).rules.paths)
    except RuleError as e:
        click.echo(f"error: {e}", err=True)
        ctx.exit(EXIT_SETUP)


def _lines(path: str) -> Iterator[bytes]:
    """Raw lines: each is decoded on its own, so one that is not UTF-8 is one bad line."""
    if path == "-":
        yield from sys.stdin.buffer
        return
    with open(path, "rb") as fh:
        yield from fh


@main.command()
@common_options
@click.argument("articles", type=click.Path(allow_dash=True))
@click.option("--rules", "rules_path", type=click.Path(exists=True, path_type=Path),
              help="Rule file or folder (default: the configured rules).")
@click.option("--out", type=click.Path(dir_okay=False, allow_dash=True), default="-",
              help="Results file (default: stdout).")
@click.pass_context
def replay(ctx: click.Context, articles: str, rules_path: Path | None, out: str) -> None:
    """Run recorded articles (JSON lines) through the matcher, dedup and story code."""
    from monitor.ingest import Tuning
    from monitor.replay import replay as do_replay

    # Quiet unless asked: the summary and the skipped lines are what a replay reports.
    settings = _settings(ctx, log_level="WARNING")
    rules = _load_rule_set(ctx, rules_path)
    if out != "-" and not Path(out).parent.is_dir():
        # Found before the run, not after it: a long replay should not be lost to a typo.
        click.echo(f"error: cannot write {out}: folder {Path(out).parent} does not exist",
                   err=True)
        ctx.exit(EXIT_SETUP)
    try:
        tuning = Tuning.of(settings)   # as the daemon reads them
        results, stats = asyncio.run(do_replay(
            _lines(articles), rules, story_config=tuning.stories, policy=tuning.policy,
            seen_ttl=tuning.seen_ttl))
    except OSError as e:
        click.echo(f"error: cannot read {articles}: {e}", err=True)
        ctx.exit(EXIT_SETUP)
    for problem in stats.bad:
        click.echo(f"skipped {problem}", err=True)
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results)
    if out == "-":
        sys.stdout.write(text)
    else:
        try:
            Path(out).write_text(text, encoding="utf-8")
        except OSError as e:
            click.echo(f"error: cannot write {out}: {e.strerror or e}", err=True)
            ctx.exit(EXIT_SETUP)
    click.echo(f"{stats.articles} articles ({len(stats.bad)} bad lines skipped): "
               f"{stats.matched} matched a rule, {stats.duplicates} duplicates, "
               f"{stats.stories} stories, alerts {json.dumps(stats.alerts)}", err=True)


@main.command()
@common_options
@click.argument("source", type=str)
@click.option("--rules", "rules_path", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per article.")
@click.option("--all", "show_all", is_flag=True, help="Also explain rules that did not match.")
@click.pass_context
def match(ctx: click.Context, source: str, rules_path: Path | None, as_json: bool,
          show_all: bool) -> None:
    """Explain which rules match: SOURCE is a JSONL file, '-', a feed file or a feed URL."""
    from monitor.match.explain import explain, render_text, to_json

    rules = _load_rule_set(ctx, rules_path)
    try:
        articles = _load_articles(source, _settings(ctx))
    except (MonitorError, OSError, ValueError) as e:
        click.echo(f"error: {source}: {e}", err=True)
        ctx.exit(EXIT_SETUP)
    for art in articles:
        exps = explain(rules, art)
        if as_json:
            click.echo(json.dumps(to_json(art, exps, include_misses=show_all), ensure_ascii=False))
        else:
            click.echo(render_text(art, exps, include_misses=show_all))


def _load_articles(source: str, settings: Settings) -> list[Any]:
    from monitor.fetch.parse import parse_feed
    from monitor.models import FeedSpec
    from monitor.replay import ReplayStats, read_records

    now = datetime.now(UTC)
    if source.startswith(("http://", "https://")):
        from monitor.fetch.http import Fetcher, fetch_limits

        limits = fetch_limits(settings.poll)

        async def get() -> bytes:
            async with Fetcher(limits) as f:
                res = await f.fetch(source)
                return res.body or b""

        body = asyncio.run(get())
        return list(parse_feed(body, FeedSpec(url=source), fetched_at=now).articles)
    if source == "-" or source.endswith((".jsonl", ".json", ".ndjson")):
        stats = ReplayStats()
        arts = [a for _, a in read_records(_lines(source), stats)]
        for problem in stats.bad:
            click.echo(f"skipped {problem}", err=True)
        return arts
    body = Path(source).read_bytes()
    return list(parse_feed(body, FeedSpec(url=Path(source).resolve().as_uri()),
                           fetched_at=now).articles)


@main.group(invoke_without_command=True)
@common_options
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def feeds(ctx: click.Context, as_json: bool) -> None:
    """List every feed's health (or manage the feed list: add, import, export)."""
    if ctx.invoked_subcommand is None:
        _feed_health(ctx, as_json)


def _feed_health(ctx: click.Context, as_json: bool) -> None:
    from monitor.service import load_feeds
    from monitor.store import open_store

    settings = _settings(ctx)

    async def go() -> list[dict[str, Any]]:
        store = open_store(settings.store_url(), prefix=settings.store.prefix,
                           state_dir=settings.state_dir)
        await store.open()
        try:
            states = {s.url: s for s in await store.all_feed_states()}
        finally:
            await store.close()
        rows = []
        for url, spec in load_feeds(settings).items():
            st = states.get(url)
            rows.append({
                "url": url, "outlet": spec.outlet, "language": spec.language,
                "status": ("never polled" if st is None or (st.last_success is None
                                                             and st.failures == 0)
                           else "gone" if st.gone
                           else "failing" if st.failures >= settings.poll.failing_after
                           else "erroring" if st.failures else "ok"),
                "failures": st.failures if st else 0,
                "last_success": st.last_success.isoformat() if st and st.last_success else None,
                "last_error": f"{st.last_error_kind}: {st.last_error}" if st and st.last_error
                else None,
                "interval_s": int(st.interval) if st and st.interval else None,
                "next_check": st.next_check.isoformat() if st and st.next_check else None,
                "items_seen": st.items_seen if st else 0,
                "items_per_day": (round(st.items_per_day, 1)
                                  if st and st.items_per_day is not None else None),
            })
        return rows

    try:
        rows = asyncio.run(go())
    except MonitorError as e:
        click.echo(f"error: {e}", err=True)
        ctx.exit(EXIT_SETUP)
    if as_json:
        for r in rows:
            click.echo(json.dumps(r, ensure_ascii=False))
        return
    for r in rows:
        err = f"  last error: {r['last_error']}" if r["last_error"] else ""
        per_day = "?" if r["items_per_day"] is None else f"{r['items_per_day']:g}"
        ok = (r["last_success"] or "-")[:16].replace("T", " ")   # to the minute, UTC
        every = "-" if r["interval_s"] is None else _span(r["interval_s"])
        click.echo(f"{r['status']:<12} {r['failures']:>3} fails  last ok {ok:<16}  "
                   f"every {every:>4}  items {r['items_seen']:>5}  {per_day:>5}/day  "
                   f"{r['url']}{err}")


def _span(seconds: int) -> str:
    """``90`` -> ``90s``, ``900`` -> ``15m``, ``21600`` -> ``6h``: what a glance needs."""
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 2 * 3600:
        return f"{round(seconds / 60)}m"
    return f"{seconds / 3600:.3g}h"


def _append_feeds(path: Path, specs: list[Any]) -> None:
    """Append entries to a YAML feed list, leaving what is there (comments too) untouched."""
    import yaml

    entries = []
    for spec in specs:
        entry: dict[str, Any] = {"url": spec.url}
        for key in ("outlet", "language"):
            if getattr(spec, key):
                entry[key] = getattr(spec, key)
        if spec.tags:
            entry["tags"] = list(spec.tags)
        entries.append(entry)
    text = yaml.safe_dump(entries, allow_unicode=True, sort_keys=False)
    existing = path.read_text(encoding="utf-8") if path.exists() else ""
    if existing and not existing.endswith("\n"):
        existing += "\n"
    path.write_text(existing + text, encoding="utf-8")


def _target_list(settings: Settings, file: Path | None) -> Path:
    if file is not None:
        return file
    for p in settings.feeds.files:
        if p.suffix in (".yaml", ".yml"):
            return p
    raise click.UsageError("no YAML feed list configured: pass --file")


@feeds.command("add")
@common_options
@click.argument("url")
@click.option("--file", type=click.Path(path_type=Path, dir_okay=False),
              help="YAML feed list to add to (default: the first configured one).")
@click.option("--outlet", default=None)
@click.option("--language", default=None)
@click.pass_context
def feeds_add(ctx: click.Context, url: str, file: Path | None, outlet: str | None,
              language: str | None) -> None:
    """Find the feed behind URL (a feed or a web page) and add it to the feed list."""
    from monitor.fetch.discover import discover
    from monitor.fetch.http import Fetcher, fetch_limits
    from monitor.models import FeedSpec
    from monitor.service import load_feeds

    settings = _settings(ctx)
    target = _target_list(settings, file)

    async def find() -> list[str]:
        async with Fetcher(fetch_limits(settings.poll)) as f:
            return await discover(f, url)

    try:
        found = asyncio.run(find())
    except MonitorError as e:
        click.echo(f"error: {e}", err=True)
        ctx.exit(EXIT_FAILED)
    if not found:
        click.echo(f"error: no feed found at {url}", err=True)
        ctx.exit(EXIT_FAILED)
    feed_url = found[0]
    if feed_url in load_feeds(settings):
        click.echo(f"already listed: {feed_url}")
        return
    _append_feeds(target, [FeedSpec(url=feed_url, outlet=outlet, language=language)])
    click.echo(f"added {feed_url} to {target}" + (
        f" (also found: {', '.join(found[1:4])})" if len(found) > 1 else ""))


@feeds.command("import")
@common_options
@click.argument("opml", type=click.Path(exists=True, path_type=Path, dir_okay=False))
@click.option("--file", type=click.Path(path_type=Path, dir_okay=False))
@click.pass_context
def feeds_import(ctx: click.Context, opml: Path, file: Path | None) -> None:
    """Add the feeds of an OPML export to the YAML feed list (skipping known ones)."""
    from monitor.fetch.feedlist import load_feed_list
    from monitor.service import load_feeds

    settings = _settings(ctx)
    target = _target_list(settings, file)
    try:
        incoming = load_feed_list(opml)
    except ConfigError as e:
        click.echo(f"error: {e}", err=True)
        ctx.exit(EXIT_SETUP)
    known = load_feeds(settings)
    new = [s for s in incoming if s.url not in known]
    if new:
        _append_feeds(target, new)
    click.echo(f"imported {len(new)} feed(s) into {target}, {len(incoming) - len(new)} known")


@feeds.command("export")
@common_options
@click.pass_context
def feeds_export(ctx: click.Context) -> None:
    """Print every configured feed as OPML."""
    from monitor.fetch.feedlist import export_opml
    from monitor.service import load_feeds

    settings = _settings(ctx)
    click.echo(export_opml(load_feeds(settings).values()), nl=False)


@main.command()
@common_options
@click.option("--group", default="news-monitor-tail", show_default=True,
              help="Consumer group: consumers in one group share the work.")
@click.option("--consumer", default=None, help="This consumer's name (default: host-pid).")
@click.option("--json", "as_json", is_flag=True, help="Print alerts as JSON lines.")
@click.option("--count", type=int, default=None, help="Exit after this many alerts.")
@click.option("--new", "only_new", is_flag=True,
              help="A new group starts at the stream's end instead of its beginning.")
@click.pass_context
def tail(ctx: click.Context, group: str, consumer: str | None, as_json: bool,
         count: int | None, only_new: bool) -> None:
    """Follow the Redis alert stream, acknowledging each alert once printed."""
    import os
    import socket

    from rich.console import Console

    from monitor.alerts.console import renderable
    from monitor.alerts.consumer import StreamConsumer
    from monitor.errors import SinkError

    settings = _settings(ctx)
    url = settings.redis_url()
    if not url:
        click.echo("error: no Redis configured (redis.url or NEWS_MONITOR_REDIS_URL)", err=True)
        ctx.exit(EXIT_SETUP)
    name = consumer or f"{socket.gethostname()}-{os.getpid()}"
    reader = StreamConsumer(url, settings.sinks.redis.stream, group, name)

    console = None if as_json else Console(highlight=False)

    async def show(payload: dict[str, Any]) -> None:
        if console is None:
            click.echo(json.dumps(payload, ensure_ascii=False))
        else:
            console.print(renderable(payload))

    async def go() -> int:
        try:
            return await reader.run(show, limit=count, from_start=not only_new)
        finally:
            await reader.aclose()

    try:
        asyncio.run(go())
    except SinkError as e:
        click.echo(f"error: {e}", err=True)
        ctx.exit(EXIT_FAILED)
    except KeyboardInterrupt:
        pass
