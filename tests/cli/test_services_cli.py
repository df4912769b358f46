"""``trioworks services run | say | ask`` and the demo's voice section.

Real espeak-ng, sox, pocketsphinx (a grammar: exact on synthetic speech), MiniLM and mosquitto;
real time, so every bound is seconds-scale. ``services run`` is tested as a subprocess of the
real ``trioworks`` console script: that is where the memory service's BM25 rebuild runs in a
spawned worker process, and where SIGINT/SIGTERM arrive.
"""

from __future__ import annotations

import http.server
import json
import signal
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest
import trio

from _services import MosquittoBroker, free_port
from trioworks.bus import Bus, Message, MqttTransport
from trioworks.cli import _demo
from trioworks.cli._streams import Streams

QUESTION = "where does my sister live"
PHRASES = ("--phrase", QUESTION, "--phrase", "when was the boiler serviced")
FACT = "My sister lives in Bergen."
OTHER = "The boiler was serviced in May."
TRIOWORKS = str(Path(sys.executable).with_name("trioworks"))  # the console script of this venv


@pytest.fixture(scope="module")
def question_wav(tmp_path_factory: pytest.TempPathFactory, espeak_ng: str, sox: str) -> Path:
    """The question spoken by espeak-ng's klatt voice, with silence around it, as a mic hears it."""
    folder = tmp_path_factory.mktemp("question")
    raw, wav = folder / "q.raw.wav", folder / "q.wav"
    subprocess.run(
        [espeak_ng, "-v", "en-us+klatt", "-s", "150", "-w", str(raw), QUESTION], check=True, timeout=30
    )
    subprocess.run([sox, "-D", str(raw), str(wav), "pad", "0.5", "1.0"], check=True, timeout=30)
    return wav


def _lines(out: str) -> dict[str, list[str]]:
    """``label: value`` lines of ``services ask`` (continuation lines join the label above)."""
    found: dict[str, list[str]] = {}
    label = ""
    for line in out.splitlines():
        head, sep, rest = line.partition(":")
        if sep and head and not head.startswith(" "):
            label = head
            found.setdefault(label, []).append(rest.strip())
        elif line.strip():
            found.setdefault(label, []).append(line.strip())
    return found


def _wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as reply:
        return reply.getnframes() / reply.getframerate()


# --- ask, in process ----------------------------------------------------------------------------


def test_ask_in_process_transcribes_finds_the_fact_and_speaks_the_answer(
    cli, question_wav: Path, tmp_path: Path
) -> None:
    data, audio = tmp_path / "data", tmp_path / "audio"
    common = ("--data", data, "--audio-dir", audio, *PHRASES, "--timeout", "30")
    first = cli("services", "ask", question_wav, "--remember", FACT, "--remember", OTHER, *common)
    assert first.code == 0, first.out + first.err  # within its own --timeout
    shown = _lines(first.out)
    assert shown["transcript"][0].startswith(QUESTION)
    assert shown["memory"][0].endswith(FACT)  # the best hit, score first
    assert shown["answer"] == [f"From memory: {FACT} (offline, offline-rules)"]
    [reply] = shown["reply"]
    assert Path(reply).parent == audio and _wav_seconds(Path(reply)) > 1.0
    assert "transcript -> first audio" in shown["timing"][0]

    # The facts persist in --data; the question just asked is in memory too (memory ingests every
    # stt/final), and it must not become its own answer.
    again = cli("services", "ask", question_wav, *common)
    assert again.code == 0, again.out + again.err
    assert _lines(again.out)["answer"] == [f"From memory: {FACT} (offline, offline-rules)"]
    assert QUESTION not in " ".join(_lines(again.out)["memory"])


def test_ask_reports_input_errors_on_one_line(cli, tmp_path: Path) -> None:
    missing = cli("services", "ask", tmp_path / "nope.wav", "--data", tmp_path)
    assert (missing.code, missing.err) == (2, f"error: no such file: {tmp_path / 'nope.wav'}\n")
    text = tmp_path / "text.wav"
    text.write_text("not audio")
    bad = cli("services", "ask", text, "--data", tmp_path / "d", "--audio-dir", tmp_path, *PHRASES)
    assert bad.code == 2 and bad.err.strip().splitlines()[-1].startswith(f"error: {text}:"), bad.err
    remote = cli("services", "ask", text, "--bus", "mqtt://127.0.0.1:1883", "--remember", FACT)
    assert remote.code == 2 and "--remember: the memory service runs behind the broker" in remote.err


