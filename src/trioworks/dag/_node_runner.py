"""NodeRunner: runs one node of a workflow compiled by :func:`compile_workflow`, on a worker.

The ``dag_node`` activity (``trioworks.worker.dag_activities``) calls it. Its parameters carry
the node's spec (code, a function's ``module:qualname`` or a pickled callable), its static
inputs and, per input edge, the upstream node's whole output and whether the edge is live; the
inputs are assembled here exactly as the local runtime assembles them, and the node's retries
(its :class:`RetryPolicy`) and per-attempt timeouts run here too.

Function nodes are imported by module path: the workers must have the user's package installed
(as with Celery or Dask); a missing one raises :class:`NodeImportError` naming it.
"""

from __future__ import annotations

import ast
import base64
import functools
import hashlib
import importlib
import pickle
import time
from collections.abc import Callable, Mapping
from typing import Any

import trio

from ..core import RetryPolicy, retry, run_in_process, run_in_thread
from ._errors import DagError, NodeInputError, NodeTimeoutError
from ._nodes import run_async_code, run_code, run_source, switch_output
from ._paths import _follow
from ._resources import ResourceRegistry
from ._values import (
    DEFAULT_MAX_INLINE_BYTES,
    VALUE_FILENAME,
    ValueFiles,
    decode_file,
    not_json_reason,
    offload,
)

__all__ = ["NodeImportError", "NodeOutputError", "NodeRunner", "RemoteNodeFailure"]

_NOT_TAKEN, _SKIPPED, _FAILED = "branch not taken", "input skipped", "input failed"


def _dead_reason(edge: Mapping[str, Any]) -> str | None:
    """Why an input edge carries nothing (the local runtime's reasons), or None if it is live."""
    if edge.get("error") is not None:
        return _FAILED
    if edge.get("skipped"):
        return str(edge["skipped"])
    if "live" in edge and not edge["live"]:
        return _NOT_TAKEN
    if edge.get("switch"):
        value, root = edge.get("value"), str(edge["path"]).split(".")[0]
        if not isinstance(value, Mapping) or root not in value:
            return _NOT_TAKEN
    return None


class NodeImportError(DagError):
    """A node's function, object or package cannot be loaded on this worker."""


class RemoteNodeFailure(DagError):
    """A node failed on this worker (fail-fast mode); the message is ``"Type: text"``."""


class NodeOutputError(DagError, TypeError):
    """A node's output cannot travel to other workers: it is not JSON. ``node_id`` names the
    node; the message names the output (``result``, or the key of a raw output) and the cause."""

    def __init__(self, node_id: str, reason: str) -> None:
        self.node_id = node_id
        super().__init__(
            f"node {node_id!r}: {reason}: values between workers travel as JSON (dicts with str "
            "keys, lists, str, numbers, bool, None); return those, or run on AsyncLocalRuntime"
        )


def _resolve(ref: str) -> Any:
    module_name, _, qualname = ref.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise NodeImportError(
            f"cannot import {module_name!r} for {ref!r} on this worker ({exc}): install the workflow's "
            "package on every dag worker (or put it on PYTHONPATH)",
        ) from exc
    for part in qualname.split("."):
        try:
            target = getattr(target, part)
        except AttributeError as exc:
            raise NodeImportError(
                f"module {module_name!r} on this worker has no {qualname!r}: is the same version installed?",
            ) from exc
    return target


def _unpickle(blob: str) -> Any:
    try:
        return pickle.loads(base64.b64decode(blob))
    except (ImportError, AttributeError) as exc:
        raise NodeImportError(
            f"cannot load the node's callable on this worker ({exc}): install the workflow's package "
            "on every dag worker",
        ) from exc


