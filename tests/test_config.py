"""config.toml: defaults, durations, ranges, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from storyfeed.config import DEFAULT_FEED_URL, Settings, default_paths, load_settings
from storyfeed.errors import ConfigError


def test_a_missing_file_means_every_default(tmp_path: Path) -> None:
    assert load_settings(tmp_path / "none.toml") == Settings()
    assert Settings().default_feed == DEFAULT_FEED_URL


def test_values_and_durations(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        'refresh_interval = "2h"\nmax_interval = 86400\nconcurrency = 4\nread_timeout = 5\n'
        'default_feed = ""\n[notify]\nurls = ["json://127.0.0.1/x"]\n'
    )
    settings = load_settings(path)
    assert settings.refresh_interval == 7200
    assert settings.max_interval == 86400
    assert settings.concurrency == 4
    assert settings.read_timeout == 5.0
    assert settings.default_feed == ""
    assert settings.notify.urls == ("json://127.0.0.1/x",)
    assert settings.notify.digest_after == 10


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("refresh_interval = [", "not valid TOML"),
        ("bogus = 1", "unknown setting 'bogus'"),
        ('refresh_interval = "soon"', "refresh_interval must be a duration"),
        ('refresh_interval = "\u00b2m"', "refresh_interval must be a duration"),
        ("refresh_interval = 10", "refresh_interval must be between 60"),
        ("feed_deadline = nan", "feed_deadline must be between"),
        ("concurrency = 0", "concurrency must be a positive whole number"),
        ("concurrency = true", "concurrency must be a positive whole number"),
        ("max_body_bytes = 10", "max_body_bytes must be between 1,024"),
        ('default_feed = "http://[oops/feed.xml"', "default_feed must be an http(s) or file URL"),
        ('default_feed = "feed.xml"', "default_feed must be an http(s) or file URL"),
        ("default_feed = 3", "default_feed must be a string"),
        ("[notify]\nurls = [3]", "notify.urls must be a list of notification URLs"),
        ("[notify]\ndigest_after = 0", "notify.digest_after must be a positive whole number"),
        ('[notify]\nreport_after = "1s"', "notify.report_after must be between 60"),
        ("[notify]\nbogus = 1", "unknown setting 'notify.bogus'"),
        ("notify = 1", "notify must be a table"),
        ("[other]\nx = 1", "unknown setting 'other'"),
    ],
)
def test_bad_values_are_clear_errors(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert fragment in str(caught.value)


def test_storyfeed_home_holds_config_and_data(tmp_path: Path) -> None:
    paths = default_paths({"STORYFEED_HOME": str(tmp_path)})
    assert paths.config_file == tmp_path / "config.toml"
    assert paths.database == tmp_path / "storyfeed.db"
    elsewhere = default_paths({})
    assert elsewhere.config_file.name == "config.toml"
    assert elsewhere.database.name == "storyfeed.db"


# --- the template, retention settings, `storyfeed config` ------------------------------


def test_the_template_names_every_setting_and_parses_back_to_the_defaults() -> None:
    import tomllib
    from dataclasses import fields

    from storyfeed.config import NotifySettings, settings_from_mapping, template

    text = template()
    data = tomllib.loads(text)
    assert settings_from_mapping(data) == Settings()
    assert set(data) == {f.name for f in fields(Settings)}
    assert set(data["notify"]) == {f.name for f in fields(NotifySettings)}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            assert "  # " in line, line  # every setting says what it means


def test_the_shipped_template_and_the_readme_are_current() -> None:
    from conftest import REPO
    from storyfeed.config import template

    assert (REPO / "docs" / "config.toml").read_text() == template()
    assert f"```toml\n{template()}```" in (REPO / "README.md").read_text()


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0), ('"off"', 0), ('""', 0), ('"180d"', 180 * 86400), ('"26w"', 182 * 86400),
     ('"1y"', 365 * 86400), ("86400", 86400)],
)  # fmt: skip
def test_prune_after(tmp_path: Path, text: str, seconds: int) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f"prune_after = {text}\nprune_keep_unread = false\n")
    settings = load_settings(path)
    assert settings.prune_after == seconds
    assert settings.prune_keep_unread is False


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('prune_after = "6m"', "prune_after must be between 86,400 and"),
        ('prune_after = "soon"', "prune_after must be a duration"),
        ("prune_after = true", "prune_after must be a duration"),
        ('prune_keep_unread = "yes"', "prune_keep_unread must be true or false"),
        ("prune_keep_unread = 1", "prune_keep_unread must be true or false"),
    ],
)
def test_bad_retention_settings(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert fragment in str(caught.value)


SECRET_URLS = ["tgram://123456:SECRETBOTTOKEN/987", "json://user:hunter2@127.0.0.1:9/hook"]


def test_config_command_shows_values_and_sources_with_secrets_hidden(run, home: Path) -> None:  # type: ignore[no-untyped-def]
    from storyfeed.notify import channel_label

    config_file = home / "config.toml"
    config_file.write_text(
        'default_feed = "https://reader:pa55word@127.0.0.1/feed.xml"\n'
        'refresh_interval = 7200\nprune_after = "26w"\n'
        f"[notify]\nurls = {json.dumps(SECRET_URLS)}\n"
    )
    piped = run("config")
    assert piped.code == 0, piped
    rows = {line.split("\t")[0]: line.split("\t")[1:] for line in piped.out.splitlines()}
    from_file = f"config file ({config_file})"
    assert rows["refresh_interval"] == ['"2h"', from_file]
    assert rows["prune_after"] == ['"182d"', from_file]
    assert rows["concurrency"] == ["8", "default"]
    assert rows["notify.digest_after"] == ["10", "default"]
    assert rows["default_feed"] == ['"https://reader:***@127.0.0.1/feed.xml"', from_file]
    assert rows["notify.urls"][1] == from_file
    assert rows["config_file"] == [str(config_file), "environment (STORYFEED_HOME)"]
    assert rows["database"][0] == str(home / "storyfeed.db")

    as_json = run("config", "--json")
    values = {item["setting"]: item for item in json.loads(as_json.out)}
    assert list(values["refresh_interval"]) == ["setting", "value", "source", "doc"]
    assert values["refresh_interval"]["value"] == 7200
    assert values["prune_keep_unread"]["value"] is True
    assert values["notify.urls"]["value"] == [channel_label(url) for url in SECRET_URLS]
    assert values["notify.send_timeout"]["doc"]
    for output in (piped.out, as_json.out):
        for secret in ("SECRETBOTTOKEN", "hunter2", "pa55word", "987", "user:"):
            assert secret not in output


def test_config_template_command_and_a_broken_config(run, home: Path) -> None:  # type: ignore[no-untyped-def]
    from storyfeed.config import template

    (home / "config.toml").write_text("bogus = 1\n")
    printed = run("config", "--template")  # needs no valid config
    assert (printed.code, printed.out) == (0, template())
    broken = run("config")
    assert broken.code == 1
    assert "unknown setting 'bogus'" in broken.err


def test_config_on_a_terminal_is_a_table(run, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from storyfeed import cli

    (home / "config.toml").write_text('default_feed = ""\n[notify]\nurls = ["ntfy://my-topic"]\n')
    monkeypatch.setattr(cli, "_stdout_is_tty", lambda: True)
    shown = run("config")
    assert shown.code == 0, shown
    assert shown.out.split()[:3] == ["Setting", "Value", "Source"]
    assert "list_limit" in shown.out and "ntfy://***" in shown.out
    assert "my-topic" not in shown.out
