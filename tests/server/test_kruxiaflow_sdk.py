"""The original ``kruxiaflow`` SDK (its client and its asyncio worker, in subprocesses) against our server.

Skipped unless a Python with ``kruxiaflow==0.4.0`` is available: this interpreter, or the one
named by ``$KRUXIAFLOW_SDK_PYTHON`` (e.g. a venv made with ``pip install kruxiaflow==0.4.0``).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest
import trio
from server_helpers import Api, ManualClock, output_values

from trioworks.server import ServerConfig

# The SDK's own example shape; it runs under asyncio, as the original does.
SDK_WORKER = textwrap.dedent(
    """
    import asyncio, decimal, tempfile
    from kruxiaflow.worker import (
        ActivityContext, ActivityRegistry, ActivityResult, WorkerConfig, WorkerManager, activity,
    )

    @activity(name="double")
    async def double(params: dict, ctx: ActivityContext) -> ActivityResult:
        return ActivityResult.value("result", params["n"] * 2).with_cost(decimal.Decimal("0.01"))

    @activity(name="upload")
    async def upload(params: dict, ctx: ActivityContext) -> ActivityResult:
        path = tempfile.mktemp()
        with open(path, "w") as f:
            f.write("made by the original SDK " * 100)
        return ActivityResult.value("ref", await ctx.upload_file(path, "report.txt"))

    @activity(name="boom")
    async def boom(params: dict, ctx: ActivityContext) -> ActivityResult:
        raise RuntimeError("kaboom")

    config = WorkerConfig()
    registry = ActivityRegistry()
    for a in (double, upload, boom):
        registry.register(a, config.worker)
    asyncio.run(WorkerManager(config, registry).run_until_shutdown())
    """
)

# The SDK's client: build a workflow with its models (a conditioned dependency in its own
# in-brace syntax), deploy it and start it; prints the workflow id.
SDK_CLIENT = textwrap.dedent(
    """
    import sys
    from kruxiaflow import KruxiaFlow
    from kruxiaflow.models import Activity, Dependency, Workflow

    a = Activity(key="a", worker="py-std", activity_name="double", parameters={"n": 3})
    b = Activity(
        key="b", worker="py-std", activity_name="double",
        depends_on=[Dependency.on(a, "{{ a.result > 1 }}")], parameters={"n": "{{a.result}}"},
    )
    skipped = Activity(
        key="never", worker="py-std", activity_name="double",
        depends_on=[Dependency.on(a, "{{ a.result > 100 }}")], parameters={"n": 0},
    )
    with KruxiaFlow(api_url=sys.argv[1], api_token=sys.argv[2]) as client:
        client.deploy(Workflow(name="sdkflow", activities=[a, b, skipped]))
        print(client.start_workflow("sdkflow", inputs={"x": 1})["workflow_id"])
    """
)

PIPELINE = {
    "name": "compat",
    "activities": [
        {"key": "d1", "worker": "py-std", "activity_name": "double", "parameters": {"n": "{{INPUT.n}}"}},
        {
            "key": "d2",
            "worker": "py-std",
            "activity_name": "double",
            "depends_on": ["d1"],
            "parameters": {"n": "{{d1.result}}"},
        },
        {"key": "up", "worker": "py-std", "activity_name": "upload", "depends_on": ["d2"]},
    ],
}
FAILING = {
    "name": "boom",
    "activities": [
        {
            "key": "b",
            "worker": "py-std",
            "activity_name": "boom",
            "settings": {"retry": {"max_attempts": 2, "base_seconds": 0.2}},
        }
    ],
}


@pytest.fixture
def sdk_python() -> str:
    configured = os.environ.get("KRUXIAFLOW_SDK_PYTHON")
    if configured:
        return configured
    if importlib.util.find_spec("kruxiaflow") is not None:
        return sys.executable
    pytest.skip("the original kruxiaflow SDK is not installed (or set KRUXIAFLOW_SDK_PYTHON)")


class _WallClock(ManualClock):
    """Real time: the SDK runs on its own clock in another process."""

    def __call__(self) -> float:
        return time.time()


@pytest.fixture
def server_config(tmp_path: Path) -> ServerConfig:
    return ServerConfig(
        db=str(tmp_path / "sdk.db"),
        port=0,
        clients={"client": "s3cret"},
        sweep_interval=1.0,
        clock=_WallClock(),
    )


async def _wait_done(api: Api, workflow_ids: list[str]) -> list[dict]:
    with trio.fail_after(30):
        while True:
            docs = [(await api.client.get(f"/api/v1/workflows/{w}")).json() for w in workflow_ids]
            if all(d["status"] in ("completed", "failed") for d in docs):
                return docs
            await trio.sleep(0.1)


@pytest.mark.slow
async def test_original_sdk_runs_against_our_server(api: Api, sdk_python: str, tmp_path: Path) -> None:
    for definition in (PIPELINE, FAILING):
        assert (await api.client.post("/api/v1/workflow_definitions", json=definition)).status_code == 201
    submit = api.client.post
    ok = (await submit("/api/v1/workflows", json={"definition_name": "compat", "input": {"n": 5}})).json()
    bad = (await submit("/api/v1/workflows", json={"definition_name": "boom", "input": {}})).json()
    script = tmp_path / "sdk_worker.py"
    await trio.Path(script).write_text(SDK_WORKER)
    client_script = tmp_path / "sdk_client.py"
    await trio.Path(client_script).write_text(SDK_CLIENT)
    token = api.client.headers["Authorization"].removeprefix("Bearer ")
    started = await trio.run_process(
        [sdk_python, str(client_script), str(api.client.base_url), token], capture_stdout=True
    )
    sdk_flow = started.stdout.decode().strip()
    env = {
        **os.environ,
        "KRUXIAFLOW_API_URL": str(api.client.base_url),
        "KRUXIAFLOW_CLIENT_ID": "client",
        "KRUXIAFLOW_CLIENT_SECRET": "s3cret",
    }
    async with trio.open_nursery() as nursery:
        run = functools.partial(trio.run_process, [sdk_python, str(script)], env=env, check=False)
        process = await nursery.start(run)
        try:
            done, failed, by_sdk = await _wait_done(api, [ok["workflow_id"], bad["workflow_id"], sdk_flow])
        finally:
            process.send_signal(signal.SIGTERM)

    assert done["status"] == "completed", done
    outputs = {a["activity_key"]: output_values(a) for a in done["activities"]}
    assert outputs["d2"] == {"result": 20}
    assert outputs["up"]["ref"] == f"postgres://{ok['workflow_id']}/up/report.txt"
    assert sum(a["cost_usd"] for a in done["activities"]) == pytest.approx(0.02)
    files = (await api.client.get(f"/api/v1/workflows/{ok['workflow_id']}/activities/up/output")).json()[
        "files"
    ]
    assert files[0]["filename"] == "report.txt" and files[0]["size"] > 0
    assert failed["status"] == "failed"
    (boom,) = failed["activities"]
    assert (boom["retry_count"], boom["error_code"]) == (1, "EXECUTION_ERROR")
    assert by_sdk["status"] == "completed", by_sdk
    results = {a["activity_key"]: (a["status"], output_values(a)) for a in by_sdk["activities"]}
    assert results == {
        "a": ("completed", {"result": 6}),
        "b": ("completed", {"result": 12}),
        "never": ("skipped", None),
    }
