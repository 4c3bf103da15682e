"""One exception family. The CLI maps it to a one-line message and exit code; the MCP
server maps it to a tool error result (``isError``).

Exit codes (the README lists the same): 2 bad input or configuration (a port in use
included), 3 model (loading or generating), 4 index, 5 not found, 6 output could not be
written (stdout closed or full), 7 a doc set could not be fetched (git, network), 1 an
unexpected error (a bug: ``-v`` shows its traceback), 130 interrupted (SIGINT), 143
terminated (SIGTERM, ``serve``)."""

from __future__ import annotations


class DiracDocsError(Exception):
    """Base of every error this package raises on purpose."""

    exit_code = 1


class ConfigError(DiracDocsError):
    """A setting is missing or invalid."""

    exit_code = 2


class InvalidInputError(DiracDocsError):
    """A tool or CLI argument is out of bounds or malformed."""

    exit_code = 2


class LoaderError(DiracDocsError):
    """A source file could not be parsed; the indexer reports it and moves on."""


class ModelError(DiracDocsError):
    """A model could not be found, verified or loaded from disk."""

    exit_code = 3


class StoreError(DiracDocsError):
    """The index could not be opened, read or written."""

    exit_code = 4


class IndexInUseError(StoreError):
    """Another process holds the embedded index."""


class IndexDamagedError(StoreError):
    """The index files changed since the last index run, or the engine cannot read them."""


class ModelMismatchError(StoreError):
    """The collection was built with another embedding model."""


class NotFoundError(DiracDocsError):
    """A document or resource does not exist (or is outside the indexed roots)."""

    exit_code = 5


class GenerationError(DiracDocsError):
    """The generator failed or ran out of its time budget (a model error for the CLI)."""

    exit_code = 3


class OutputError(DiracDocsError):
    """Standard output could not be written (the reader went away, or the disk is full)."""

    exit_code = 6


class SourceError(DiracDocsError):
    """A doc set could not be fetched (git failed, the repository or ref is unreachable)."""

    exit_code = 7
