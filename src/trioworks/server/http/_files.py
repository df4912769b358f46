"""Routes of activity files: upload (streamed to the :class:`~trioworks.server.storage.FileStore`,
then recorded in the storage) and download (streamed back)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ...core import run_in_thread
from .._errors import Conflict, NotFound, PayloadTooLarge
from .._models import ActivityStatus, FileRecord
from .._wire import iso
from ..storage import FILENAME, check_filename
from ._context import Context, respond
from ._routes import Routes

__all__ = ["routes"]

routes = Routes()
FILE = "/api/v1/workflows/{workflow_id}/activities/{activity_key}/files/{filename:path}"


@routes.route(FILE, "POST", "PUT")
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


@routes.get(FILE)
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
