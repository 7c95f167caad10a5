"""CQL identifiers: names from settings are validated and quoted, never pasted raw."""

from __future__ import annotations

import re

from .errors import SettingsError

# cassio 0.0.x and 0.1.x paste names unquoted into CQL, so Cassandra folded them to
# lower case; a name given as "MyTable" therefore means mytable, as it did for cassio.
_UNQUOTED = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,47}$")


def identifier(variable: str, value: str) -> str:
    """Validate a keyspace or table name from a setting and fold it as CQL does."""
    if not _UNQUOTED.match(value):
        raise SettingsError(
            variable,
            f"{value!r} is not a valid CQL name (a letter, then letters, digits or _, at most 48 characters)",
        )
    return value.lower()


def quote(name: str) -> str:
    """Quote an identifier for CQL."""
    return '"' + name.replace('"', '""') + '"'


def qualified(keyspace: str, table: str) -> str:
    return f"{quote(keyspace)}.{quote(table)}"


def literal(value: str) -> str:
    """A CQL string literal."""
    return "'" + value.replace("'", "''") + "'"