# --- run: validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--only", "stt,foo"), "--only: unknown service 'foo'"),
        (("--only", "llm,rooter"), "--only: unknown service 'rooter' (did you mean 'router'?)"),
        (("--only", ","), "--only: expected a comma-separated list"),
        (("--only", "stt,llm"), "--only: stt needs --mic"),
        (("--only", "llm", "--mic"), "--mic: only the stt service listens to it"),
        (("--only", "llm", "--remember", "x"), "--remember: the memory service is not among --only"),
        (
            ("--bus", "http://broker:1883"),
            "--bus: expected 'memory' or mqtt://host:port, got 'http://broker:1883'",
        ),
        (("--llm-base-url", "http://localhost:11434/v1"), "--llm-model: required with --llm-base-url"),
        (("--llm-model", "llama3"), "--llm-model: only used with --llm-base-url"),
        (
            ("--llm-base-url", "ftp://x", "--llm-model", "m"),
            "--llm-base-url: expected an http:// or https:// URL, got 'ftp://x'",
        ),
        (
            (
                "--llm-base-url",
                "http://x/v1",
                "--llm-model",
                "m",
                "--llm-api-key-env",
                "TRIOWORKS_TEST_UNSET_KEY",
            ),
            "--llm-api-key-env: $TRIOWORKS_TEST_UNSET_KEY is not set",
        ),
        (("--phrase", "  "), "--phrase: expected a non-empty sentence"),
        (("--stt-url", "http://a:1"), "--stt-url: expected a Wyoming server URL tcp://HOST:PORT"),
        (("--tts-url", "tcp://a"), "--tts-url: expected a Wyoming server URL tcp://HOST:PORT"),
        (("--wake", "--wake-url", "a:1"), "--wake-url: expected a Wyoming server URL tcp://HOST:PORT"),
        (("--wake", "--wake-threshold", "3"), "--wake-threshold: must be in (0, 1)"),
        (("--wake-phrase", "hey you"), "--wake-url, --wake-phrase, --wake-threshold: only used with --wake"),
    ],
)
def test_run_refuses_bad_input_with_one_line(
    cli, argv: tuple[str, ...], message: str, tmp_path: Path
) -> None:
    out = cli("services", "run", "--data", tmp_path, *argv)
    assert out.code == 2, out.err
    [line] = out.err.splitlines()
    assert line.startswith(f"error: {message}"), line


def test_an_unreachable_broker_is_exit_1_naming_it(cli, tmp_path: Path) -> None:
    url = f"mqtt://127.0.0.1:{free_port()}"
    for argv in (("run", "--data", tmp_path), ("say", "hello")):
        out = cli("services", *argv, "--bus", url)
        assert out.code == 1
        assert out.err.splitlines()[-1].startswith(f"error: --bus: cannot reach the MQTT broker at {url}: ")
        assert "refused" in out.err and "Traceback" not in out.err


# --- run as a subprocess: mosquitto, SIGINT, SIGTERM ----------------------------------------------


@attrs.define
class Served:
    proc: subprocess.Popen[str]
    err: Path

    def wait_serving(self, limit: float = 60) -> str:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            text = self.err.read_text()
            if "Ctrl-C to stop" in text:
                return text
            assert self.proc.poll() is None, f"services run exited {self.proc.returncode}: {text}"
            time.sleep(0.05)
        raise AssertionError(f"services run not serving after {limit} s: {self.err.read_text()}")

    def wait_for(self, text: str, limit: float = 30) -> None:
        deadline = time.monotonic() + limit
        while text not in " ".join(self.err.read_text().split()):  # rich wraps log lines
            assert time.monotonic() < deadline, f"no {text!r} in {limit} s: {self.err.read_text()}"
            assert self.proc.poll() is None, f"services run exited {self.proc.returncode}"
            time.sleep(0.05)

    def stop(self, signum: int) -> int:
        self.proc.send_signal(signum)
        return self.proc.wait(30)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    started: list[Served] = []

    def start(*argv: object) -> Served:
        err = tmp_path / f"run{len(started)}.err"
        with err.open("w") as sink:
            proc = subprocess.Popen(
                [TRIOWORKS, "services", "run", *map(str, argv)],
                stdout=subprocess.DEVNULL,
                stderr=sink,
                text=True,
            )
        started.append(Served(proc, err))
        return started[-1]

    yield start
    for served in started:
        if served.proc.poll() is None:
            served.proc.kill()
            served.proc.wait()