def _call_in_process(fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    return fn(**kwargs)


def _policy(spec: Mapping[str, Any] | None) -> RetryPolicy | None:
    if not spec:
        return None
    fields = dict(spec)
    retry_on = fields.pop("retry_on", None)
    if retry_on is not None:
        fields["retry_on"] = (
            _resolve(retry_on["function"]) if "function" in retry_on else _unpickle(retry_on["pickled"])
        )
    return RetryPolicy(**fields)


class NodeRunner:
    """State shared by the activity's calls in one worker: limiters, resources, callables."""

    def __init__(
        self,
        resources: ResourceRegistry | None,
        threads: int,
        processes: int | None,
        *,
        max_inline_bytes: int | None = None,
        codec_threads: int = 2,
    ) -> None:
        if max_inline_bytes is None:
            max_inline_bytes = DEFAULT_MAX_INLINE_BYTES
        if max_inline_bytes < 0:
            raise ValueError(f"max_inline_bytes must be >= 0, got {max_inline_bytes}")
        self.resources = resources
        self.threads = trio.CapacityLimiter(threads)
        self.processes = trio.CapacityLimiter(processes or 1)
        self.max_inline_bytes = max_inline_bytes
        # Encoding a large output into its file and decoding a downloaded one: CPU-bound JSON
        # work, kept off the loop and off the node threads.
        self.codec = trio.CapacityLimiter(codec_threads)
        # A pickled callable is loaded once per (workflow, node) here, so that a stateful one
        # (a callable object) sees its retries, as it does in the local runtime.
        self._loaded: dict[tuple[str, str, str], Any] = {}

    def _callable(self, workflow_id: str, node_id: str, spec: Mapping[str, Any]) -> Any:
        if "function" in spec:
            return _resolve(spec["function"])
        blob = spec["pickled"]
        key = (workflow_id, node_id, hashlib.sha1(blob.encode()).hexdigest())
        if key not in self._loaded:
            if len(self._loaded) > 1024:
                self._loaded.clear()
            self._loaded[key] = _unpickle(blob)
        return self._loaded[key]

    async def resource(self, name: str) -> Any:
        if self.resources is None:
            raise LookupError(
                f"resource {name!r} requested, but this dag worker has no resource registry "
                "(start it with --dag-resources MODULE:FUNCTION)"
            )
        return await self.resources.get_resource(name)

    async def run(
        self, params: Mapping[str, Any], workflow_id: str, files: ValueFiles | None = None
    ) -> dict[str, Any]:
        """Run the node ``params`` describe; its activity output ``{"out", "error", "seconds"}``.

        An output larger than ``max_inline_bytes`` (the workflow's, else this runner's) is
        uploaded through ``files`` as the activity's file ``out.json``: the output then carries
        ``out_file`` (its reference) and a stub ``out`` (see ``dag/_values.py``). An input edge
        with a ``file`` is downloaded through ``files`` and decoded.

        Raises :class:`RemoteNodeFailure` when the node fails (fail-fast mode), including an
        output that is not JSON (:class:`NodeOutputError`) and an input file that cannot be
        downloaded (:class:`NodeInputError`), and :class:`NodeImportError` when its callable
        cannot be loaded here. Transfer errors of the upload propagate (the worker reports them).
        """
        node = params["node"]
        node_id, kind = node["id"], node["kind"]
        strict = bool(node.get("strict"))
        kwargs: dict[str, Any] = dict(params.get("inputs") or {})
        started = time.perf_counter()
        edges = params.get("edges", [])
        dead = {i: reason for i, e in enumerate(edges) if (reason := _dead_reason(e)) is not None}
        live_edges = [e for i, e in enumerate(edges) if i not in dead]
        if params.get("continue_on_error"):
            # The local runtime's rule (_Run._settle): skip on a failed input, or on any dead
            # input unless a merge with a live one.
            reasons = set(dead.values())
            if _FAILED in reasons or (reasons and (kind != "merge" or not live_edges)):
                return {
                    "out": None,
                    "error": None,
                    "seconds": 0.0,
                    "skipped": _FAILED if _FAILED in reasons else _SKIPPED,
                    "skip_reasons": ", ".join(sorted(reasons)),
                }

        try:
            live_edges = await self._fetch_inputs(node_id, live_edges, files)
        except NodeInputError as exc:
            return self._failed(params, exc, started, 0)

        def edge_value(edge: Mapping[str, Any]) -> Any:
            path = edge["path"]
            return _follow(
                edge["value"], path, tuple(path.split(".")), node_id, edge["input"], edge["source"], strict
            )

        async def attempt() -> Any:
            if kind == "switch":
                inputs = {**kwargs, **{e["input"]: edge_value(e) for e in live_edges}}
                return switch_output(node_id, node.get("routing") or {}, inputs.get("input_data"))
            if kind == "merge":
                first = edge_value(live_edges[0])
                return {"result": first, "merged_data": first}
            inputs = {**kwargs, **{e["input"]: edge_value(e) for e in live_edges}}
            for param, name in (node.get("resources") or {}).items():
                inputs[param] = await self.resource(name)
            timeout = node.get("timeout")
            with trio.move_on_after(timeout if timeout is not None else float("inf")) as scope:
                return await self._invoke(workflow_id, node, inputs)
            assert scope.cancelled_caught
            raise NodeTimeoutError(node_id, timeout)

        policy = _policy(node.get("retry"))
        attempts = 0

        async def counted() -> Any:
            nonlocal attempts
            attempts += 1
            return await attempt()

        try:
            value = await (counted() if policy is None else retry(counted, policy))
        except NodeImportError:
            raise
        except Exception as exc:
            return self._failed(params, exc, started, attempts)
        output = value if node.get("raw_output") or kind in ("switch", "merge") else {"result": value}
        limit = params.get("max_inline_bytes")
        limit = self.max_inline_bytes if limit is None else int(limit)
        try:
            stored = await self._store(node_id, kind, output, limit, files)
        except NodeOutputError as exc:
            return self._failed(params, exc, started, attempts)
        return {**stored, "error": None, "seconds": time.perf_counter() - started, "attempts": attempts}

    @staticmethod
    def _failed(params: Mapping[str, Any], exc: Exception, started: float, attempts: int) -> dict[str, Any]:
        """The output of a failed node (continue-on-error), or :class:`RemoteNodeFailure`."""
        if params.get("continue_on_error"):
            error = {"type": type(exc).__name__, "message": str(exc)}
            return {
                "out": None,
                "error": error,
                "seconds": time.perf_counter() - started,
                "attempts": attempts,
            }
        raise RemoteNodeFailure(f"{type(exc).__name__}: {exc}") from exc

    async def _store(
        self, node_id: str, kind: str, output: Any, limit: int, files: ValueFiles | None
    ) -> dict[str, Any]:
        """``{"out": output}``, or for a large one ``{"out": stub, "out_file": reference}``."""
        try:
            if files is None:
                not_json = not_json_reason(output)
                if not_json is not None:
                    raise NodeOutputError(node_id, not_json)
                return {"out": output}
            written = await offload(output, limit, files.temp_dir, self.codec)
        except (TypeError, ValueError, RecursionError) as exc:
            if isinstance(exc, NodeOutputError):
                raise
            raise NodeOutputError(node_id, not_json_reason(output) or f"it is not JSON ({exc})") from exc
        if written is None:
            return {"out": output}
        reference = await files.upload_file(written.path, VALUE_FILENAME)
        # A switch keeps its taken branch's key inline: the server's conditions test it.
        stub = dict.fromkeys(output) if kind == "switch" and isinstance(output, dict) else None
        return {"out": stub, "out_file": reference, "out_bytes": written.size}

    async def _fetch_inputs(
        self, node_id: str, edges: list[Mapping[str, Any]], files: ValueFiles | None
    ) -> list[Mapping[str, Any]]:
        """``edges`` with each file-borne value downloaded and decoded (each file once)."""
        if not any(edge.get("file") for edge in edges):
            return edges
        loaded: dict[str, Any] = {}
        fetched = []
        for edge in edges:
            reference = edge.get("file")
            if reference:
                if reference not in loaded:
                    loaded[reference] = await self._fetch(node_id, edge, str(reference), files)
                edge = {**edge, "value": loaded[reference]}
            fetched.append(edge)
        return fetched

    async def _fetch(
        self, node_id: str, edge: Mapping[str, Any], reference: str, files: ValueFiles | None
    ) -> Any:
        def failed(why: str) -> NodeInputError:
            return NodeInputError(
                node_id,
                str(edge["input"]),
                f"node {edge['source']!r}'s output travels as file {reference}, and {why}",
            )

        if files is None:
            raise failed("this runner was given no file transfers")
        try:
            path = await files.download_file(reference)
        except Exception as exc:  # the worker's ApiError (404: gone), a transport error, a bad reference
            raise failed(f"downloading it failed: {exc}") from exc
        try:
            return await decode_file(path, self.codec)
        except (OSError, ValueError) as exc:
            raise failed(f"it is not readable JSON: {exc}") from exc

    async def _invoke(self, workflow_id: str, node: Mapping[str, Any], inputs: dict[str, Any]) -> Any:
        node_id, kind, strict = node["id"], node["kind"], bool(node.get("strict"))
        source = node.get("code")
        if source is None and "code_b64" in node:
            source = base64.b64decode(node["code_b64"]).decode()
        if source is not None:
            if kind == "async":
                code = compile(
                    source,
                    f"<node {node_id}>",
                    "exec",
                    flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
                    dont_inherit=True,
                )
                return await run_async_code(node_id, code, inputs, {"get_resource": self.resource}, strict)
            if kind == "process":
                job = functools.partial(run_source, node_id, source, inputs, strict)
                return await run_in_process(job, limiter=self.processes)
            code = compile(source, f"<node {node_id}>", "exec", dont_inherit=True)

            def get_resource(name: str) -> Any:
                return trio.from_thread.run(self.resource, name)

            job = functools.partial(run_code, node_id, code, inputs, {"get_resource": get_resource}, strict)
            return await run_in_thread(job, limiter=self.threads, abandon_on_cancel=True)
        if "instance" in node:
            instance = self._callable(workflow_id, node_id, node["instance"])
            if kind == "async":
                return await instance.execute_async(**inputs)
            return await run_in_thread(
                functools.partial(instance.execute, **inputs), limiter=self.threads, abandon_on_cancel=True
            )
        fn = self._callable(workflow_id, node_id, node)
        if kind == "async":
            return await fn(**inputs)
        if kind == "process":
            return await run_in_process(_call_in_process, fn, inputs, limiter=self.processes)
        return await run_in_thread(
            functools.partial(fn, **inputs), limiter=self.threads, abandon_on_cancel=True
        )
