"""Where storyfeed keeps its files, and the settings in ``config.toml``.

``STORYFEED_HOME=DIR`` puts both the config and the data in DIR; otherwise
platformdirs' user config and data directories are used. ``config.toml`` is
only ever read.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import Field, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyfeed.errors import ConfigError
from storyfeed.text import redact_url

if TYPE_CHECKING:
    from storyfeed.reports import SettingValue

DEFAULT_FEED_URL = "https://wgzesg.github.io/llm_stories/index.xml"
APP_NAME = "storyfeed"


@dataclass(frozen=True, slots=True)
class Paths:
    config_dir: Path
    data_dir: Path

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.toml"

    @property
    def database(self) -> Path:
        return self.data_dir / "storyfeed.db"


def default_paths(environ: dict[str, str] | None = None) -> Paths:
    env = os.environ if environ is None else environ
    home = env.get("STORYFEED_HOME")
    if home:
        base = Path(home).expanduser()
        return Paths(config_dir=base, data_dir=base)
    import platformdirs

    return Paths(
        config_dir=Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)),
        data_dir=Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)),
    )


def _doc(text: str) -> dict[str, str]:
    """A setting's one-line explanation, as config.toml's template prints it."""
    return {"doc": text}


@dataclass(frozen=True, slots=True)
class NotifySettings:
    """The ``[notify]`` table of config.toml."""

    urls: tuple[str, ...] = field(
        default=(), metadata=_doc("apprise URLs to notify; none: standard output")
    )
    digest_after: int = field(
        default=10, metadata=_doc("more stories than this for one channel in one run: one digest")
    )
    report_after_failures: int = field(
        default=3, metadata=_doc("report a failing feed after this many failures in a row...")
    )
    report_after: int = field(
        default=24 * 60 * 60, metadata=_doc("...or after it has failed for this long")
    )
    channel_failures: int = field(
        default=3, metadata=_doc("report a failing channel after this many failed runs in a row")
    )
    send_timeout: float = field(
        default=60.0, metadata=_doc("seconds one message may take before it counts as failed")
    )


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting, with its default and what it means (the one table that
    config.toml, its template and `storyfeed config` follow). Keys in config.toml
    use these names."""

    default_feed: str = field(
        default=DEFAULT_FEED_URL,
        metadata=_doc('subscribed when the database is created; "" for none'),
    )
    refresh_interval: int = field(
        default=30 * 60, metadata=_doc("least time between two fetches of a feed (s, m, h, d, w)")
    )
    max_interval: int = field(
        default=24 * 60 * 60,
        metadata=_doc("cap on intervals raised by the server, Retry-After or back-off"),
    )
    connect_timeout: float = field(default=10.0, metadata=_doc("seconds to connect"))
    read_timeout: float = field(
        default=30.0, metadata=_doc("seconds without a byte from the server")
    )
    feed_deadline: float = field(
        default=60.0, metadata=_doc("seconds for the whole fetch of one feed")
    )
    max_body_bytes: int = field(
        default=10 * 1024 * 1024,
        metadata=_doc("a feed's size cap in bytes, compressed and decompressed"),
    )
    parse_timeout: float = field(
        default=60.0, metadata=_doc("seconds one feed document may take to parse")
    )
    parse_memory: int = field(
        default=512 * 1024 * 1024, metadata=_doc("bytes of memory a parser process may use")
    )
    concurrency: int = field(default=8, metadata=_doc("fetches at once"))
    per_host: int = field(default=2, metadata=_doc("fetches at once to one host"))
    list_limit: int = field(default=30, metadata=_doc("stories `list` shows without --limit"))
    busy_timeout: float = field(
        default=10.0, metadata=_doc("seconds to wait for another storyfeed holding the database")
    )
    prune_after: int = field(
        default=0,
        metadata=_doc(
            "after a refresh, at most daily, prune stories older than this (d, w, y); 0: never"
        ),
    )
    prune_keep_unread: bool = field(
        default=True, metadata=_doc("pruning (automatic or `storyfeed prune`) keeps unread stories")
    )
    notify: NotifySettings = field(default_factory=NotifySettings)


