""":class:`FileStore`: the contents of activity files, on disk next to the database (their
metadata is in the :class:`~trioworks.server.Storage`).

Uploads are streamed to a temporary file chunk by chunk (never held whole in memory) and
renamed into place once complete; downloads are streamed back. Every disk operation runs in a
thread under the file limiter.
"""

from __future__ import annotations

import errno
import os
import re
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import IO, Any, TypeVar

import trio

from ...core import run_in_thread
from .._errors import Conflict, PayloadTooLarge, ValidationFailed

__all__ = ["FILENAME", "FileStore", "check_filename"]

FILENAME = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9_./-]*$")
_CHUNK = 64 * 1024
_T = TypeVar("_T")


MAX_SEGMENT = 255  # bytes of one path segment: what file systems accept (NAME_MAX)
MAX_FILENAME = 1024  # bytes of the whole name, far below PATH_MAX with the root prepended
_CLASH = (errno.EEXIST, errno.ENOTDIR, errno.EISDIR, errno.ENOTEMPTY)


def check_filename(filename: str) -> None:
    """422 naming ``filename`` unless it matches the spec's pattern with no ``..`` segment and
    fits the file system (each segment at most :data:`MAX_SEGMENT` bytes)."""
    if (
        not FILENAME.match(filename)
        or ".." in filename.split("/")
        or filename.endswith("/")
        or "//" in filename
    ):
        raise ValidationFailed.one(
            "filename", f"{filename!r} must match {FILENAME.pattern} with no '..' or empty path segment"
        )
    if len(filename) > MAX_FILENAME or any(len(part) > MAX_SEGMENT for part in filename.split("/")):
        raise ValidationFailed.one(
            "filename",
            f"{filename[:40]!r}... is too long: at most {MAX_SEGMENT} characters per segment, "
            f"{MAX_FILENAME} in all",
        )


class FileStore:
    """Files under ``root/<workflow_id>/<activity_key>/<filename>``."""

    def __init__(self, root: Path, limiter: trio.CapacityLimiter) -> None:
        self.root = root
        self._limiter = limiter

    def path(self, workflow_id: str, activity_key: str, filename: str) -> Path:
        return self.root / workflow_id / activity_key / filename

    async def _thread(self, fn: Callable[..., _T], *args: Any) -> _T:
        return await run_in_thread(fn, *args, limiter=self._limiter)

    async def save(self, target: Path, chunks: AsyncIterator[bytes], cap: int) -> int:
        """Stream ``chunks`` into ``target``; returns the size. 413 (and nothing kept) past ``cap``;
        409 when a file and a directory of the activity would have the same name (``a`` and ``a/b``)."""
        try:
            return await self._save(target, chunks, cap)
        except OSError as exc:
            if exc.errno in _CLASH:
                name = target.relative_to(self.root).parts[2:]
                raise Conflict(
                    f"file {'/'.join(name)!r}: a file and a directory of this activity would share a name"
                ) from None
            if exc.errno == errno.ENAMETOOLONG:
                raise ValidationFailed.one("filename", "too long for the server's file system") from None
            raise

    async def _save(self, target: Path, chunks: AsyncIterator[bytes], cap: int) -> int:
        await self._thread(lambda: target.parent.mkdir(parents=True, exist_ok=True))
        temp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
        handle: IO[bytes] = await self._thread(open, temp, "wb")
        size = 0
        try:
            async for chunk in chunks:
                size += len(chunk)
                if size > cap:
                    raise PayloadTooLarge(f"file exceeds the {cap} byte limit")
                await self._thread(handle.write, chunk)
            await self._thread(handle.close)
            await self._thread(os.replace, temp, target)
        except BaseException:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await self._thread(handle.close)
                await self._thread(lambda: temp.unlink(missing_ok=True))
            raise
        return size

    async def stream(self, path: Path) -> AsyncIterator[bytes]:
        handle: IO[bytes] = await self._thread(open, path, "rb")
        try:
            while chunk := await self._thread(handle.read, _CHUNK):
                yield chunk
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await self._thread(handle.close)
