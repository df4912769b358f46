"""Configuration from KRUXIAFLOW_* variables, and the ``trioworks worker`` command."""

from __future__ import annotations

import pytest

from trioworks.cli import main
from trioworks.worker import ConfigError, WorkerConfig


def test_env_defaults_match_the_original_sdk() -> None:
    config = WorkerConfig.from_env({"KRUXIAFLOW_API_URL": "http://x"})
    assert (config.worker, config.poll_max_activities, config.poll_interval) == ("py-std", 10, 0.1)
    assert (config.max_activities, config.activity_timeout, config.heartbeat_interval) == (16, 300, 30)
    assert config.shutdown_timeout == 30
    assert config.worker_id.startswith("worker_") and len(config.worker_id) == 19
    assert config.thread_slots == 16


def test_env_values_and_overrides() -> None:
    env = {
        "KRUXIAFLOW_API_URL": "http://x",
        "KRUXIAFLOW_CLIENT_ID": "id",
        "KRUXIAFLOW_CLIENT_SECRET": "s",
        "KRUXIAFLOW_WORKER_ID": "w1",
        "KRUXIAFLOW_WORKER_MAX_ACTIVITIES": "4",
        "KRUXIAFLOW_WORKER_SHUTDOWN_TIMEOUT": "2.5",
        "WORKER_TYPE": "py-data",
    }
    config = WorkerConfig.from_env(env, max_activities=8, worker_id=None)
    assert (config.worker_id, config.max_activities, config.shutdown_timeout, config.worker) == (
        "w1",
        8,
        2.5,
        "py-data",
    )


@pytest.mark.parametrize(
    ("env", "culprit"),
    [
        ({}, "KRUXIAFLOW_API_URL"),
        ({"KRUXIAFLOW_API_URL": "localhost:8080"}, "KRUXIAFLOW_API_URL"),
        (
            {"KRUXIAFLOW_API_URL": "http://u", "KRUXIAFLOW_WORKER_MAX_ACTIVITIES": "many"},
            "KRUXIAFLOW_WORKER_MAX_ACTIVITIES",
        ),
        (
            {"KRUXIAFLOW_API_URL": "http://u", "KRUXIAFLOW_WORKER_POLL_INTERVAL": "0"},
            "KRUXIAFLOW_WORKER_POLL_INTERVAL",
        ),
        ({"KRUXIAFLOW_API_URL": "http://u", "KRUXIAFLOW_WORKER": "Py Std"}, "KRUXIAFLOW_WORKER"),
        ({"KRUXIAFLOW_API_URL": "http://u", "KRUXIAFLOW_CLIENT_ID": "id"}, "client_secret"),
    ],
)
def test_bad_env_names_the_variable(env: dict[str, str], culprit: str) -> None:
    with pytest.raises(ConfigError) as info:
        WorkerConfig.from_env(env)
    assert info.value.source == culprit


@pytest.fixture
def app(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.path", ["", *__import__("sys").path])
    for name in list(__import__("sys").modules):
        if name.startswith("cli_app"):
            del __import__("sys").modules[name]
    (tmp_path / "cli_app.py").write_text(
        "from trioworks.worker import activity, ActivityResult\n"
        "@activity()\nasync def hello(params, ctx):\n    return ActivityResult.value('x', 1)\n"
        "@activity()\ndef blocking(params, ctx):\n    return {}\n"
    )
    (tmp_path / "cli_empty.py").write_text("x = 1\n")
    for var in (
        "KRUXIAFLOW_API_URL",
        "KRUXIAFLOW_CLIENT_ID",
        "KRUXIAFLOW_CLIENT_SECRET",
        "KRUXIAFLOW_WORKER",
    ):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def test_cli_check_loads_app_and_flags_override_env(app, monkeypatch, capsys) -> None:
    monkeypatch.setenv("KRUXIAFLOW_API_URL", "http://from-env")
    monkeypatch.setenv("KRUXIAFLOW_WORKER_MAX_ACTIVITIES", "3")
    code = main(["worker", "--app", "cli_app", "--worker", "py-ml", "--url", "http://flag", "--check"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "(py-ml) -> http://flag: 3 slots; activities: blocking (thread), hello (async)" in err


def test_cli_bad_input_exits_2_with_one_line(app, monkeypatch, capsys) -> None:
    assert main(["worker", "--app", "cli_app", "--check"]) == 2
    assert capsys.readouterr().err == "error: KRUXIAFLOW_API_URL: not set (give the server URL, or --url)\n"
    assert main(["worker", "--app", "cli_app", "--url", "http://u", "--max-activities", "0", "--check"]) == 2
    assert capsys.readouterr().err == "error: --max-activities: expected a whole number >= 1, got 0\n"
    assert main(["worker", "--app", "cli_empty", "--url", "http://u", "--check"]) == 2
    assert "cli_empty: no activities found" in capsys.readouterr().err
    assert main(["worker", "--app", "cli_app", "--url", "localhost:8080", "--check"]) == 2
    assert (
        capsys.readouterr().err == "error: --url: expected an http:// or https:// URL, got 'localhost:8080'\n"
    )
