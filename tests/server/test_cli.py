"""``trioworks server`` as a real subprocess, driven by ``trioworks workflow ...`` in-process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from trioworks.cli import main

DEFINITION = {
    "name": "greet",
    "activities": [
        {"key": "hello", "worker": "std", "activity_name": "hello", "parameters": {"who": "{{INPUT.who}}"}},
        {
            "key": "shout",
            "worker": "std",
            "activity_name": "shout",
            "depends_on": ["hello"],
            "parameters": {"text": "{{hello.text}}"},
        },
    ],
}


@pytest.fixture
def server_url(tmp_path: Path) -> Iterator[str]:
    command = [
        sys.executable,
        "-m",
        "trioworks.cli",
        "server",
        "--port",
        "0",
        "--client",
        "cli:pw",
        "--db",
        f"sqlite:///{tmp_path / 'cli.db'}",
    ]
    proc = subprocess.Popen(
        command, stderr=subprocess.PIPE, text=True, env={**os.environ, "TRIOWORKS_CLIENTS": ""}
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "listening on" in line:
                # Keep draining stderr so that the server never blocks on a full pipe.
                threading.Thread(target=proc.stderr.read, daemon=True).start()
                yield line.split("listening on ")[1].split()[0]
                break
        else:
            pytest.fail(f"server exited with {proc.wait()}")
    finally:
        proc.terminate()  # SIGTERM: a graceful shutdown, exit code 0
        assert proc.wait(timeout=10) == 0


@pytest.fixture
def cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], server_url: str
) -> Callable[..., tuple[int, str, str]]:
    monkeypatch.setenv("KRUXIAFLOW_API_URL", server_url)
    monkeypatch.setenv("KRUXIAFLOW_CLIENT_ID", "cli")
    monkeypatch.setenv("KRUXIAFLOW_CLIENT_SECRET", "pw")

    def run(*argv: object) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _worker(url: str, stop: threading.Event) -> None:
    """A minimal worker: hello -> {"text": "hi <who>"}, shout -> upper case."""
    with httpx.Client(base_url=url, timeout=10) as client:
        form = {"grant_type": "client_credentials", "client_id": "cli", "client_secret": "pw"}
        token = client.post("/api/v1/oauth/token", data=form).json()["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"
        while not stop.wait(0.05):
            polled = client.post(
                "/api/v1/workers/poll", json={"worker": "std", "worker_id": "t", "max_activities": 5}
            )
            for act in polled.json()["activities"]:
                params = act["parameters"]
                output = (
                    {"text": f"hi {params['who']}"}
                    if act["activity_name"] == "hello"
                    else {"loud": params["text"].upper()}
                )
                client.post(
                    f"/api/v1/activities/{act['activity_id']}/complete",
                    json={"worker_id": "t", "output": output},
                )


def test_deploy_run_wait_status(
    cli: Callable[..., tuple[int, str, str]], server_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "greet.yaml"
    path.write_text(yaml.safe_dump(DEFINITION), encoding="utf-8")
    code, _, err = cli("workflow", "deploy", path)
    assert code == 0 and re.fullmatch(r"greet version 1 \(\d{8}\.\d{6}\.\d{6}\) deployed", err.strip()), err
    assert "unchanged" in cli("workflow", "deploy", path)[2]

    stop = threading.Event()
    worker = threading.Thread(target=_worker, args=(server_url, stop))
    worker.start()
    try:
        code, out, err = cli(
            "workflow", "run", "greet", "--input", '{"who": "ada"}', "--wait", "--poll-interval", "0.05"
        )
    finally:
        stop.set()
        worker.join()
    assert code == 0, err
    assert '"loud": "HI ADA"' in out and "shout: completed" in err
    workflow_id = err.split("workflow ")[1].split()[0]
    code, out, _ = cli("workflow", "status", workflow_id)
    assert code == 0 and "completed" in out.splitlines()[0] and "shout" in out


def test_cli_bad_input(cli: Callable[..., tuple[int, str, str]], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nactivities:\n  - key: a\n    worker: Std\n", encoding="utf-8")
    code, _, err = cli("workflow", "deploy", bad)
    assert code == 2 and "activities[0].worker" in err and "activities[0].activity_name" in err
    bad.write_text(
        "name: x\nactivities: [{key: a, worker: std, activity_name: a, parameters: {d: 2024-01-01}}]\n"
    )
    code, _, err = cli("workflow", "deploy", bad)
    assert code == 2 and "quote dates" in err
    bad.write_text("name: [", encoding="utf-8")
    code, _, err = cli("workflow", "deploy", bad)
    assert code == 2 and "invalid YAML" in err
    code, _, err = cli("workflow", "run", "nope", "--input", "[1]")
    assert code == 2 and "--input: expected a JSON object" in err
    code, _, err = cli("workflow", "run", "nope")
    assert code == 2 and "404 NOT_FOUND" in err and "'nope'" in err
    code, _, err = cli("workflow", "status", "nope")
    assert code == 2 and "404" in err


def test_server_command_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["server", "--db", "mysql://u:pw@db.example/x"]) == 2
    assert "--db: unsupported database URL" in capsys.readouterr().err
    (tmp_path / "file.txt").write_text("not a directory", encoding="utf-8")
    assert main(["server", "--db", str(tmp_path / "file.txt" / "x.db"), "--client", "a:b"]) == 2
    assert "--db: cannot open SQLite database" in capsys.readouterr().err
    assert main(["server", "--client", "nosecret"]) == 2
    assert "expected ID:SECRET" in capsys.readouterr().err
    assert main(["server", "--port", "99999"]) == 2


def test_workflow_cancel(cli: Callable[..., tuple[int, str, str]], tmp_path: Path) -> None:
    path = tmp_path / "greet.yaml"
    path.write_text(yaml.safe_dump(DEFINITION), encoding="utf-8")
    assert cli("workflow", "deploy", path)[0] == 0
    code, _, err = cli("workflow", "run", "greet", "--input", '{"who": "ada"}')  # no worker: stays pending
    assert code == 0, err
    workflow_id = err.split("workflow ")[1].split()[0]
    code, out, err = cli("workflow", "cancel", workflow_id)
    assert (code, out.split()) == (0, [workflow_id, "greet", "cancelled"]), err
    assert cli("workflow", "cancel", workflow_id)[0] == 0  # idempotent
    code, out, _ = cli("workflow", "status", workflow_id)
    assert "cancelled" in out.splitlines()[0] and "WORKFLOW_CANCELLED" in out
    code, _, err = cli("workflow", "cancel", "nope")
    assert code == 2 and "404" in err


def _started(err: str) -> str:
    return err.split("workflow ")[1].split()[0]


def test_list_output_logs_and_definitions(
    cli: Callable[..., tuple[int, str, str]], server_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "greet.yaml"
    path.write_text(yaml.safe_dump(DEFINITION), encoding="utf-8")
    assert cli("workflow", "deploy", path)[0] == 0
    stop = threading.Event()
    worker = threading.Thread(target=_worker, args=(server_url, stop))
    worker.start()
    try:
        code, _, err = cli(
            "workflow", "run", "greet", "--input", '{"who": "ada"}', "--wait", "--poll-interval", "0.05"
        )
    finally:
        stop.set()
        worker.join()
    assert code == 0, err
    workflow_id = _started(err)
    code, out, err = cli("workflow", "list", "--status", "completed")
    assert code == 0 and out.split()[:3] == [workflow_id, "completed", "greet"] and "1 of 1" in err
    code, out, _ = cli("workflow", "output", workflow_id)
    assert code == 0 and '"loud": "HI ADA"' in out
    code, out, _ = cli("workflow", "output", workflow_id, "--activity", "shout")
    assert code == 0 and '"value": "HI ADA"' in out and '"completed_at"' in out
    code, out, err = cli("workflow", "logs", workflow_id)
    lines = [line.split("  ", 1)[1] for line in out.splitlines()]
    assert code == 0 and lines == [
        "hello started (hello on std)",
        "hello completed",
        "shout started (shout on std)",
        "shout completed",
    ]
    assert f"workflow {workflow_id} completed" in err
    code, out, _ = cli("definitions", "list")
    assert code == 0 and out.split()[:2] == ["greet", "v1"]
    code, out, _ = cli("definitions", "show", "greet")
    assert code == 0 and "activity_name: shout" in out and out.splitlines()[-1].startswith("# versions: 1 (")
    code, _, err = cli("definitions", "show", "nope")
    assert code == 2 and "404" in err


def test_run_wait_says_nobody_polls_then_times_out(
    cli: Callable[..., tuple[int, str, str]], tmp_path: Path
) -> None:
    path = tmp_path / "greet.yaml"
    path.write_text(yaml.safe_dump(DEFINITION), encoding="utf-8")
    assert cli("workflow", "deploy", path)[0] == 0
    code, _, err = cli(
        "workflow", "run", "greet", "--input", '{"who": "ada"}', "--wait", "--timeout", "0.5",
        "--poll-interval", "0.05",
    )  # fmt: skip
    assert code == 1
    assert err.count("waiting: no worker has polled queue 'std' since the server started") == 1  # once
    assert "still created after 0.5 s (it keeps running)" in err
    code, out, _ = cli("workflow", "status", _started(err))
    assert "waiting: no worker has polled queue 'std' since the server started" in out
    code, _, err = cli("workflow", "run", "greet")  # {{INPUT.who}} without `who`: refused at start
    assert code == 2 and "input.who" in err and "hello" in err


def test_signal_command(cli: Callable[..., tuple[int, str, str]], server_url: str, tmp_path: Path) -> None:
    waits = {
        "name": "gate",
        "activities": [
            {"key": "w", "worker": "std", "activity_name": "w", "settings": {"wait_for_signal": True}}
        ],
    }
    path = tmp_path / "gate.yaml"
    path.write_text(yaml.safe_dump(waits), encoding="utf-8")
    assert cli("workflow", "deploy", path)[0] == 0
    workflow_id = cli("workflow", "run", "gate")[1].strip()
    code, _, err = cli("workflow", "signal", workflow_id, "w", "--event", "go", "--data", '{"ok": 1}')
    assert code == 0, err
    with httpx.Client(base_url=server_url) as client:
        form = {"grant_type": "client_credentials", "client_id": "cli", "client_secret": "pw"}
        client.headers["Authorization"] = (
            "Bearer " + client.post("/api/v1/oauth/token", data=form).json()["access_token"]
        )
        polled = client.post("/api/v1/workers/poll", json={"worker": "std", "worker_id": "t"}).json()
    assert [a["signal_data"] for a in polled["activities"]] == [{"ok": 1}]
    code, _, err = cli("workflow", "signal", workflow_id, "w", "--event", "go", "--data", "[1]")
    assert code == 2 and "--data: expected a JSON object" in err


def test_worker_metrics_port(server_url: str) -> None:
    env = {
        **os.environ,
        "KRUXIAFLOW_API_URL": server_url,
        "KRUXIAFLOW_CLIENT_ID": "cli",
        "KRUXIAFLOW_CLIENT_SECRET": "pw",
    }
    command = [sys.executable, "-m", "trioworks.cli", "worker", "--std", "--metrics-port", "0"]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stderr is not None
        url = next(line.split("metrics at ")[1].strip() for line in proc.stderr if "metrics at " in line)
        threading.Thread(target=proc.stderr.read, daemon=True).start()
        reply = httpx.get(url)
        assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/plain")
        assert re.search(r'^trioworks_worker_\w+\{queue="std"\} ', reply.text, re.M), reply.text
        assert 'queue="std"' in reply.text and 'queue="py-std"' in reply.text
        assert httpx.get(url.replace("/metrics", "/other")).status_code == 404
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0


def test_schedule_commands(cli: Callable[..., tuple[int, str, str]], tmp_path: Path) -> None:
    path = tmp_path / "greet.yaml"
    path.write_text(yaml.safe_dump(DEFINITION), encoding="utf-8")
    assert cli("workflow", "deploy", path)[0] == 0
    code, out, err = cli(
        "schedule", "create", "nightly", "--definition", "greet", "--cron", "0 2 * * *",
        "--timezone", "Europe/Paris", "--input", '{"who": "ada"}',
    )  # fmt: skip
    assert code == 0 and "next run at" in err, err
    schedule_id = out.strip()
    code, out, _ = cli("schedule", "list")
    assert code == 0 and schedule_id in out and "nightly" in out and "Europe/Paris" in out
    code, out, _ = cli("schedule", "show", "nightly")
    assert code == 0 and yaml.safe_load(out)["input"] == {"who": "ada"}
    assert "paused" in cli("schedule", "pause", "nightly")[2]
    assert "(paused)" in cli("schedule", "list")[1]
    assert "resumed" in cli("schedule", "resume", schedule_id)[2]
    code, _, err = cli("schedule", "create", "bad", "--definition", "greet", "--cron", "61 * * * *")
    assert code != 0 and "cron" in err and "61 * * * *" in err
    assert "deleted" in cli("schedule", "delete", "nightly")[2]
    code, _, err = cli("schedule", "show", "nightly")
    assert code != 0 and "no schedule" in err