async def _retained_health(url: str, names: set[str]) -> dict[str, dict[str, object]]:
    """The retained health messages, once those of ``names`` (at least) have arrived."""
    health: dict[str, dict[str, object]] = {}
    arrived = trio.Event()

    async def record(message: Message) -> None:
        health[message.topic.rsplit("/", 1)[1]] = attrs.asdict(message.data)
        if names <= health.keys():
            arrived.set()

    bus = Bus(MqttTransport(url, client_id="health-reader"), source="health-reader")
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(bus.run)
            await bus.subscribe("system/health/+", record)
            await arrived.wait()  # retained messages arrive right after the subscription
            nursery.cancel_scope.cancel()
    return health


def test_ask_and_say_against_services_run_on_mosquitto(
    cli, serve, fresh_mosquitto: MosquittoBroker, question_wav: Path, tmp_path: Path
) -> None:
    url = fresh_mosquitto.url
    audio = tmp_path / "audio"
    served = serve("--bus", url, "--data", tmp_path / "data", "--audio-dir", audio, "--remember", FACT)
    banner = served.wait_serving()
    assert f"serving memory, llm, tts, router, persona on {url}" in banner

    said = cli("services", "say", "hello from the command line", "--bus", url, "--timeout", "20")
    assert said.code == 0, said.err
    path = Path(said.out.strip())
    assert path.parent == audio and _wav_seconds(path) > 0.5

    # stt runs here (the command transcribes its WAV); router, llm, memory and tts behind the broker.
    asked = cli("services", "ask", question_wav, "--bus", url, *PHRASES, "--timeout", "30")
    assert asked.code == 0, asked.out + asked.err
    shown = _lines(asked.out)
    assert shown["transcript"][0].startswith(QUESTION)
    assert shown["answer"] == [f"From memory: {FACT} (offline, offline-rules)"]
    assert Path(shown["reply"][0]).parent == audio

    assert served.stop(signal.SIGINT) == 130
    assert "SIGINT: stopping the services" in served.err.read_text()
    health = trio.run(_retained_health, url, {"memory", "llm", "tts", "router", "ask-stt"})
    for name in ("memory", "llm", "tts", "router"):
        assert health[name]["ok"] is False and health[name]["event"] == "stopped", health
    # ask's own stt reports under a name of its own, never over a running stt service's health.
    assert "stt" not in health and health["ask-stt"]["event"] == "stopped"


def test_say_with_no_tts_on_the_broker_names_the_missing_health(cli, mosquitto_url: str) -> None:
    out = cli("services", "say", "anyone there", "--bus", mosquitto_url, "--timeout", "1")
    assert out.code == 1
    assert "no speaking_end from the tts within 1 s" in out.err


def test_run_in_process_stops_cleanly_on_sigterm(serve, tmp_path: Path) -> None:
    served = serve(
        "--only", "memory,llm", "--data", tmp_path / "data", "--remember", FACT, "--log-level", "DEBUG"
    )
    assert "serving memory, llm on the in-process bus" in served.wait_serving()
    # The console script's memory rebuilds its BM25 index in a spawned worker process (which
    # imports the script as its main module): at start-up over nothing, then over the fact.
    served.wait_for("bm25 index rebuilt over 1 documents")
    assert served.stop(signal.SIGTERM) == 0
    log = served.err.read_text()
    assert log.rstrip().endswith("services stopped") and "Traceback" not in log, log
    assert (tmp_path / "data" / "memory.db").stat().st_size > 0


# --- the demo section ---------------------------------------------------------------------------


def _quiet() -> Streams:
    from io import StringIO

    from rich.console import Console

    return Streams(out=Console(file=StringIO(), width=100), err=Console(file=StringIO(), width=100))


def test_the_demo_voice_section_holds_on_a_real_run(question_wav: Path) -> None:
    io = _quiet()
    highlights = _demo._voice_section(io, False)
    assert len(highlights) == 5
    *claims, first_audio = highlights
    assert all(h.ok for h in claims), [h.text for h in claims if not h.ok]
    # The last one judges a wall-clock figure (transcript -> first audio) against its target: the
    # machine's load decides that verdict, so here it must only have been measured. How it judges
    # is tested below with made-up runs; the figure itself is benchmarks/voice.py's.
    assert "no speaking_start seen" not in first_audio.text and " ms, within " in first_audio.text
    shown = io.out.file.getvalue()
    assert "transcript  where does my sister live" in shown and f"From memory: {FACT}" in shown


# --- ask with an OpenAI-compatible server ---------------------------------------------------------


