"""config.toml: defaults, durations, ranges, and clear errors."""

from __future__ import annotations

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
