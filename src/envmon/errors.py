"""One exception tree for the whole package.

Errors are grouped by what the caller should do (after the Singer SDK): a
``FatalError`` stops the thing that raised it (a source, a command), a
``RetriableError`` is worth trying again after a back-off, and a
``SkippableError`` concerns one record, which is quarantined with its reason
while the rest goes on.
"""

from __future__ import annotations


class EnvmonError(Exception):
    """Root of every error envmon raises on purpose."""


class FatalError(EnvmonError):
    """Stop the source or command; retrying will not help."""


class RetriableError(EnvmonError):
    """A passing fault (timeout, connection lost, 5xx, 429): back off and retry."""


class SkippableError(EnvmonError):
    """One record is bad: quarantine it with the reason and go on."""


class ConfigError(FatalError):
    """A configuration file or setting is wrong; the message names the entry."""


class CatalogError(ConfigError):
    """The station catalog is invalid; the message names the offending entry."""


class DatabaseError(EnvmonError):
    """The database could not do what was asked."""


class DatabaseUnavailable(DatabaseError, RetriableError):
    """The database cannot be reached right now (the writer spools instead)."""


class EmbeddedDbError(DatabaseError, FatalError):
    """The embedded PostgreSQL cluster could not be created, started or stopped."""


class ImportFileError(FatalError):
    """An import file cannot be read at all (as opposed to bad rows inside it)."""


class ValidationError(SkippableError):
    """One record failed validation; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
