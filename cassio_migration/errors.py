"""Exceptions of the engine; each carries the exit code the scripts return for it."""

from __future__ import annotations

# Exit codes, documented in the README and docs/commands.md.
EXIT_OK = 0
EXIT_REJECTS = 1  # done, but some rows were rejected (or --verify found differences)
EXIT_USAGE = 2  # bad settings, bad flags, a source or target the tool cannot take
EXIT_FATAL = 3  # the run stopped: database unreachable, error budget spent, ...
EXIT_INTERRUPTED = 130  # Ctrl-C: state saved, re-run to resume

# What every stopped run tells the user: its state (the done ranges) is in the database.
RESUME_HINT = "the state is saved; run the same command again to resume"


class MigrationError(Exception):
    """An error the scripts turn into one line on stderr and an exit code."""

    exit_code = EXIT_FATAL


class UsageError(MigrationError):
    """The user asked for something that cannot be done as asked (exit 2)."""

    exit_code = EXIT_USAGE


class SettingsError(UsageError):
    """A setting is missing or invalid; the message names the variable (or the flag)."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


class SchemaError(UsageError):
    """The source or target table is not what the migration can work with."""


class CredentialsError(UsageError):
    """The database refused the credentials."""


class FatalError(MigrationError):
    """The run cannot go on (database unreachable, retries spent, ...); its state is saved."""


class BudgetSpent(FatalError):
    """More rows were rejected than --max-errors allows."""


class Interrupted(MigrationError):
    """Ctrl-C: the run stopped cleanly with its state saved."""

    exit_code = EXIT_INTERRUPTED

    def __init__(self) -> None:
        super().__init__(f"interrupted: {RESUME_HINT}")


# The errors a range task may raise on a worker, by name: they travel back to the client as data.
KNOWN_ERRORS: dict[str, type[MigrationError]] = {
    cls.__name__: cls for cls in (FatalError, UsageError, SchemaError, CredentialsError, BudgetSpent)
}
