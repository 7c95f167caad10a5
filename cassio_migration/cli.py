"""What the scripts share: typed flags, one-line errors with documented exit codes, output free of secrets."""

from __future__ import annotations

import gc
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, Protocol

import click

from .connect import refusal
from .errors import EXIT_FATAL, EXIT_INTERRUPTED, EXIT_USAGE, RESUME_HINT, MigrationError, SettingsError, UsageError


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
    # The modules loaded so far (driver, cassio, numpy) live as long as the process: keep the
    # garbage collector from scanning them again and again while rows pass. The thresholds stay
    # Python's defaults: raising them too (50,000, 20, 100; 5% of the CPU together with the freeze)
    # let cyclic garbage pile up, peak RSS at 100k rows 248 MB for the copy and 438 MB for --verify
    # against 136 and 175 MB.
    gc.freeze()
    try:
        code = main(console)
    except MigrationError as exc:
        exc = refusal(exc) or exc  # a guardrail or a permission, in the user's terms
        console.error(str(exc))
        code = exc.exit_code
    except KeyboardInterrupt:
        console.error(f"interrupted: {RESUME_HINT}")
        code = EXIT_INTERRUPTED
    except Exception as exc:  # a bug, not a user's mistake: keep the details, say where
        refused = refusal(exc)  # ... unless the database refused it: a guardrail or a permission
        if refused is not None:
            console.error(str(refused))
            code = refused.exit_code
        else:
            path = "last-error.txt"
            with open(path, "w", encoding="utf-8") as f:
                f.write(console.scrub(traceback.format_exc()))
            console.error(f"unexpected {type(exc).__name__}: {exc} (details in {path}; please report it)")
            code = EXIT_FATAL
    sys.exit(code)


class Declared(Protocol):
    """A setting as settings.py declares it."""

    @property
    def name(self) -> str: ...
    @property
    def attr(self) -> str: ...
    @property
    def help(self) -> str: ...
    @property
    def flag(self) -> str | None: ...
    @property
    def metavar(self) -> str | None: ...
    @property
    def parse(self) -> Callable[[str, str], Any]: ...
    @property
    def default_text(self) -> str: ...


class Command(click.Command):
    """A script's command: its --help in groups of options, each with its default; click's own usage
    errors as one line, `error: ...`, exit 2, as every other error of the scripts."""

    def __init__(self, *args: Any, groups: Sequence[tuple[str, Sequence[str]]] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.groups = groups

    def main(self, args: Sequence[str] | None = None, **kwargs: Any) -> NoReturn:  # type: ignore[override]
        try:
            code = super().main(args, standalone_mode=False, **kwargs)
        except click.ClickException as exc:
            message = " ".join(exc.format_message().split())
            hint = " (see --help)" if isinstance(exc, click.UsageError) else ""
            click.echo(f"error: {message}{hint}", err=True)
            sys.exit(EXIT_USAGE)
        sys.exit(code if isinstance(code, int) else 0)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        help_option = self.get_help_option(ctx)
        # click names its help option privately: "help" in a group places it
        records = {"help" if p is help_option else p.name: p.get_help_record(ctx) for p in self.get_params(ctx)}
        placed: set[str | None] = set()
        for title, names in self.groups:
            with formatter.section(title):
                formatter.write_dl([r for n in names if (r := records.get(n))])
            placed.update(names)
        rest = [r for n, r in records.items() if n not in placed and r]
        if rest:
            with formatter.section("Other options" if self.groups else "Options"):
                formatter.write_dl(rest)


def confirm(what: str, yes: bool) -> None:
    """Ask before a destructive action, unless --yes; with no terminal to ask, refuse."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(f"{what}: add --yes to confirm (there is no terminal to ask)")
    try:
        confirmed = click.confirm(f"{what}. Go on?", err=True)
    except click.Abort:  # Ctrl-C or end of input at the question
        confirmed = False
    if not confirmed:
        raise UsageError("not confirmed: nothing was changed")


class _BadFlag(click.ClickException):
    """A flag's value is invalid: one line, `error: --flag: problem`, exit 2 (as for a bad setting)."""

    exit_code = EXIT_USAGE


class SettingType(click.ParamType):
    """A flag parsed by its setting's own parser, so that flag and variable take the same values."""

    def __init__(self, setting: Declared) -> None:
        self.setting = setting
        self.name = setting.metavar or "VALUE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self.setting.parse(self.setting.flag or self.setting.name, value)
        except SettingsError as exc:
            raise _BadFlag(str(exc)) from None


def _sentence(text: str) -> str:
    """A help text as the start of a sentence; an address (tcp://...) keeps its case."""
    return text if "://" in text.split()[0] else text[0].upper() + text[1:]


def setting_options(settings: Sequence[Declared]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """One option per setting with a flag, typed by the setting, its help ending with the variable's name."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        for s in reversed(settings):
            assert s.flag is not None
            option = click.option(
                s.flag,
                s.attr,
                type=SettingType(s),
                metavar=s.metavar,
                help=f"{_sentence(s.help)}. [{s.name}" + (f"; default: {s.default_text}]" if s.default_text else "]"),
            )
            command = option(command)
        return command

    return decorate
