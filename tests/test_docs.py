"""The README documents every command-line option of the bundle's scripts."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

import create
import migrate

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


@pytest.mark.parametrize("command", [create.main, migrate.main], ids=["create.py", "migrate.py"])
def test_readme_mentions_every_option(command: click.Command) -> None:
    options = [opt for p in command.params if isinstance(p, click.Option) for opt in p.opts if opt.startswith("--")]
    assert options
    missing = [opt for opt in options if opt not in README and opt != "--help"]
    assert missing == []
