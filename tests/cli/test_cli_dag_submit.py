"""``trioworks dag submit --wait`` prints what ``trioworks dag run`` prints, with the nodes run by a
``trioworks worker --dag`` process through a ``trioworks server`` process."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _services import free_port

ROOT = Path(__file__).resolve().parents[2]
HANG_GUARD = 120.0


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    run = [sys.executable, "-m", "trioworks.cli"]
    procs = []
    try:
        with (tmp_path / "server.log").open("ab") as log:
            server = [*run, "server", "--db", f"sqlite:///{tmp_path / 's.db'}", "--port", str(port)]
            procs.append(
                subprocess.Popen(
                    [*server, "--client", "c:s", "--files-dir", str(tmp_path / "files")],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        deadline = time.monotonic() + HANG_GUARD
        while "listening on" not in (tmp_path / "server.log").read_text(errors="replace"):
            assert time.monotonic() < deadline, "hang guard: the server did not start"
            time.sleep(0.05)  # another process: nothing to wait on but its log
        with (tmp_path / "worker.log").open("ab") as log:
            worker = [
                *run,
                "worker",
                "--dag",
                "--dag-resources",
                "trioworks.demo.etl:resources",
                "--url",
                url,
                # small: the demo's larger outputs travel as files, the small ones inline
                "--max-inline-bytes",
                "256",
            ]
            worker += ["--client-id", "c", "--client-secret", "s", "--poll-interval", "0.02"]
            procs.append(subprocess.Popen(worker, stdout=log, stderr=subprocess.STDOUT))
        yield url
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def test_submit_wait_prints_what_run_prints(fleet: str, cli: Any, tmp_path: Path) -> None:
    demo = ROOT / "examples" / "dag_demo.py"
    local = cli("dag", "run", demo, "--json")
    remote = cli(
        "dag",
        "submit",
        demo,
        "--server",
        fleet,
        "--client-id",
        "c",
        "--client-secret",
        "s",
        "--wait",
        "--json",
    )
    assert (local.code, remote.code) == (0, 0), remote.err
    here, there = local.json(), remote.json()
    assert there["statuses"] == here["statuses"]
    assert there["skip_reasons"] == here["skip_reasons"]
    assert there["attempts"]["publish"] == here["attempts"]["publish"] == 2
    for node in ("aggregate", "route", "merge", "store"):
        assert there["results"][node] == here["results"][node]
    # some outputs were over the workers' --max-inline-bytes: they are stored as files
    assert list((tmp_path / "files").rglob("out.json"))
    table = cli(
        "dag", "submit", demo, "--server", fleet, "--client-id", "c", "--client-secret", "s", "--wait"
    )
    assert table.code == 0
    assert "13 completed · 1 skipped" in table.out


def test_submit_without_wait_prints_the_workflow_id(fleet: str, cli: Any) -> None:
    demo = ROOT / "examples" / "dag_demo.py"
    out = cli("dag", "submit", demo, "--server", fleet, "--client-id", "c", "--client-secret", "s")
    assert out.code == 0
    assert len(out.out.strip()) >= 32 and "submitted demo-etl" in out.err