_SECONDS_KEYS = {"refresh_interval", "max_interval", "report_after", "prune_after"}
_DAY = 24 * 60 * 60
# Sane ranges: a value outside them is a typo, not a wish. A feed's own interval
# (`storyfeed set`, an imported OPML file) keeps to the global one's.
REFRESH_INTERVAL_RANGE = (60, 30 * _DAY)
_RANGES: dict[str, tuple[float, float]] = {
    "refresh_interval": REFRESH_INTERVAL_RANGE,
    "max_interval": (60, 365 * _DAY),
    "connect_timeout": (0.1, 3600),
    "read_timeout": (0.1, 3600),
    "feed_deadline": (0.1, 3600),
    "max_body_bytes": (1024, 1024**3),
    "parse_timeout": (0.5, 3600),
    "parse_memory": (64 * 1024**2, 64 * 1024**3),
    "concurrency": (1, 256),
    "per_host": (1, 64),
    "list_limit": (1, 100_000),
    "busy_timeout": (0.05, 3600),
    "digest_after": (1, 10_000),
    "report_after_failures": (1, 1000),
    "report_after": (60, 365 * _DAY),
    "channel_failures": (1, 1000),
    "send_timeout": (1, 3600),
    "prune_after": (_DAY, 100 * 365 * _DAY),
}
_OFF = {0, "", "0", "off"}  # prune_after's spellings of "never"


def _duration(key: str, value: object) -> int:
    """Seconds from an int or a string like ``90s``, ``30m``, ``2h``, ``1d``, ``12w``,
    ``1y`` (``m`` is minutes: six months is ``26w``)."""
    if isinstance(value, bool):
        raise ConfigError(f"config: {key} must be a duration like 30m, not {value!r}")
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, str):
        units = {"s": 1, "m": 60, "h": 3600, "d": _DAY, "w": 7 * _DAY, "y": 365 * _DAY}
        text = value.strip().lower()
        number, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
        if number.isascii() and number.isdigit() and 0 < int(number) < 10**12:
            return int(number) * units[unit]
    raise ConfigError(f"config: {key} must be a duration like 30m, not {value!r}")


def _url_setting(key: str, value: str) -> str:
    """An http(s) or file URL, or "" (for none)."""
    from urllib.parse import urlsplit

    if not value:
        return value
    try:
        parts = urlsplit(value)
        valid = parts.scheme == "file" or (parts.scheme in {"http", "https"} and parts.hostname)
    except ValueError:
        valid = False
    if not valid:
        raise ConfigError(f'config: {key} must be an http(s) or file URL, or ""')
    return value


def _number(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


def load_settings(path: Path) -> Settings:
    """Read ``config.toml``; a missing file means every default."""
    data = _read_toml(path)
    return Settings() if data is None else settings_from_mapping(data)


def _read_toml(path: Path) -> dict[str, Any] | None:
    """The file's TOML tables; None when there is no file."""
    try:
        raw = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc


def settings_from_mapping(data: dict[str, Any]) -> Settings:
    values = _table(data, Settings(), prefix="", tables={"notify"})
    if "notify" in data:
        notify = data["notify"]
        if not isinstance(notify, dict):
            raise ConfigError("config: notify must be a table ([notify])")
        values["notify"] = NotifySettings(**_table(notify, NotifySettings(), prefix="notify."))
    return Settings(**values)


def _table(
    data: dict[str, Any],
    defaults: Any,
    *,
    prefix: str,
    tables: frozenset[str] | set[str] = frozenset(),
) -> dict[str, Any]:
    """Checked values of one TOML table, by the types and ranges of ``defaults``."""
    known = {f.name for f in fields(defaults)} - set(tables)
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key in tables:
            continue
        name = prefix + key
        if key not in known:
            raise ConfigError(f"config: unknown setting {name!r}")
        default = getattr(defaults, key)
        if key == "prune_after" and isinstance(value, int | str) and value in _OFF:
            values[key] = 0
            continue
        if key in _SECONDS_KEYS:
            values[key] = _duration(name, value)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"config: {name} must be true or false")
            values[key] = value
        elif key == "urls":
            values[key] = _url_list(name, value)
        elif isinstance(default, str):
            if not isinstance(value, str):
                raise ConfigError(f"config: {name} must be a string")
            values[key] = _url_setting(name, value) if key == "default_feed" else value
        elif isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ConfigError(f"config: {name} must be a positive number")
            values[key] = float(value)
        else:
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"config: {name} must be a positive whole number")
            values[key] = value
        low, high = _RANGES.get(key, (float("-inf"), float("inf")))
        if isinstance(values[key], int | float) and not low <= values[key] <= high:
            unit = " seconds" if key in _SECONDS_KEYS else ""
            raise ConfigError(
                f"config: {name} must be between {_number(low)} and {_number(high)}{unit}"
            )
    return values


def _url_list(name: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"config: {name} must be a list of notification URLs")
    return tuple(v.strip() for v in value)


