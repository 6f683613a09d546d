"""One validated configuration: YAML file, then environment overrides, checked all at once.

Where a value comes from, in order of precedence:

1. ``NEWS_MONITOR_<SECTION>__<KEY>`` environment variables (``NEWS_MONITOR_POLL__INTERVAL=5m``),
   plus the short aliases in ``ENV_ALIASES`` (``NEWS_MONITOR_REDIS_URL``);
2. the YAML file (``--config``, ``$NEWS_MONITOR_CONFIG``, ``./monitor.yaml``,
   ``~/.config/news-monitor/monitor.yaml``, ``/etc/news-monitor/monitor.yaml``);
3. the defaults below, which run the service with nothing installed: SQLite state in
   ``./state``, the shipped feed list and rules, alerts on stdout and in a JSONL file.

Durations take seconds or ``30s``/``15m``/``6h``/``2d``; sizes take bytes or ``512KB``/``10MB``.
Relative paths are resolved against the config file's folder (the working directory without one).
Secrets (URLs with passwords, tokens) are ``SecretStr``: never printed, logged or put in errors.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    IPvAnyNetwork,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from monitor.errors import ConfigError, Problem
from monitor.redis_url import SENTINEL_PREFIX, URL_PREFIXES, parse_sentinel_url
from monitor.yamlsafe import KeyPath, YamlDoc, YamlError, format_path, load_yaml_file

ENV_PREFIX = "NEWS_MONITOR_"
ENV_ALIASES: dict[str, tuple[str, ...]] = {
    "NEWS_MONITOR_REDIS_URL": ("redis", "url"),
    "NEWS_MONITOR_STATE_DIR": ("state_dir",),
    "NEWS_MONITOR_LOG_LEVEL": ("log", "level"),
}
SEARCH_PATH = (
    Path("monitor.yaml"),
    Path("~/.config/news-monitor/monitor.yaml"),
    Path("/etc/news-monitor/monitor.yaml"),
)

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZES = {"b": 1, "kb": 1024, "k": 1024, "mb": 1024**2, "m": 1024**2, "gb": 1024**3, "g": 1024**3}
_NUM_UNIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def _duration(value: Any) -> Any:
    if isinstance(value, timedelta | bool):
        return value
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    if isinstance(value, str):
        m = _NUM_UNIT.match(value)
        if m and m.group(2).lower() in {"", *_UNITS}:
            return timedelta(seconds=float(m.group(1)) * _UNITS.get(m.group(2).lower(), 1))
        raise ValueError(f"not a duration: {value!r} (use seconds or e.g. 30s, 15m, 6h, 2d)")
    return value


def _size(value: Any) -> Any:
    if isinstance(value, str):
        m = _NUM_UNIT.match(value)
        if m and m.group(2).lower() in {"", *_SIZES}:
            return int(float(m.group(1)) * _SIZES.get(m.group(2).lower(), 1))
        raise ValueError(f"not a size: {value!r} (use bytes or e.g. 512KB, 10MB)")
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration)]
Size = Annotated[int, BeforeValidator(_size), Field(gt=0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StoreSettings(_Section):
    url: SecretStr = Field(
        default=SecretStr(""),
        description="'' or sqlite:///path.db (embedded), or redis://[:password@]host:port/db "
                    "or redis+sentinel://host:26379[,host:26379]/service/db",
    )
    prefix: str = Field(default="news-monitor", min_length=1, pattern=r"^[A-Za-z0-9:_.-]+$")


class RedisSettings(_Section):
    url: SecretStr | None = Field(default=None, description="Redis for the alert sink")
    password_file: Path | None = Field(
        default=None, description="file holding the password (systemd LoadCredential=)"
    )


class FeedsSettings(_Section):
    files: list[Path] = Field(default_factory=lambda: [Path("deploy/feeds.yaml")])


class RulesSettings(_Section):
    paths: list[Path] = Field(default_factory=lambda: [Path("rules")])
    watch: bool = True
    watch_interval: Duration = timedelta(seconds=2)


class PollSettings(_Section):
    interval: Duration = timedelta(minutes=15)
    min_interval: Duration = timedelta(minutes=2)
    max_interval: Duration = timedelta(hours=6)
    max_backoff: Duration = timedelta(hours=6)
    concurrency: int = Field(default=32, ge=1, le=1000)
    per_host: int = Field(default=2, ge=1, le=100)
    timeout: Duration = timedelta(seconds=30)
    connect_timeout: Duration = timedelta(seconds=10)
    max_bytes: Size = 10 * 1024 * 1024
    max_redirects: int = Field(default=5, ge=0, le=20)
    user_agent: str = "news-monitor/0.1 (+https://github.com/news-monitor/news-monitor)"
    lease: Duration = timedelta(minutes=5)
    tick: Duration = timedelta(seconds=5)
    max_article_age: Duration = timedelta(days=2)
    parse_workers: int = Field(default=0, ge=0, le=64, description="0: one per core")
    failing_after: int = Field(default=3, ge=1)
    host_spacing: Duration = Field(
        default=timedelta(0), description="minimum gap between two request starts to one host")
    contact: str | None = Field(
        default=None, description="URL or e-mail address added to the User-Agent, so "
        "publishers can reach the operator instead of blocking the fetcher")
    allow_networks: list[IPvAnyNetwork] = Field(
        default_factory=list, description="networks feeds may reach although not public "
        "(loopback, private, link-local ...): e.g. [127.0.0.0/8] for tests")
    transport: Literal["httpx", "aiohttp"] = Field(
        default="aiohttp",
        description="aiohttp: httpx-aiohttp transport (~20x the requests/s, HTTP/1.1); "
                    "httpx: httpx's own (HTTP/2)")

    @field_validator("max_interval")
    @classmethod
    def _max_after_min(cls, v: timedelta) -> timedelta:
        if v < timedelta(seconds=1):
            raise ValueError("must be at least 1s")
        return v


class StoriesSettings(_Section):
    window: Duration = timedelta(hours=72)
    join_threshold: float = Field(
        default=0.34, gt=0.0, le=1.0,
        description="score an article needs to join a story; higher: fewer different events "
                    "folded into one story, more reports of one event split (docs/STORIES.md)")
    split_bar: float = Field(
        default=0.40, ge=0.0, le=1.0,
        description="story repair: a story whose two halves score below this against each "
                    "other (and disagree on dates or counts) is cut in two; 0: never "
                    "(docs/STORIES.md)")


class AlertSettings(_Section):
    updates: Literal["off", "every_outlet", "interval"] = "interval"
    update_interval: Duration = timedelta(minutes=30)
    seen_ttl: Duration = timedelta(days=30)


def _positive(v: timedelta | None) -> timedelta | None:
    if v is not None and v <= timedelta(0):
        raise ValueError("must be positive (or null for one message per alert)")
    return v


Digest = Annotated[Duration | None, Field(
    default=None, description="one message per period instead of one per alert")]
_SINK_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class StdoutSink(_Section):
    enabled: bool = True
    format: Literal["text", "json"] = "text"
    digest: Digest = None

    _digest_positive = field_validator("digest")(_positive)


def _one_source(section: str, values: dict[str, object]) -> None:
    given = [k for k, v in values.items() if v not in (None, [], "")]
    if len(given) > 1:
        raise ValueError(f"{section}: give only one of {', '.join(values)} (got {given})")


def _read_secret(path: Path | None, env_var: str | None, what: str) -> str | None:
    """A secret from a file (``${CREDENTIALS_DIRECTORY}`` expands) or an environment variable."""
    if path is not None:
        real = Path(os.path.expandvars(str(path))).expanduser()
        try:
            return real.read_text("utf-8").strip()
        except OSError as e:
            raise ValueError(f"{what}: cannot read {real}: {e.strerror or e}") from None
    if env_var is not None:
        value = os.environ.get(env_var, "").strip()
        if not value:
            raise ValueError(f"{what}: environment variable {env_var} is not set")
        return value
    return None


class WebhookSink(_Section):
    """One named webhook; rules pick it as ``webhook:<name>``."""

    name: str = Field(pattern=_SINK_NAME)
    url: SecretStr = Field(description="http(s) URL; a secret, since URLs often carry tokens")
    secret: SecretStr | None = Field(default=None, description="HMAC key (prefer a file or env)")
    secret_file: Path | None = None
    secret_env: str | None = None
    timeout: Duration = timedelta(seconds=10)
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    digest: Digest = None

    _digest_positive = field_validator("digest")(_positive)

    @field_validator("url")
    @classmethod
    def _http(cls, v: SecretStr) -> SecretStr:
        if not v.get_secret_value().startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return v

    @model_validator(mode="after")
    def _one_secret(self) -> WebhookSink:
        _one_source("secret", {"secret": self.secret, "secret_file": self.secret_file,
                               "secret_env": self.secret_env})
        return self

    def secret_bytes(self) -> bytes | None:
        """The HMAC key from wherever it was configured; ValueError naming the source."""
        if self.secret is not None:
            return self.secret.get_secret_value().encode("utf-8")
        value = _read_secret(self.secret_file, self.secret_env, f"webhook {self.name} secret")
        return value.encode("utf-8") if value is not None else None


class AppriseSink(_Section):
    """One named set of Apprise URLs; rules pick it as ``apprise:<name>``."""

    name: str = Field(pattern=_SINK_NAME)
    urls: list[SecretStr] = Field(default_factory=list)
    urls_file: Path | None = Field(default=None, description="URLs, one per line; #: comment")
    urls_env: str | None = Field(default=None, description="variable with URLs, space-separated")
    timeout: Duration = timedelta(seconds=10)
    digest: Digest = None

    _digest_positive = field_validator("digest")(_positive)

    @model_validator(mode="after")
    def _one_list(self) -> AppriseSink:
        _one_source("urls", {"urls": self.urls, "urls_file": self.urls_file,
                             "urls_env": self.urls_env})
        if not (self.urls or self.urls_file or self.urls_env):
            raise ValueError("needs urls, urls_file or urls_env")
        return self

    def url_list(self) -> list[str]:
        if self.urls:
            return [u.get_secret_value() for u in self.urls]
        text = _read_secret(self.urls_file, self.urls_env, f"apprise {self.name} urls") or ""
        # Whole-line comments only: Apprise URLs may hold '#' (Slack's #channel).
        urls = [u for line in text.splitlines() if not line.lstrip().startswith("#")
                for u in line.split()]
        if not urls:
            raise ValueError(f"apprise {self.name} urls: no URL found")
        return urls


class JsonlSink(_Section):
    enabled: bool = True
    path: Path = Path("alerts.jsonl")


class RedisSink(_Section):
    enabled: bool | Literal["auto"] = "auto"
    channel: str = "news-monitor:alerts"
    stream: str = "news-monitor:alerts"
    maxlen: int = Field(default=100_000, ge=100)


class SinksSettings(_Section):
    stdout: StdoutSink = StdoutSink()
    jsonl: JsonlSink = JsonlSink()
    redis: RedisSink = RedisSink()
    webhooks: list[WebhookSink] = Field(default_factory=list)
    apprise: list[AppriseSink] = Field(default_factory=list)
    retry_min: Duration = timedelta(seconds=1)
    retry_max: Duration = timedelta(minutes=5)
    give_up_after: int = Field(default=5, ge=1, description="refused attempts before dead-letter")
    dead_letter: Path = Field(default=Path("dead-letters.jsonl"),
                              description="refused alerts; relative to state_dir")

    @model_validator(mode="after")
    def _unique_names(self) -> SinksSettings:
        for kind, entries in (("webhooks", self.webhooks), ("apprise", self.apprise)):
            names = [e.name for e in entries]
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ValueError(f"{kind}: duplicate name(s) {', '.join(dup)}")
        return self


class WebSubSettings(_Section):
    """Push subscriptions to feeds that advertise a WebSub hub; off without ``callback_url``."""

    callback_url: str | None = Field(
        default=None, description="public http(s) URL the hubs call, proxied to 'listen'")
    listen: str = Field(default="127.0.0.1:8086", pattern=r"^[^\s:]+:\d{1,5}$",
                        description="host:port of the callback server (0: any free port)")
    secret: SecretStr | None = Field(
        default=None, description="key for callback tokens and hub HMAC secrets (16+ chars)")
    lease: Duration = timedelta(days=7)
    renew_before: Duration = timedelta(days=1)
    retry_after: Duration = timedelta(hours=1)
    fallback_interval: Duration = Field(
        default=timedelta(hours=6), description="poll interval of a feed while pushes arrive")

    @field_validator("callback_url")
    @classmethod
    def _http(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return v

    @model_validator(mode="after")
    def _secret_needed(self) -> WebSubSettings:
        if self.callback_url and (self.secret is None
                                  or len(self.secret.get_secret_value()) < 16):
            raise ValueError("websub.callback_url needs websub.secret of 16 characters or more")
        return self

    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host, int(port)


class MetricsSettings(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=9464, ge=0, le=65535, description="0: any free port")


class LogSettings(_Section):
    level: Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v


class Settings(_Section):
    state_dir: Path = Path("state")
    store: StoreSettings = StoreSettings()
    redis: RedisSettings = RedisSettings()
    feeds: FeedsSettings = FeedsSettings()
    rules: RulesSettings = RulesSettings()
    poll: PollSettings = PollSettings()
    stories: StoriesSettings = StoriesSettings()
    alerts: AlertSettings = AlertSettings()
    sinks: SinksSettings = SinksSettings()
    metrics: MetricsSettings = MetricsSettings()
    websub: WebSubSettings = WebSubSettings()
    log: LogSettings = LogSettings()

    source: str | None = Field(default=None, exclude=True)

    def password_file(self) -> Path | None:
        """``redis.password_file``, else systemd's ``$CREDENTIALS_DIRECTORY/redis-password``."""
        if self.redis.password_file is not None:
            return self.redis.password_file
        creds = os.environ.get("CREDENTIALS_DIRECTORY")
        if creds and (Path(creds) / "redis-password").is_file():
            return Path(creds) / "redis-password"
        return None

    def _with_secret(self, url: str) -> str:
        pw = self.password_file()
        if pw is None or not url.startswith(("redis://", "rediss://", SENTINEL_PREFIX)):
            return url
        return _with_password(url, pw.read_text().strip())

    def redis_url(self) -> str | None:
        """The Redis server of the sink, with a password from the password file filled in."""
        if self.redis.url is None or not self.redis.url.get_secret_value():
            return None
        return self._with_secret(self.redis.url.get_secret_value())

    def store_url(self) -> str:
        url = self.store.url.get_secret_value()
        if url == "redis":
            return self.redis_url() or ""
        return self._with_secret(url)

    def redis_sink_enabled(self) -> bool:
        flag = self.sinks.redis.enabled
        return self.redis_url() is not None if flag == "auto" else bool(flag)


