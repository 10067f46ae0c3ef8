"""Where storyfeed keeps its files, and the settings in ``config.toml``.

``STORYFEED_HOME=DIR`` puts both the config and the data in DIR; otherwise
platformdirs' user config and data directories are used. ``config.toml`` is
only ever read.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from storyfeed.errors import ConfigError

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


@dataclass(frozen=True, slots=True)
class NotifySettings:
    """The ``[notify]`` table of config.toml."""

    urls: tuple[str, ...] = ()  # apprise URLs; none means standard output
    digest_after: int = 10  # more stories than this for one channel: one digest message
    report_after_failures: int = 3  # a feed's failures in a row before notify reports it
    report_after: int = 24 * 60 * 60  # ... or seconds of failing, whichever comes first
    channel_failures: int = 3  # a channel's failed runs in a row before it is reported
    send_timeout: float = 60.0  # seconds one message may take before it counts as failed


@dataclass(frozen=True, slots=True)
class Settings:
    """Every setting, with its default. Keys in config.toml use these names."""

    default_feed: str = DEFAULT_FEED_URL  # subscribed when a database is created; "" for none
    refresh_interval: int = 30 * 60  # seconds between fetches of a feed
    max_interval: int = 24 * 60 * 60  # cap on intervals raised by the server or backoff
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    feed_deadline: float = 60.0  # total seconds for one feed's fetch
    max_body_bytes: int = 10 * 1024 * 1024  # cap, compressed and decompressed
    parse_timeout: float = 60.0  # seconds one document may take to parse
    parse_memory: int = 512 * 1024 * 1024  # bytes of memory a parser process may use
    concurrency: int = 8  # fetches at once
    per_host: int = 2  # fetches at once to one host
    list_limit: int = 30
    busy_timeout: float = 10.0  # seconds to wait for a database lock
    notify: NotifySettings = field(default_factory=NotifySettings)


_SECONDS_KEYS = {"refresh_interval", "max_interval", "report_after"}
_DAY = 24 * 60 * 60
# Sane ranges: a value outside them is a typo, not a wish.
_RANGES: dict[str, tuple[float, float]] = {
    "refresh_interval": (60, 30 * _DAY),
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
}


def _duration(key: str, value: object) -> int:
    """Seconds from an int or a string like ``90s``, ``30m``, ``2h``, ``1d``."""
    if isinstance(value, bool):
        raise ConfigError(f"config: {key} must be a duration like 30m, not {value!r}")
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, str):
        units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
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
    try:
        raw = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return Settings()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    return settings_from_mapping(data)


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
        if key in _SECONDS_KEYS:
            values[key] = _duration(name, value)
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