def holds_secrets_readable_by_others(path: Path, settings: Settings) -> bool:
    """True when config.toml lists notification URLs (which hold tokens and passwords)
    and other users may read it."""
    if not settings.notify.urls:
        return False
    try:
        return bool(path.stat().st_mode & 0o077)
    except OSError:
        return False


def parse_duration(name: str, value: str) -> int:
    """Seconds from a duration like ``180d``, ``26w`` or ``1y`` (see config.toml);
    ``name`` is what an error calls it."""
    return _duration(name, value)


# --- the template and the effective settings ----------------------------------------


def _spell_duration(seconds: int) -> str:
    for unit, size in (("d", _DAY), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _toml_string(value: str) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string


def _secret_url(url: str) -> str:
    """A notification URL as `notify` names it: its scheme and a fingerprint, since
    tokens hide in every part of an apprise URL (ntfy://TOPIC, tgram://TOKEN/CHAT)."""
    import hashlib
    from urllib.parse import urlsplit

    try:
        scheme = urlsplit(url).scheme or "?"
    except ValueError:
        scheme = "?"
    return f"{scheme}://*** ({hashlib.sha256(url.encode()).hexdigest()[:8]})"


def _spell(key: str, value: object, *, redact: bool) -> str:
    """A value as config.toml spells it; with ``redact``, secrets hidden (the result
    then only reads as TOML when it holds none)."""
    if key in _SECONDS_KEYS and isinstance(value, int):
        return "0" if value == 0 else _toml_string(_spell_duration(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        items = [_secret_url(v) if redact else _toml_string(v) for v in value]
        return "[" + ", ".join(items) + "]"
    if isinstance(value, str):
        return _toml_string(redact_url(value) if redact else value)
    return repr(value)


def _tables() -> list[tuple[str, Any]]:
    """("", Settings) and ("notify.", NotifySettings): the tables of config.toml."""
    return [("", Settings()), ("notify.", NotifySettings())]


def _settings_of(defaults: Any) -> list[Field[Any]]:
    return [f for f in fields(defaults) if f.name != "notify"]


def template() -> str:
    """A complete config.toml: every setting at its default, each with its meaning."""
    out = [
        "# storyfeed's config.toml: every setting, at its default. storyfeed only reads",
        "# this file. Durations: a number of seconds or a string like 90s, 30m, 2h, 1d,",
        "# 12w, 1y (m is minutes). `storyfeed config` shows the settings in effect.",
    ]
    for prefix, defaults in _tables():
        rows = []
        for setting in _settings_of(defaults):
            doc = setting.metadata.get("doc")
            if not doc:
                raise ConfigError(f"the setting {prefix + setting.name} has no doc in config.py")
            value = _spell(setting.name, getattr(defaults, setting.name), redact=False)
            rows.append((f"{setting.name} = {value}", doc))
        out.append("")
        if prefix:
            out.append(f"[{prefix.rstrip('.')}]")
        width = max(len(assignment) for assignment, _ in rows if len(assignment) <= 30)
        out += [f"{assignment.ljust(width)}  # {doc}" for assignment, doc in rows]
    return "\n".join(out) + "\n"


def effective_settings(paths: Paths, environ: dict[str, str] | None = None) -> list[SettingValue]:
    """Each setting in effect, where it came from, and what it means; secrets redacted.

    The first two are where storyfeed keeps its files, which only the environment
    (STORYFEED_HOME) changes.
    """
    from storyfeed.reports import SettingValue

    env = os.environ if environ is None else environ
    where = "environment (STORYFEED_HOME)" if env.get("STORYFEED_HOME") else "default"
    found = [
        SettingValue(
            "config_file", str(paths.config_file), where, "the settings", str(paths.config_file)
        ),
        SettingValue(
            "database",
            str(paths.database),
            where,
            "subscriptions, stories, state",
            str(paths.database),
        ),
    ]
    data = _read_toml(paths.config_file) or {}
    settings = settings_from_mapping(data)
    for prefix, _ in _tables():
        table = data.get(prefix.rstrip(".")) if prefix else data
        given = table if isinstance(table, dict) else {}
        current = settings.notify if prefix else settings
        for setting in _settings_of(current):
            source = f"config file ({paths.config_file})" if setting.name in given else "default"
            value = getattr(current, setting.name)
            if isinstance(value, tuple):
                shown: str | int | float | bool | tuple[str, ...] = tuple(map(_secret_url, value))
            else:
                shown = redact_url(value) if isinstance(value, str) else value
            spelled = _spell(setting.name, value, redact=True)
            doc = setting.metadata.get("doc", "")
            found.append(SettingValue(prefix + setting.name, spelled, source, doc, shown))
    return found
