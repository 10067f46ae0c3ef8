"""DESIGN.md §8: import arrows, confined libraries, a lean `list`, documented commands."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main

from conftest import DATA, REPO
from storyfeed import cli

PACKAGE = REPO / "src" / "storyfeed"
README = (REPO / "README.md").read_text()

# module -> the storyfeed modules it may import (errors, models and text are stdlib-only
# leaves; models uses text to redact the URL it falls back on as a feed's name)
ALLOWED = {
    "__init__": set(),
    "__main__": {"cli"},
    "errors": set(),
    "models": {"text"},
    "updates": {"models"},
    "reports": {"models"},
    "text": set(),
    "htmltext": {"text"},
    "urls": {"errors", "text"},
    "config": {"errors", "models", "text", "reports"},
    "fetch": {"updates", "__init__", "errors", "models", "text", "config"},
    "parse": {"updates", "errors", "models", "text", "htmltext"},
    "store": {"updates", "errors", "models", "text", "reports"},
    "sandbox": {"updates", "errors", "models", "parse"},
    "core": {
        "updates",
        "errors",
        "models",
        "text",
        "urls",
        "config",
        "fetch",
        "sandbox",
        "store",
        "lock",
    },
    "reading": {"updates", "errors", "models", "text", "htmltext", "core"},
    "notify": {"updates", "errors", "models", "text", "config", "core"},
    "lock": {"errors"},
    "retention": {"errors", "models", "config", "core", "reports"},
    "deliver": {"text"},
    "doctor": {"__init__", "models", "text", "config", "core", "reports"},
    "subscriptions": {
        "updates",
        "errors",
        "models",
        "text",
        "urls",
        "config",
        "core",
        "fetch",
        "parse",
    },
    "opml": {"errors", "models", "text"},
    "moving": {"errors", "models", "text", "urls", "config", "core", "opml", "reports"},
    "render": {"updates", "models", "text", "reports"},
    "searching": {"errors", "models", "text", "htmltext", "core", "reports"},
    "cli": {
        "__init__",
        "updates",
        "errors",
        "models",
        "text",
        "config",
        "core",
        "reading",
        "subscriptions",
        "render",
        "notify",
        "deliver",
        "moving",
        "searching",
        "retention",
        "doctor",
    },
}
# third-party (and sqlite3) module -> the only storyfeed modules that may import it
CONFINED = {
    "httpx": {"fetch"},
    "feedparser": {"parse"},
    "lxml": {"parse", "opml"},
    "sqlite3": {"store"},
    "rich": {"render", "cli"},
    "typer": {"cli"},
    "apprise": {"deliver"},
    "click": set(),
    "platformdirs": {"config"},
}


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports included).

    storyfeed's own modules come back as ``storyfeed.NAME`` (``storyfeed.__init__`` for
    names taken from the package itself).
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module == "storyfeed":
            for alias in node.names:
                is_module = (PACKAGE / f"{alias.name}.py").exists()
                found.add(f"storyfeed.{alias.name if is_module else '__init__'}")
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_every_module_is_known() -> None:
    assert {p.stem for p in PACKAGE.glob("*.py")} == set(ALLOWED)


@pytest.mark.parametrize("module", sorted(ALLOWED))
def test_import_arrows(module: str) -> None:
    imported = imports_of(PACKAGE / f"{module}.py")
    ours = {name.split(".")[1] for name in imported if name.startswith("storyfeed.")}
    assert ours <= ALLOWED[module], f"{module} imports {sorted(ours - ALLOWED[module])}"
    for library, owners in CONFINED.items():
        uses = any(name == library or name.startswith(library + ".") for name in imported)
        assert not uses or module in owners, f"{module} imports {library}"


def test_nothing_imports_cli() -> None:
    for path in PACKAGE.glob("*.py"):
        if path.stem not in {"cli", "__main__"}:
            assert "storyfeed.cli" not in imports_of(path)


# What a listing with nothing due must not pay for (each costs milliseconds at start).
NOT_FOR_LISTING = {
    "httpx",
    "feedparser",
    "lxml",
    "apprise",
    "pydantic",
    "html.parser",
    "hashlib",
    "json",
    "storyfeed.updates",
    "storyfeed.fetch",
    "storyfeed.parse",
    "storyfeed.sandbox",
    "storyfeed.notify",
    "storyfeed.subscriptions",
    "storyfeed.htmltext",
    "storyfeed.opml",
    "storyfeed.moving",
    "storyfeed.reports",
    "storyfeed.doctor",
    "storyfeed.searching",
    "storyfeed.retention",
}


def test_list_with_nothing_due_imports_only_what_it_uses(home: Path) -> None:
    env = {**os.environ, "STORYFEED_HOME": str(home)}
    add = [sys.executable, "-m", "storyfeed", "add", str(DATA / "blog.rss")]
    subprocess.run(add, capture_output=True, env=env, check=True)
    script = (
        "import sys\n"
        "from storyfeed import cli\n"
        "assert cli.run(['list']) == 0\n"
        f"print(sorted(set(sys.modules) & set({sorted(NOT_FOR_LISTING)!r})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    assert len(done.stdout.splitlines()) == 9  # the 8 stories, then the imports
    assert done.stdout.splitlines()[-1] == "[]"


# What a refresh must not pay for: httpx's own command-line client, and what it imports.
NOT_FOR_REFRESH = {"httpx._main", "click", "pygments", "asyncio"}


def test_refresh_imports_neither_httpx_cli_nor_asyncio(home: Path) -> None:
    env = {**os.environ, "STORYFEED_HOME": str(home)}
    script = (
        "import sys\n"
        "from storyfeed import cli\n"
        f"assert cli.run(['add', {str(DATA / 'blog.rss')!r}]) == 0\n"
        "assert cli.run(['refresh', '--force']) == 0\n"
        "assert callable(sys.modules['httpx'].main)\n"  # httpx's stand-in
        f"print(sorted(m for m in {sorted(NOT_FOR_REFRESH)!r} if sys.modules.get(m)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.splitlines()[-1] == "[]"


COMMANDS = sorted(typer.main.get_command(cli.app).commands)  # type: ignore[attr-defined]


def test_the_commands_of_design() -> None:
    assert set(COMMANDS) >= {"list", "open", "read", "refresh", "add", "remove", "feeds", "mark"}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_and_is_in_the_readme(command: str, run) -> None:  # type: ignore[no-untyped-def]
    result = run(command, "--help")
    assert result.code == 0
    assert "Usage" in result.out
    assert re.search(rf"storyfeed {command}\b", README), f"README lacks `storyfeed {command}`"


def test_ci_runs_the_readme_test_command() -> None:
    match = re.search(r"^python3 -m venv .*&& (\.venv/bin/python -m pytest[^\n]*)$", README, re.M)
    assert match, "README gives no test command"
    assert match.group(1) in (REPO / ".ci" / "run").read_text()
