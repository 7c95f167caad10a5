"""What the scripts share: one-line errors with documented exit codes, output free of secrets."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Sequence
from typing import NoReturn

import click

from .errors import EXIT_FATAL, EXIT_INTERRUPTED, MigrationError


class Console:
    """Prints to stdout/stderr with every secret value masked."""

    def __init__(self, secrets: Sequence[str] = (), quiet: bool = False) -> None:
        self.secrets = [s for s in secrets if s]
        self.quiet = quiet

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def info(self, text: str) -> None:
        if not self.quiet:
            click.echo(self.scrub(text))

    def out(self, text: str) -> None:
        click.echo(self.scrub(text))

    def error(self, text: str) -> None:
        click.echo(self.scrub(f"error: {text}"), err=True)


def run(main: Callable[[Console], int], console: Console) -> NoReturn:
    """Run a script's body; a MigrationError becomes one line and its exit code."""
    try:
        code = main(console)
    except MigrationError as exc:
        console.error(str(exc))
        code = exc.exit_code
    except KeyboardInterrupt:
        console.error("interrupted: run the same command again to resume")
        code = EXIT_INTERRUPTED
    except Exception as exc:  # a bug, not a user's mistake: keep the details, say where
        path = "last-error.txt"
        with open(path, "w", encoding="utf-8") as f:
            f.write(console.scrub(traceback.format_exc()))
        console.error(f"unexpected {type(exc).__name__}: {exc} (details in {path}; please report it)")
        code = EXIT_FATAL
    sys.exit(code)
