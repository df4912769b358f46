"""Activity files: contents on disk next to the database, metadata in the storage.

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
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ..core import run_in_thread
from ._errors import Conflict, NotFound, PayloadTooLarge, ValidationFailed
from ._http import Context, respond
from ._models import ActivityStatus, FileRecord
from ._wire import iso

__all__ = ["FileStore", "check_filename", "download", "upload"]

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


async def upload(request: Request, ctx: Context) -> Response:
    workflow_id = request.path_params["workflow_id"]
    key = request.path_params["activity_key"]
    filename = request.path_params["filename"]
    check_filename(filename)
    claim = await ctx.db(ctx.storage.activity_claim, workflow_id, key)
    if claim is None:
        raise NotFound(f"workflow {workflow_id} has no activity {key!r}")
    # Only the worker running the activity writes its files (checked by client: the protocol's
    # upload carries no worker_id), and only while it runs: then they are final.
    status, claimed_by = claim
    if status is not ActivityStatus.RUNNING or claimed_by is None:
        raise Conflict(f"activity {key!r} is {status.value}: its files can change only while it runs")
    await ctx.check_worker_id(request, claimed_by)
    content_type = request.headers.get("content-type") or "application/octet-stream"
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > ctx.max_file_bytes:
        raise PayloadTooLarge(f"file of {declared} bytes exceeds the {ctx.max_file_bytes} byte limit")
    target = ctx.files.path(workflow_id, key, filename)
    size = await ctx.files.save(target, request.stream(), ctx.max_file_bytes)
    record = FileRecord(workflow_id, key, filename, size, content_type, ctx.clock())
    await ctx.db(ctx.storage.put_file, record)
    body = {"workflow_id": workflow_id, "activity_key": key, "filename": filename, "size": size}
    return respond({**body, "content_type": content_type, "created_at": iso(record.created_at)}, 201)


async def download(request: Request, ctx: Context) -> Response:
    workflow_id = request.path_params["workflow_id"]
    key = request.path_params["activity_key"]
    filename = request.path_params["filename"]
    if not FILENAME.match(filename) or ".." in filename.split("/"):
        raise NotFound(f"file {filename!r} not found")
    record = await ctx.db(ctx.storage.get_file, workflow_id, key, filename)
    path = ctx.files.path(workflow_id, key, filename)
    if not await run_in_thread(path.is_file, limiter=ctx.file_limiter):
        raise NotFound(f"file {filename!r} of activity {key!r}: metadata exists but the content is missing")
    headers = {
        "Content-Length": str(record.size),
        "Content-Disposition": f'attachment; filename="{filename.rsplit("/", 1)[-1]}"',
    }
    return StreamingResponse(ctx.files.stream(path), media_type=record.content_type, headers=headers)