class _FakeOpenAI(http.server.BaseHTTPRequestHandler):
    """POST /v1/chat/completions: a few SSE deltas, then [DONE]; records what it was sent."""

    seen: ClassVar[list[tuple[str, dict[str, Any]]]] = []
    protocol_version = "HTTP/1.0"  # the body ends when the connection closes

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.seen.append((self.headers.get("Authorization", ""), body))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for word in ("Bergen,", " says", " the", " server."):
            event = {"model": "fake-1", "choices": [{"index": 0, "delta": {"content": word}}]}
            self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")

    def log_message(self, *args: object) -> None:
        pass


def test_ask_with_an_openai_compatible_server(cli, question_wav: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TRIOWORKS_TEST_KEY", "sk-test")
    _FakeOpenAI.seen.clear()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeOpenAI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1"
        llm = ("--llm-base-url", url, "--llm-model", "fake-1", "--llm-api-key-env", "TRIOWORKS_TEST_KEY")
        out = cli(
            "services", "ask", question_wav, "--data", tmp_path / "data", "--audio-dir", tmp_path, "--remember", FACT,
            *PHRASES, *llm, "--timeout", "30",
        )  # fmt: skip
    finally:
        server.shutdown()
        thread.join()
    assert out.code == 0, out.out + out.err
    assert _lines(out.out)["answer"] == ["Bergen, says the server. (openai, fake-1)"]
    [(auth, body)] = _FakeOpenAI.seen
    assert auth == "Bearer sk-test" and body["model"] == "fake-1" and body["stream"] is True
    system, user = body["messages"][0]["content"], body["messages"][-1]["content"]
    assert FACT in system and user == QUESTION  # the RAG context and the question


def test_run_broker_starts_a_local_mosquitto_and_serves_on_it(cli, serve, tmp_path: Path) -> None:
    port = free_port()
    served = serve("--broker", str(port), "--only", "tts,router,persona", "--audio-dir", tmp_path / "audio")
    banner = served.wait_serving()
    assert f"serving tts, router, persona on mqtt://127.0.0.1:{port}" in banner
    said = cli("services", "say", "hello", "--bus", f"mqtt://127.0.0.1:{port}", "--timeout", "20")
    assert said.code == 0, said.err
    assert served.stop(signal.SIGINT) == 130
    # The broker went with the services.
    gone = cli("services", "say", "hi", "--bus", f"mqtt://127.0.0.1:{port}", "--timeout", "5")
    assert gone.code == 1 and "cannot reach the MQTT broker" in gone.err


def test_the_shipped_mosquitto_conf_listens_locally() -> None:
    from trioworks.services import mosquitto_conf

    assert "listener 1883 127.0.0.1" in mosquitto_conf() and "listener 1884 127.0.0.1" in mosquitto_conf(1884)


def _stored(data: Path) -> None:
    import numpy as np

    from trioworks.services.memory import MemoryStore, NewDocument

    data.mkdir(parents=True, exist_ok=True)
    store = MemoryStore(data / "memory.db", model="test", dim=2)
    docs = [
        NewDocument(text="my sister lives in Bergen", timestamp=1.0, source="note"),
        NewDocument(text="where does my sister live", timestamp=2.0, source="stt"),
        NewDocument(text="From memory: my sister lives in Bergen", timestamp=3.0, source="tts"),
    ]
    store.append(docs, np.zeros((3, 2), np.float32))
    store.close()


def test_history_and_memory_list_and_forget(cli, tmp_path: Path) -> None:
    data = tmp_path / "data"
    _stored(data)
    history = cli("services", "history", "--data", data, "--last", "2")
    assert history.code == 0, history.err
    lines = history.out.splitlines()
    assert [line.split("  ", 1)[1] for line in lines] == [
        "user: where does my sister live",
        "assistant: From memory: my sister lives in Bergen",
    ]
    listed = cli("services", "memory", "list", "--data", data, "--source", "tts")
    assert listed.out.splitlines()[0].split("\t")[:2] == ["3", "tts"]
    forgot = cli("services", "memory", "forget", "3", "--data", data)
    assert forgot.code == 0 and "forgot 1" in forgot.err
    after = cli("services", "memory", "list", "--data", data)
    assert [line.split("\t")[0] for line in after.out.splitlines()] == ["1", "2"]
    missing = cli("services", "memory", "forget", "3", "--data", data)
    assert missing.code == 2 and "no document [3]" in missing.err


def test_history_without_a_store_says_where_it_looked(cli, tmp_path: Path) -> None:
    got = cli("services", "history", "--data", tmp_path / "none")
    assert got.code != 0 and "no memory store there" in got.err
