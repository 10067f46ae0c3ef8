"""Shared fixtures: an isolated STORYFEED_HOME, a loopback HTTP server, the CLI."""

from __future__ import annotations

import os
import signal
import webbrowser
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from storyfeed import cli

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("STORYFEED_CORPUS", REPO.parent / "shared" / "corpus"))
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loopback only: no proxy from the environment may take a test's requests elsewhere."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name.lower(), raising=False)
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")


@pytest.fixture(scope="session", autouse=True)
def interruptible() -> None:
    """The Ctrl-C tests send SIGINT to child processes, which inherit an ignored
    SIGINT when a shell started the test run in the background. A handler here is
    reset to the default in every child, where Python then raises KeyboardInterrupt."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own STORYFEED_HOME, starting with no subscription."""
    path = tmp_path / "home"
    path.mkdir()
    (path / "config.toml").write_text('default_feed = ""\n')
    monkeypatch.setenv("STORYFEED_HOME", str(path))
    monkeypatch.delenv("STORYFEED_DEBUG", raising=False)
    monkeypatch.setenv("BROWSER", "false")  # never start a real browser
    # webbrowser caches the browsers it found in the process; look afresh per test.
    monkeypatch.setattr(webbrowser, "_tryorder", None)
    monkeypatch.setattr(webbrowser, "_browsers", {})
    return path


@pytest.fixture(scope="session")
def httpserver_listen_address() -> tuple[str, int]:
    """pytest-httpserver listens on IPv4 loopback only."""
    return ("127.0.0.1", 0)


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[..., Result]]:
    """Run the CLI in-process: ``run("list", "--json")`` -> Result(code, out, err)."""

    def invoke(*args: str) -> Result:
        capsys.readouterr()
        code = cli.run(list(args))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    yield invoke
