"""The error tree.

Every error cdcd raises on purpose derives from ``CdcdError`` and carries a
message that says what is wrong *and how to fix it*. ``RetriableError`` means
the same run may succeed later (a broker or server that is down); anything
else is permanent and stops the process with a non-zero exit code.
"""

from __future__ import annotations


class CdcdError(Exception):
    """Root of cdcd's errors; ``exit_code`` is what the CLI exits with."""

    exit_code = 1


class ConfigError(CdcdError):
    """The configuration is invalid; nothing was started."""

    exit_code = 2


class SourceError(CdcdError):
    """PostgreSQL refused or cannot serve what cdcd needs (permanent)."""

    exit_code = 3


class SinkError(CdcdError):
    """Kafka refused what cdcd produced (permanent)."""

    exit_code = 4


class RetriableError(CdcdError):
    """A transient failure: retrying from the last confirmed LSN may succeed."""

    exit_code = 5


class SourceUnavailable(RetriableError):
    """PostgreSQL is unreachable or the connection dropped."""


class SinkUnavailable(RetriableError):
    """The Kafka cluster is unreachable or a transaction could not complete."""


class DecodeError(SourceError):
    """A pgoutput message could not be decoded; the stream cannot continue safely."""


# SQLSTATE classes that no retry can fix: authentication (28), invalid
# catalog name (3D: database does not exist), insufficient privilege (42501).
_PERMANENT_SQLSTATE_PREFIXES = ("28", "3D", "42501", "42704", "55000")


def is_permanent_sqlstate(sqlstate: str | None) -> bool:
    """Tell whether a server error with this SQLSTATE is worth retrying."""
    if not sqlstate:
        return False
    return sqlstate.startswith(_PERMANENT_SQLSTATE_PREFIXES)
