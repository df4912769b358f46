"""Settings of the memory service and the error its bad values raise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from .._settings import SettingError, at_least

__all__ = ["MemoryConfig", "MemoryConfigError"]


class MemoryConfigError(SettingError):
    """A setting of the memory service is unusable; names the field and what was expected."""

    prefix = "memory config"


def _path(value: object) -> Path:
    if not isinstance(value, str | Path) or not str(value):
        raise MemoryConfigError("db_path", f"expected a file path, got {value!r}")
    return Path(value)


def _sources(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, tuple) or not value or not all(isinstance(v, str) and v for v in value):
        raise MemoryConfigError(
            attribute.name, f"expected a non-empty tuple of source names or None, got {value!r}"
        )


@attrs.frozen(kw_only=True)
class MemoryConfig:
    """Where the memory service keeps its documents and how it batches, queues and answers."""

    db_path: Path = attrs.field(converter=_path)
    """The SQLite file of the documents (created when missing)."""
    ingest_batch: int = attrs.field(default=16, validator=at_least(MemoryConfigError, 1, int))
    """Documents embedded and stored together, at most."""
    ingest_queue: int = attrs.field(default=256, validator=at_least(MemoryConfigError, 1, int))
    """Documents waiting for ingest, at most (the ``stt/final`` and ``tts/say`` routes drop the
    newest message past it)."""
    query_deadline: float = attrs.field(default=5.0, validator=at_least(MemoryConfigError, 0.001))
    """Seconds a ``memory/query`` may take until it is answered; past it the query is dropped."""
    drain_timeout: float = attrs.field(default=2.0, validator=at_least(MemoryConfigError, 0))
    """Seconds the ingest queue is still drained into the store when the service stops."""
    rebuild_interval: float = attrs.field(default=1.0, validator=at_least(MemoryConfigError, 0))
    """Seconds between two BM25 rebuilds, at least (rebuilds are coalesced)."""
    recall: tuple[str, ...] | None = attrs.field(default=("stt", "note"), validator=_sources)
    """The sources a query returns (as hits and as their context): by default what the user said
    (``stt``) and facts given to it (``note``), not the assistant's own replies (``tts``), so a
    reply never comes back as a memory. None: every source."""
