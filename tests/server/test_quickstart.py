"""docs/server.md's quick start, run as written: its server and ``worker --std`` as subprocesses, its
``trioworks workflow ...`` / ``definitions ...`` commands through the CLI's ``main``, in order.

Only what a test cannot take from the page is changed: the server listens on a free port (the page's
8080 may be taken) with its database in the test's directory, and ``6f1c...`` is the real workflow id.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from trioworks.cli import main

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
DOC = ROOT / "docs" / "server.md"


def _commands() -> list[list[str]]:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## Quick start") :]
    block = section[section.index("```console") : section.index("```", section.index("```console") + 3)]
    return [shlex.split(line[2:].split("  #")[0]) for line in block.splitlines() if line.startswith("$ ")]


def _start(argv: list[str], env: dict[str, str], ready: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "trioworks.cli", *argv], stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT
    )
    assert proc.stderr is not None
    for line in proc.stderr:
        if ready in line:
            threading.Thread(target=proc.stderr.read, daemon=True).start()  # never block on a full pipe
            return proc, line
    pytest.fail(f"{argv[0]} exited with {proc.wait()}")


@pytest.fixture
def quickstart(tmp_path: Path) -> Iterator[tuple[list[list[str]], str]]:
    commands = _commands()
    server = next(c for c in commands if c[:2] == ["trioworks", "server"])
    worker = next(c for c in commands if c[:2] == ["trioworks", "worker"])
    exports = dict(
        pair.split("=", 1) for c in commands if c[0] == "export" for pair in c[1:]
    )  # KRUXIAFLOW_API_URL, _CLIENT_ID, _CLIENT_SECRET
    env = {**os.environ, "TRIOWORKS_CLIENTS": "", "PYTHONPATH": os.pathsep.join(sys.path)}
    db = f"sqlite:///{tmp_path / 'quick.db'}"
    proc, line = _start([*server[1:], "--port", "0", "--db", db], env, "listening on")
    try:
        url = line.split("listening on ")[1].split()[0]
        exports["KRUXIAFLOW_API_URL"] = url
        env = {**env, **exports}
        worker_proc, _ = _start(worker[1:], env, "worker ")
        try:
            saved = {k: os.environ.get(k) for k in exports}
            os.environ.update(exports)
            try:
                yield commands, url
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
        finally:
            worker_proc.terminate()
            assert worker_proc.wait(timeout=30) == 0
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_quickstart_runs_as_written(
    quickstart: tuple[list[list[str]], str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    commands, url = quickstart
    monkeypatch.chdir(ROOT)  # the page's paths are relative to the repository
    workflow_id = None
    ran = 0
    for command in commands:
        if command[0] == "curl":
            target = next(a for a in command if "localhost:8080" in a).replace(
                "localhost:8080", url.split("//")[1]
            )
            reply = httpx.get(f"http://{target.split('://')[-1]}")
            assert reply.status_code == 200 and "trioworks_server_requests_total" in reply.text
            ran += 1
            continue
        if command[:2] != ["trioworks", "workflow"] and command[:2] != ["trioworks", "definitions"]:
            continue  # the server, the worker, export: the fixture did them
        argv = [workflow_id if a == "6f1c..." else a for a in command[1:]]
        capsys.readouterr()
        code = main(argv)
        out, err = capsys.readouterr()
        assert code == 0, (argv, out, err)
        ran += 1
        if argv[:2] == ["workflow", "run"]:
            workflow_id = re.search(r"workflow (\S+) started", err).group(1)  # type: ignore[union-attr]
            assert '"text": "hello ada"' in out and "shout: completed" in err
            assert f'"run": "{workflow_id}"' in out
        elif argv[:2] == ["workflow", "output"]:
            assert '"name": "echo"' in out
        elif argv[:2] == ["workflow", "logs"]:
            assert "shout completed" in out
        elif argv[:2] == ["definitions", "show"]:
            assert "activity_name: echo" in out and "# versions: 1 (" in out
        elif argv[:2] == ["workflow", "deploy"]:
            assert "greet version 1 (" in err and "deployed" in err
    assert ran == 7 and workflow_id is not None
