"""Every py-tars exchange a trioworks service takes part in, at the codec: py-tars' bytes through
trioworks' decoder, and trioworks' bytes (as its services build them) through py-tars' checks.

Fast (no broker): the service tests in this directory run the same exchanges on mosquitto. Each
failing exchange is pinned to the item of issue 14 that fixes it (see STATUS.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytars_contracts as P
import pytest

from trioworks import bus as b
from trioworks.bus import EnvelopeError, decode, encode


def _item(n: int, why: str) -> pytest.MarkDecorator:
    # raises=AssertionError: a test that breaks for another reason (a typo, an import) is not
    # counted as the known difference.
    return pytest.mark.xfail(strict=True, raises=AssertionError, reason=f"issue 14 item {n}: {why}")


def _tw(topic: str, data: Any, id: str = "corr-1") -> bytes:
    """What a trioworks service publishes on ``topic`` (the bus's own encoder)."""
    spec = b.spec_for(topic)
    assert spec is not None, topic
    envelope = b.Envelope(id=id, type=spec.type, ts=1_700_000_000.25, source="tw", data=data)
    return encode(topic, envelope)


# --- py-tars sends, trioworks receives -----------------------------------------------------------

INBOUND: list[Any] = [
    pytest.param("stt/final", lambda: P.stt_final("turn on the lights"), id="stt-worker>stt/final>router"),
    pytest.param(
        "llm/request",
        lambda: P.router_llm_request("hi", req_id="u1", correlate="c1"),
        id="router>llm/request(no history)>llm",
    ),
    pytest.param(
        "llm/request",
        lambda: P.router_llm_request(
            "hi", req_id="u1", correlate="c1", history=[("user", "a"), ("assistant", "b")]
        ),
        id="router>llm/request(history)>llm",
    ),
    pytest.param(
        "tts/say", lambda: P.router_tts_say("Yes?", utt_id="w1", wake_ack=True), id="router>tts/say>tts"
    ),
    pytest.param(
        "wake/event",
        lambda: P.wake_event("wake"),
        id="wake-activation>wake/event>router",
    ),
    pytest.param(
        "wake/mic",
        lambda: P.wake_mic("unmute"),
        id="wake-activation>wake/mic>stt",
    ),
    pytest.param(
        "tts/control",
        lambda: P.wake_tts_control("pause", utt_id="u1"),
        id="wake-activation>tts/control>tts",
    ),
    pytest.param(
        "llm/stream",
        lambda: P.llm_stream("u1", correlate="c1", deltas=["Hello."])[0],
        id="llm-worker>llm/stream(delta)>router",
    ),
    pytest.param(
        "llm/stream",
        lambda: P.llm_stream("u1", correlate="c1", deltas=["Hello."])[-1],
        id="llm-worker>llm/stream(done)>router",
    ),
    pytest.param(
        "llm/response",
        lambda: P.llm_response("u1", "Hi.", correlate="c1"),
        id="llm-worker>llm/response>router",
    ),
    pytest.param(
        "memory/query",
        lambda: P.llm_memory_query("passport", correlate="c1"),
        id="llm-worker>memory/query>memory",
    ),
    pytest.param(
        "memory/results",
        lambda: P.memory_results("passport", ["it expires in march"], correlate="c1"),
        id="memory-worker>memory/results>llm",
    ),
    pytest.param(
        "tts/status",
        lambda: P.tts_status("speaking_start", text="Hi.", utt_id="u1"),
        id="tts-worker>tts/status>router,stt",
    ),
    pytest.param(
        "system/health/tars-tts",
        lambda: P.health_ping("tars-tts"),
        id="tts-worker>system/health/tars-tts>any",
    ),
    pytest.param(
        "character/get",
        P.llm_character_get,
        id="llm-worker>character/get>persona",
    ),
    pytest.param(
        "stt/final",
        lambda: P.bare(P.FinalTranscript(text="hello")),
        id="script>bare stt/final>router",
    ),
    pytest.param(
        "tts/say",
        lambda: P.bare({"text": "hello"}),
        id="script>bare tts/say>tts",
    ),
]


@pytest.mark.parametrize(("topic", "make"), INBOUND)
def test_trioworks_decodes_what_pytars_sends(topic: str, make: Callable[[], bytes]) -> None:
    try:
        decode(topic, make())
    except EnvelopeError as exc:
        raise AssertionError(str(exc)) from None


# --- trioworks sends, py-tars receives -----------------------------------------------------------

_HIT = b.MemoryResult(
    document={"text": "it expires in march"}, score=0.9, timestamp="1700000000.5", token_count=5
)

OUTBOUND: list[Any] = [
    pytest.param(
        lambda: P.router_dispatch(_tw("stt/final", b.FinalTranscript(text="hi", ts=1.0)), P.FinalTranscript),
        id="stt>stt/final>router",
    ),
    pytest.param(
        lambda: P.ui_check(_tw("stt/partial", b.PartialTranscript(text="hi", ts=1.0)), P.PartialTranscript),
        id="stt>stt/partial>ui",
    ),
    pytest.param(
        lambda: P.router_dispatch(_tw("stt/final", b.FinalTranscript(text="hi")), P.FinalTranscript),
        id="stt>stt/final(ts unset)>router",
    ),
    pytest.param(
        lambda: P.decode_event(
            _tw(
                "llm/request",
                b.LLMRequest(
                    id="u1",
                    text="hi",
                    conversation_history=(b.ConversationMessage(role="user", content="a"),),
                ),
            ),
            P.LLMRequest,
        ),
        id="router>llm/request>llm-worker",
    ),
    pytest.param(
        lambda: P.decode_event(_tw("tts/say", b.TtsSay(text="Hi.", utt_id="u1")), P.TtsSay),
        id="router,llm>tts/say>tts-worker",
    ),
    pytest.param(
        lambda: P.tts_worker_control(
            _tw("tts/control", b.TtsControl(action="stop", reason="barge_in", utt_id="u1"))
        ),
        id="router>tts/control>tts-worker",
    ),
    pytest.param(
        lambda: P.router_dispatch(
            _tw("llm/stream", b.LLMStreamDelta(id="u1", seq=0, delta="Hi")), P.LLMStreamDelta
        ),
        id="llm>llm/stream>router",
    ),
    pytest.param(
        lambda: P.router_dispatch(_tw("llm/response", b.LLMResponse(id="u1", reply="Hi.")), P.LLMResponse),
        id="llm>llm/response>router",
    ),
    pytest.param(
        lambda: P.ui_check(_tw("llm/response", b.LLMResponse(id="u1", reply="Hi.")), P.LLMResponse),
        id="llm>llm/response>ui",
    ),
    pytest.param(
        lambda: P.router_dispatch(_tw("llm/cancel", b.LLMCancel(id="u1")), P.LLMCancel),
        id="router>llm/cancel>router",
    ),
    pytest.param(
        lambda: P.memory_worker_query(_tw("memory/query", b.MemoryQuery(text="passport"))),
        id="llm>memory/query>memory-worker(strict)",
    ),
    pytest.param(
        lambda: P.memory_worker_query_degraded(_tw("memory/query", b.MemoryQuery(text="passport"))),
        id="llm>memory/query>memory-worker(fallback)",
    ),
    pytest.param(
        lambda: P.llm_worker_memory_results(
            _tw("memory/results", b.MemoryResults(query="q", k=1, results=(_HIT,)))
        ),
        id="memory>memory/results>llm-worker",
    ),
    pytest.param(
        lambda: P.decode_event(
            _tw("memory/results", b.MemoryResults(query="q", k=1, results=(_HIT,))),
            P.MemoryResults,
            "contract",
        ),
        id="memory>memory/results>MemoryResults contract",
    ),
    pytest.param(
        lambda: P.router_dispatch(
            _tw("tts/status", b.TtsStatus(event="speaking_start", utt_id="u1")), P.TtsStatus
        ),
        id="tts>tts/status>router,stt-worker",
    ),
    pytest.param(
        lambda: P.ui_check(_tw("tts/status", b.TtsStatus(event="speaking_end", utt_id="u1")), P.TtsStatus),
        id="tts>tts/status(file output: the path goes on tts/output)>ui",
    ),
    pytest.param(
        lambda: P.health_check(_tw("system/health/tts", b.HealthStatus(ok=True, event="ready"))),
        id="any>system/health>router",
    ),
    pytest.param(
        lambda: P.decode_event(
            _tw("wake/mic", b.MicCommand(action="unmute", reason="wake")), P.WakeMicCommand, "stt-worker"
        ),
        id="wake>wake/mic>stt-worker",
    ),
    pytest.param(
        lambda: P.router_dispatch(_tw("wake/event", b.WakeEvent(type="wake")), P.WakeEvent),
        id="wake>wake/event>router",
    ),
]


@pytest.mark.parametrize("check", OUTBOUND)
def test_pytars_accepts_what_trioworks_sends(check: Callable[[], object]) -> None:
    try:
        check()
    except P.Refused as exc:
        raise AssertionError(str(exc)) from None


# --- the validators themselves: py-tars accepts its own messages, and refuses what it refuses -----


@pytest.mark.parametrize(
    ("payload", "check"),
    [
        (lambda: P.stt_final("hi"), lambda p: P.router_dispatch(p, P.FinalTranscript)),
        (
            lambda: P.router_llm_request("hi", req_id="u", correlate="c", history=[("user", "a")]),
            lambda p: P.decode_event(p, P.LLMRequest),
        ),
        (lambda: P.router_tts_say("hi", utt_id="u"), lambda p: P.decode_event(p, P.TtsSay)),
        (
            lambda: P.llm_stream("u", correlate="c", deltas=["a"])[-1],
            lambda p: P.router_dispatch(p, P.LLMStreamDelta),
        ),
        (lambda: P.llm_response("u", "a", correlate="c"), lambda p: P.ui_check(p, P.LLMResponse)),
        (lambda: P.memory_results("q", ["a"], correlate="c"), lambda p: P.decode_event(p, P.MemoryResults)),
        (lambda: P.llm_memory_query("q", correlate="c"), P.memory_worker_query),
        (lambda: P.tts_status("paused", utt_id="u"), lambda p: P.router_dispatch(p, P.TtsStatus)),
        (lambda: P.wake_event("interrupt", tts_id="u"), lambda p: P.router_dispatch(p, P.WakeEvent)),
        (lambda: P.wake_mic(), lambda p: P.decode_event(p, P.WakeMicCommand)),
        (lambda: P.health_ping("tars-stt"), P.health_check),
        (lambda: P.bare(P.FinalTranscript(text="hi")), lambda p: P.router_dispatch(p, P.FinalTranscript)),
    ],
)
def test_pytars_accepts_its_own_messages(
    payload: Callable[[], bytes], check: Callable[[bytes], object]
) -> None:
    check(payload())


@pytest.mark.parametrize(
    "bad",
    [
        b'{"id":"a","type":"tts.say","ts":1,"source":"r","data":{"text":"hi","message_id":null}}',
        b'{"id":"a","type":"tts.say","ts":1,"source":"r","data":{"text":"hi","path":"/x"}}',
        b'{"id":"a","type":"tts.say","ts":1,"source":"r","extra":1,"data":{"text":"hi"}}',
        b'{"id":"a","type":"tts.say","ts":1,"source":"r","data":{"text":5}}',
    ],
)
def test_pytars_refuses_null_ids_extra_keys_and_wrong_types(bad: bytes) -> None:
    with pytest.raises(P.Refused):
        P.decode_event(bad, P.TtsSay)


def test_the_tts_worker_ignores_an_enveloped_control_and_the_wake_service_reads_bare_keys() -> None:
    # py-tars disagrees with itself: its wake service envelopes tts/control, its tts-worker reads
    # the control bare, and the wake service reads tts/status and stt/final bare too.
    with pytest.raises(P.Refused, match="action None"):
        P.tts_worker_control(P.wake_tts_control("pause", utt_id="u1"))
    assert P.tts_worker_control(P.bare({"action": "stop", "reason": "wake_cancel", "id": "u1"}))["id"] == "u1"
    assert P.wake_activation_reads(P.tts_status("speaking_start", utt_id="u1"), "event") is None
    assert P.wake_activation_reads(P.bare({"event": "speaking_start"}), "event") == "speaking_start"
