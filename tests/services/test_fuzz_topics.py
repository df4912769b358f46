"""Hypothesis over every bus topic: no payload stops a service, and a good request is still answered.

memory, llm (offline backend), router and tts (a fake synthesizer, no audio) run on one
in-process broker in a thread of their own (:class:`TrioThread`) for the whole module; the
examples inject raw payloads straight into the broker, as any MQTT client can: random JSON,
envelopes with wrong types in every field, invalid UTF-8, huge numbers, binary. After each
batch, no service may have ended or published a ``crashed`` health, and a valid
``memory/query`` and ``llm/request`` must still get their answers.

(stt is left out: its handler only takes ``wake/mic`` commands, and it needs a microphone or a
WAV source; the topic is still fuzzed, with nobody listening.)

Deeply nested JSON (issue 10, case 2: a ``RecursionError`` escaped the envelope decoder) is drawn
too, and pinned by the test at the end.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from voice_helpers import Stack, start_stack

from _fake_tts import NullSink, make_synthesizer
from _trio_thread import TrioThread
from trioworks.bus import TOPICS, Bus, InProcessBroker, InProcessTransport, RawMessage
from trioworks.bus._codec import new_id
from trioworks.bus._contracts import LLMRequest, MemoryQuery
from trioworks.services.tts import TtsConfig, TtsService

EXPLORE = int(os.environ.get("TRIOWORKS_FUZZ_EXPLORE", "0"))  # as in tests/server/test_fuzz_routes.py
FUZZ = settings(
    max_examples=EXPLORE or 40,
    derandomize=not EXPLORE,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)

# Every topic of the contract table (a wildcard level filled in) and a few outside it.
TOPIC_NAMES = sorted({spec.pattern.replace("+", "x") for spec in TOPICS} | {"tts/x", "llm", "memory/query/x"})


class Running:
    def __init__(self, stack: Stack, broker: InProcessBroker) -> None:
        self.stack = stack
        self.broker = broker


async def _serve(tmp_path: Path, *, task_status: trio.TaskStatus[Running]) -> None:
    broker = InProcessBroker()

    def make_bus(source: str) -> Bus:
        return Bus(InProcessTransport(broker, client_id=source), source=source)

    tts = TtsService(
        make_bus("tts"),
        TtsConfig(player="wav"),
        synthesizer=make_synthesizer(rate=1000, bytes_per_char=2, delay=0),
        sink=NullSink(),
    )
    async with trio.open_nursery() as nursery:
        stack = await start_stack(nursery, make_bus, tmp_path, tts=tts)
        task_status.started(Running(stack, broker))


@pytest.fixture(scope="module")
def voice(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrioThread]:
    root = tmp_path_factory.mktemp("fuzz-voice")
    with TrioThread(lambda task_status: _serve(root, task_status=task_status)) as running:
        yield running


def healthy(voice: TrioThread) -> None:
    """Every service still runs, none said ``crashed``, and both request routes still answer."""
    assert voice.alive and voice.error is None, f"a service ended: {voice.error!r}"
    running: Running = voice.value
    crashed = [
        m
        for m in running.stack.wire.messages
        if m.topic.startswith("system/health/") and m.data.event == "crashed"
    ]
    assert not crashed, [(m.topic, m.data) for m in crashed]

    async def ask() -> None:
        client = running.stack.client
        with trio.fail_after(60):  # a hang guard only
            results = await client.request(
                "memory/query", MemoryQuery(text="hello"), reply_topic="memory/results", timeout=60
            )
            assert results.data.error is None, results.data
            request = LLMRequest(id=new_id(), text="still there?", stream=False)
            reply = await client.request(
                "llm/request", request, reply_topic="llm/response", timeout=60, id=request.id
            )
            assert reply.data.error is None and reply.data.reply, reply.data

    call(voice, "answering a memory/query and an llm/request", ask)


def call(voice: TrioThread, what: str, fn: Any, *args: Any) -> None:
    """``fn(*args)`` on the stack's loop; a stack that ended meanwhile is the failure reported."""
    try:
        voice.call(fn, *args)
    except BaseException:
        voice.join(30)  # a call cancelled by the loop's shutdown: let the error that ended it land
        assert voice.alive, f"a service ended ({what}): {voice.error!r}"
        raise


def inject(voice: TrioThread, message: RawMessage) -> None:
    running: Running = voice.value
    call(voice, f"on {message.topic} {message.payload[:80]!r}...", running.broker.publish, message)


def envelope(data: Any) -> dict[str, Any]:
    return {"id": new_id(), "type": "x", "ts": 1.0, "source": "fuzz", "data": data}


texts = st.text(max_size=20) | st.sampled_from(["", "\x00", "hello", "llm/request"])
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63, max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)
# Fields of the contracts the services read, each with any JSON value.
fields = st.sampled_from(
    ["id", "text", "stream", "use_rag", "rag_k", "system", "params", "conversation_history", "top_k",
     "max_tokens", "retrieval_strategy", "context_window", "action", "utt_id", "voice", "event", "tools",
     "result", "call_id", "reply", "delta", "done", "is_final", "confidence", "name"]
)  # fmt: skip
data_objects = st.dictionaries(fields | texts, json_values, max_size=6)
envelopes = (
    st.builds(envelope, data_objects | json_values)
    | st.dictionaries(st.sampled_from(["id", "type", "ts", "source", "data"]), json_values, max_size=5)
).map(lambda v: json.dumps(v).encode())


def _nested(depth: int) -> bytes:
    return b'{"id":"a","type":"x","ts":1,"source":"f","data":' + b"[" * depth + b"]" * depth + b"}"


raw = (
    st.binary(max_size=200)
    | st.sampled_from([b"", b"{", b"\xff\xfe\xfd", b"null", b"[]", b"1e400", b'{"data": NaN}', b"\x00" * 10])
    | json_values.map(lambda v: json.dumps(v).encode())
)
payloads = envelopes | raw | st.just(_nested(200))
payloads = payloads | st.sampled_from([_nested(50_000), b"[" * 90_000 + b"]" * 90_000])


@st.composite
def batches(draw: st.DrawFn) -> list[RawMessage]:
    messages = []
    for _ in range(draw(st.integers(1, 8))):
        topic = draw(st.sampled_from(TOPIC_NAMES))
        messages.append(RawMessage(topic, draw(payloads), qos=draw(st.sampled_from([0, 1]))))
    return messages


def test_no_payload_stops_a_service(voice: TrioThread) -> None:
    @FUZZ
    @given(batch=batches())
    def run(batch: list[RawMessage]) -> None:
        for message in batch:
            inject(voice, message)
        healthy(voice)

    run()


@pytest.fixture
def own_voice(tmp_path: Path) -> Iterator[TrioThread]:
    """A stack of the test's own: the input may stop it for good."""
    with TrioThread(lambda task_status: _serve(tmp_path, task_status=task_status)) as running:
        yield running


def test_hostile_deeply_nested_requests_stop_no_service(own_voice: TrioThread) -> None:
    for _ in range(6):  # the five, and one more than the handler's restart intensity allows
        inject(own_voice, RawMessage("llm/request", _nested(50_000), qos=1))
    healthy(own_voice)