def _with_password(url: str, password: str) -> str:
    from urllib.parse import quote, urlsplit, urlunsplit

    parts = urlsplit(url)
    user = parts.username or ""
    # The address part as written: [::1]:6379 keeps its brackets, h1:26379,h2:26379 its list.
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{quote(user)}:{quote(password, safe='')}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def redact_url(url: str) -> str:
    """``redis://:secret@host/0`` -> ``redis://:***@host/0``; safe for logs and errors."""
    return re.sub(r"(//[^:/@]*:)[^@/]*@", r"\1***@", url)


def find_config(explicit: Path | None, env: Mapping[str, str]) -> Path | None:
    if explicit is not None:
        return explicit
    if env.get("NEWS_MONITOR_CONFIG"):
        return Path(env["NEWS_MONITOR_CONFIG"])
    for candidate in SEARCH_PATH:
        path = candidate.expanduser()
        if path.is_file():
            return path
    return None


def _set_path(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = data
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[path[-1]] = value


_LIST_KEYS = ("files", "paths", "allow_networks")  # comma-separated in the environment


def _env_overrides(env: Mapping[str, str]) -> dict[tuple[str, ...], tuple[str, str]]:
    """Key path -> (variable name, raw value) for every variable meant for us."""
    out: dict[tuple[str, ...], tuple[str, str]] = {}
    for name, value in env.items():
        if name in ENV_ALIASES:
            out[ENV_ALIASES[name]] = (name, value)
        elif name.startswith(ENV_PREFIX) and "__" in name:
            parts = tuple(p.lower() for p in name[len(ENV_PREFIX):].split("__") if p)
            if parts:
                out[parts] = (name, value)
    return out


def _default_base() -> Path:
    """Without a config file: the working directory, or the source checkout when run elsewhere.

    The shipped ``rules/`` and ``deploy/feeds.yaml`` sit next to the package in a checkout,
    so ``news-monitor run`` from any folder still finds them.
    """
    cwd = Path.cwd()
    if (cwd / "rules").is_dir():
        return cwd
    checkout = Path(__file__).resolve().parent.parent
    return checkout if (checkout / "rules").is_dir() else cwd


def _under(p: Path, folder: Path) -> Path:
    p = p.expanduser()
    return p if p.is_absolute() else folder / p


def _secret_path(p: Path | None, base: Path) -> Path | None:
    """Relative to the config's folder, unless it starts with a variable (``$CREDENTIALS_…``)."""
    if p is None or str(p).startswith("$"):
        return p
    return _under(p, base)


def _resolve(settings: Settings, base: Path, state_base: Path) -> Settings:
    def res(p: Path) -> Path:
        p = p.expanduser()
        return p if p.is_absolute() else (base / p)

    state_dir = settings.state_dir.expanduser()
    state_dir = state_dir if state_dir.is_absolute() else state_base / state_dir
    jsonl = settings.sinks.jsonl
    jsonl_path = jsonl.path if jsonl.path.expanduser().is_absolute() else state_dir / jsonl.path
    update: dict[str, Any] = {
        "state_dir": state_dir,
        "feeds": settings.feeds.model_copy(
            update={"files": [res(p) for p in settings.feeds.files]}),
        "rules": settings.rules.model_copy(
            update={"paths": [res(p) for p in settings.rules.paths]}),
        "sinks": settings.sinks.model_copy(update={
            "jsonl": jsonl.model_copy(update={"path": jsonl_path.expanduser()}),
            "dead_letter": _under(settings.sinks.dead_letter, state_dir),
            "webhooks": [w.model_copy(update={"secret_file": _secret_path(w.secret_file, base)})
                         for w in settings.sinks.webhooks],
            "apprise": [a.model_copy(update={"urls_file": _secret_path(a.urls_file, base)})
                        for a in settings.sinks.apprise]}),
    }
    if settings.redis.password_file is not None:
        update["redis"] = settings.redis.model_copy(
            update={"password_file": res(settings.redis.password_file)})
    return settings.model_copy(update=update)


def _place(doc: YamlDoc, overrides: Mapping[tuple[str, ...], tuple[str, str]], loc: KeyPath,
           reason: str) -> Problem:
    """A problem at ``loc``: the variable that set the key, else the file's line and column."""
    str_loc = tuple(str(p) for p in loc)
    from_env = next((n for p, (n, _) in overrides.items() if str_loc[:len(p)] == p), None)
    if from_env is not None:
        return Problem(f"environment {from_env}", format_path(loc), reason)
    return doc.problem(loc, reason)


def locator(settings: Settings,
            env: Mapping[str, str] | None = None) -> Callable[[KeyPath, str], Problem]:
    """Place problems found after loading (a missing secret file, an unusable state folder).

    Those checks need the loaded settings, so ``load_settings`` cannot make them; reading
    the file again for its positions (only once something is wrong) lets ``check`` and the
    daemon report them like the rest, with file, line and key, or the variable that set it.
    """
    env = os.environ if env is None else env
    source = settings.source or "<defaults>"
    doc = YamlDoc(source=source, data={})
    if settings.source is not None and Path(source).is_file():
        with contextlib.suppress(YamlError):
            doc = load_yaml_file(Path(source))
    overrides = _env_overrides(env)
    return lambda loc, reason: _place(doc, overrides, loc, reason)


def load_settings(
    path: Path | None = None, env: Mapping[str, str] | None = None, *, search: bool = True
) -> Settings:
    """Load, override and validate. Raises ConfigError listing every problem at once."""
    env = os.environ if env is None else env
    cfg_path = find_config(path, env) if search else path
    source = str(cfg_path) if cfg_path else "<defaults>"
    doc = YamlDoc(source=source, data={})
    if cfg_path is not None:
        if not cfg_path.is_file():
            raise ConfigError([Problem(source, "", "config file not found")])
        try:
            doc = load_yaml_file(cfg_path)
        except YamlError as e:
            raise ConfigError([e.problem]) from e
        if doc.data is None:
            doc.data = {}
        if not isinstance(doc.data, dict):
            raise ConfigError([doc.problem((), "the config file must be a mapping of sections")])
    data: dict[str, Any] = dict(doc.data)
    overrides = _env_overrides(env)
    for key_path, (_, value) in overrides.items():
        # Lists come comma-separated; pydantic coerces the other strings.
        parsed: Any = value.split(",") if key_path[-1] in _LIST_KEYS else value
        _set_path(data, key_path, parsed)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as e:
        problems: list[Problem] = []
        for err in e.errors():
            reason = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                reason = "unknown key"
            problems.append(_place(doc, overrides, tuple(err["loc"]), reason))
        raise ConfigError(problems) from None
    base = cfg_path.resolve().parent if cfg_path else _default_base()
    settings = _resolve(settings, base, cfg_path.resolve().parent if cfg_path else Path.cwd())
    problems = _check_semantics(settings, doc)
    if problems:
        raise ConfigError(problems)
    return settings.model_copy(update={"source": source})


def _check_semantics(s: Settings, doc: YamlDoc) -> list[Problem]:
    """Checks that span several keys or touch the file system."""
    out: list[Problem] = []
    if s.poll.min_interval > s.poll.max_interval:
        out.append(doc.problem(("poll", "min_interval"), "must not exceed poll.max_interval"))
    # An article's seen keys must outlive both its feed's entry (still listed, young
    # enough to be read) and its story: forgotten sooner, it comes back as new.
    floor = max(s.poll.max_article_age, s.stories.window)
    if s.alerts.seen_ttl < floor:
        out.append(doc.problem(("alerts", "seen_ttl"),
                               f"must be at least poll.max_article_age and stories.window "
                               f"({floor}): articles still in their feeds would come back "
                               f"as new"))
    url = s.store.url.get_secret_value()
    if url and url != "redis" and not url.startswith(("sqlite:", *URL_PREFIXES)):
        out.append(doc.problem(("store", "url"),
                               f"unsupported store URL {redact_url(url)!r} (use sqlite:///path.db"
                               ", redis://host:port/db or redis+sentinel://host:port/service)"))
    sink_url = s.redis.url.get_secret_value() if s.redis.url is not None else ""
    if sink_url and not sink_url.startswith(URL_PREFIXES):
        # Checked here, not at the first delivery: `check` must refuse what `run` would.
        out.append(doc.problem(("redis", "url"),
                               f"unsupported Redis URL {redact_url(sink_url)!r} (use redis://"
                               "host:port/db, rediss://, unix:///path or redis+sentinel://)"))
    for key, value in (("store", url), ("redis", sink_url)):
        if value.startswith(SENTINEL_PREFIX):
            try:
                parse_sentinel_url(value)
            except ValueError as e:
                out.append(doc.problem((key, "url"), f"{redact_url(value)}: {e}"))
    if url == "redis" and s.redis.url is None:
        out.append(doc.problem(("store", "url"),
                               "'redis' needs redis.url (or NEWS_MONITOR_REDIS_URL)"))
    if s.sinks.redis.enabled is True and s.redis.url is None:
        out.append(doc.problem(("sinks", "redis", "enabled"),
                               "the Redis sink needs redis.url (or NEWS_MONITOR_REDIS_URL)"))
    if s.redis.password_file is not None and not s.redis.password_file.is_file():
        out.append(doc.problem(("redis", "password_file"),
                               f"file not found: {s.redis.password_file}"))
    for i, p in enumerate(s.feeds.files):
        if not p.exists():
            out.append(doc.problem(("feeds", "files", i), f"feed list not found: {p}"))
    for i, p in enumerate(s.rules.paths):
        if not p.exists():
            out.append(doc.problem(("rules", "paths", i), f"rules not found: {p}"))
    return out


def _not_appendable(path: Path) -> tuple[str, bool] | None:
    """Why lines could not be appended to ``path``, and whether that lasts (None: they can).

    The alert and dead-letter files may live outside ``state_dir``; a folder there or a
    read-only mount would otherwise show only at the first delivery, as retries. A
    folder in the way lasts; a permission or a read-only mount may be mended while the
    daemon runs, and its sinks retry.
    """
    if path.is_dir():
        return f"{path} is a folder", True
    if path.exists():
        return None if os.access(path, os.W_OK) else (f"cannot write to {path}", False)
    # the sinks create missing folders: the nearest one that exists decides
    folder = next(p for p in path.parents if p.exists())
    if not folder.is_dir():
        return f"{folder} is not a folder", True
    return None if os.access(folder, os.W_OK) else (f"cannot write in {folder}", False)


def prepare_state_dir(settings: Settings, *, keep: bool = True,
                      strict: bool = False) -> list[str]:
    """Create ``state_dir`` and try a file in it; ConfigError naming the folder and the reason.

    The store, the lock, the JSONL and dead-letter files all live there, and each would
    otherwise fail on its own with a bare OSError; the two files may be elsewhere, so
    they are checked too. ``keep=False`` (for ``check``) removes the folders it had to
    create, so a check leaves nothing behind. A file that cannot be written now but may
    be later (a permission, a read-only mount) is a problem for ``check`` (``strict``)
    and only a returned warning for the daemon: refused at start, it would keep the
    feeds and every other sink waiting on that one file, and systemd does not restart
    a setup error.
    """
    path = settings.state_dir
    created = [p for p in (path, *path.parents) if not p.exists()]
    try:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError([locator(settings)(
                ("state_dir",), f"cannot create {path}: {e.strerror or e}")]) from None
        try:
            with tempfile.TemporaryFile(dir=path):
                pass
        except OSError as e:
            raise ConfigError([locator(settings)(
                ("state_dir",), f"cannot write in {path}: {e.strerror or e}")]) from None
        files: list[tuple[tuple[str, ...], Path]] = [(("sinks", "dead_letter"),
                                                     settings.sinks.dead_letter)]
        if settings.sinks.jsonl.enabled:
            files.insert(0, (("sinks", "jsonl", "path"), settings.sinks.jsonl.path))
        found = [(key, why) for key, file in files if (why := _not_appendable(file))]
        problems = [locator(settings)(key, text) for key, (text, lasts) in found
                    if lasts or strict]
        if problems:
            raise ConfigError(problems)
        return [f"{'.'.join(key)}: {text}" for key, (text, lasts) in found if not lasts]
    finally:
        if not keep:
            for folder in created:  # deepest first
                with contextlib.suppress(OSError):
                    folder.rmdir()


def describe(settings: Settings) -> dict[str, Any]:
    """The effective configuration with secrets masked, for ``news-monitor check --show``."""
    return settings.model_dump(mode="json", exclude={"source"})


def changed_keys(old: BaseModel, new: BaseModel, prefix: str = "") -> list[str]:
    """Dotted names of the settings that differ (``poll.timeout``), never their values.

    Compared field by field on the models, not on a dump: a dump masks secrets, and a
    changed password or webhook URL is a change too. A list (webhooks) counts as one key.
    """
    out: list[str] = []
    for name in type(old).model_fields:
        a, b = getattr(old, name), getattr(new, name)
        key = f"{prefix}{name}"
        if isinstance(a, BaseModel) and isinstance(b, BaseModel) and type(a) is type(b):
            out += changed_keys(a, b, key + ".")
        elif a != b:
            out.append(key)
    return out
