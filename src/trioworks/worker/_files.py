"""Streamed file transfer for one activity, and its temporary directory."""

from __future__ import annotations

import mimetypes
import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

import trio

from ..core import run_in_thread
from ._client import WorkerApiClient
from ._wire import FileReference, check_filename

__all__ = ["ActivityFiles"]

CHUNK = 64 * 1024


class ActivityFiles:
    """Uploads, downloads and the temp directory of one activity.

    Every disk operation runs in a thread under ``io_limiter``; bodies are streamed in 64 KiB
    chunks both ways, so a file is never held in memory whole. :meth:`cleanup` (called by the
    worker when the activity ends, shielded) removes the temp directory and all downloads.
    """

    def __init__(
        self, client: WorkerApiClient, workflow_id: str, activity_key: str, io_limiter: trio.CapacityLimiter
    ) -> None:
        self._client = client
        self._workflow_id = workflow_id
        self._activity_key = activity_key
        self._io = io_limiter
        self._temp_dir: Path | None = None

    async def temp_dir(self) -> Path:
        if self._temp_dir is None:
            self._temp_dir = Path(await run_in_thread(tempfile.mkdtemp, "", "trioworks_", limiter=self._io))
        return self._temp_dir

    async def upload(self, local_path: str | os.PathLike[str], filename: str | None = None) -> str:
        """Stream ``local_path`` to the server as ``filename`` (default: its base name).

        Returns the reference string. Retried on network errors and 5xx (re-reading the file).
        """
        path = Path(local_path)
        name = filename or path.name
        check_filename(name)
        size = (await run_in_thread(path.stat, limiter=self._io)).st_size
        content_type = mimetypes.guess_type(name)[0]

        async def body() -> AsyncIterator[bytes]:
            handle: IO[bytes] = await run_in_thread(open, path, "rb", limiter=self._io)
            try:
                while chunk := await run_in_thread(handle.read, CHUNK, limiter=self._io):
                    yield chunk
            finally:
                with trio.CancelScope(shield=True):
                    await run_in_thread(handle.close, limiter=self._io)

        await self._client.upload(
            self._workflow_id, self._activity_key, name, body, size=size, content_type=content_type
        )
        return str(FileReference(self._workflow_id, self._activity_key, name))

    async def upload_folder(self, local_dir: str | os.PathLike[str], prefix: str) -> list[str]:
        root = Path(local_dir)
        files: list[Path] = await run_in_thread(
            lambda: sorted(p for p in root.rglob("*") if p.is_file()), limiter=self._io
        )
        return [await self.upload(p, f"{prefix}/{p.relative_to(root).as_posix()}") for p in files]

    async def download(self, reference: str) -> str:
        """Stream a stored file into the temp directory; return the local path."""
        ref = FileReference.parse(reference)
        target = (await self.temp_dir()) / ref.filename
        await run_in_thread(lambda: target.parent.mkdir(parents=True, exist_ok=True), limiter=self._io)
        handle: Any = await run_in_thread(open, target, "wb", limiter=self._io)
        try:
            async with self._client.download(ref.workflow_id, ref.activity_key, ref.filename) as response:
                async for chunk in response.aiter_bytes(CHUNK):
                    await run_in_thread(handle.write, chunk, limiter=self._io)
        finally:
            with trio.CancelScope(shield=True):
                await run_in_thread(handle.close, limiter=self._io)
        return str(target)

    async def cleanup(self) -> None:
        """Remove the temp directory; shielded, at most 10 s."""
        if self._temp_dir is None:
            return
        directory, self._temp_dir = self._temp_dir, None
        with trio.CancelScope(shield=True), trio.move_on_after(10):
            await run_in_thread(shutil.rmtree, directory, True, limiter=self._io)
