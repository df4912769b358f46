"""The typed contracts against the JSON shapes of the spec (specs/voice-bus.md), strict on input."""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from trioworks import bus
from trioworks.bus import EnvelopeError, TopicError, _codec

# One JSON payload per row of the spec's topic table, as the original services send it.
SHAPES: dict[str, dict[str, Any]] = {
    "stt/final": {
        "text": "hello there",
        "lang": "en",
        "confidence": 0.91,
        "utt_id": "u1",
        "ts": 1.5,
        "is_final": True,
    },
    "stt/partial": {
        "text": "hel",
        "lang": "en",
        "confidence": 0.4,
        "utt_id": "u1",
        "ts": 1.2,
        "is_final": False,
    },
    "wake/event": {
        "type": "interrupt",
        "confidence": 0.8,
        "energy": 0.3,
        "cause": "barge_in",
        "tts_id": "t1",
    },
    "wake/mic": {"action": "mute", "reason": "tts", "ttl_ms": 1500},
    "llm/request": {
        "id": "r1",
        "text": "what time is it",
        "stream": True,
        "use_rag": True,
        "rag_k": 3,
        "system": "be brief",
        "params": {"model": "tiny", "max_tokens": 64, "temperature": 0.2, "top_p": 0.9},
        "conversation_history": [
            {"role": "user", "content": "hi", "timestamp": 1.5},
            {"role": "assistant", "content": "hello", "timestamp": None},
        ],
    },
    "llm/response": {
        "id": "r1",
        "reply": "noon",
        "error": None,
        "provider": "local",
        "model": "tiny",
        "tokens": {"prompt": 5, "completion": 1},
    },
    "llm/stream": {"id": "r1", "seq": 0, "delta": "no", "done": False},
    "llm/cancel": {"id": "r1"},
    "llm/tools/registry": {
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "clock",
                    "description": "the time",
                    "parameters": {"type": "object", "properties": {}},
                },
            }
        ]
    },
    "llm/tool.call.request/c7": {"call_id": "c7", "name": "clock", "arguments": {"tz": "UTC"}},
    "llm/tool.call.result": {"call_id": "c7", "result": {"time": "12:00"}, "error": None},
    "memory/query": {
        "text": "coffee",
        "top_k": 5,
        "max_tokens": 200,
        "include_context": True,
        "context_window": 2,
        "retrieval_strategy": "hybrid",
    },
    "memory/results": {
        "query": "coffee",
        "k": 1,
        "results": [
            {
                "document": {"text": "I like coffee"},
                "score": 0.03,
                "timestamp": "10.0",
                "context_type": "target",
                "token_count": 4,
            }
        ],
        "total_tokens": 4,
        "strategy_used": "hybrid",
        "truncated": False,
    },
    "tts/say": {
        "text": "Hello.",
        "voice": "en",
        "lang": "en",
        "utt_id": "u1",
        "style": None,
        "stt_ts": 1.0,
        "wake_ack": False,
        "system_announce": False,
    },
    "tts/status": {
        "event": "speaking_start",
        "text": "Hello.",
        "utt_id": "u1",
        "reason": None,
        "timestamp": 1.0,
        "wake_ack": True,
        "system_announce": None,
    },
    "tts/output": {"utt_id": "u1", "path": "/tmp/u1.wav"},
    "tts/control": {"action": "stop", "reason": "barge_in"},
    "character/get": {"section": "traits"},
    "character/result": {
        "name": "TARS",
        "systemprompt": "You are TARS.",
        "traits": {"humor": 75},
        "voice": {"rate": 1.0},
    },
    "character/update": {"trait": "humor", "value": 60},
    "system/character/current": {"name": "TARS", "systemprompt": "", "traits": {}, "voice": {}},
    "system/health/stt": {"ok": False, "event": "offline", "err": "connection lost"},
}


def _wire(topic: str, data: Any, **overrides: Any) -> bytes:
    body = {
        "id": "a" * 32,
        "type": bus.spec_for(topic).type,
        "ts": 1700000000.5,
        "source": "test",
        "data": data,
    }
    body.update(overrides)
    return json.dumps(body).encode()


def test_every_topic_of_the_table_has_a_shape_and_a_class() -> None:
    covered = {bus.spec_for(topic) for topic in SHAPES}
    assert covered == set(bus.TOPICS)


@pytest.mark.parametrize("topic", sorted(SHAPES))
def test_shape_decodes_to_its_class_and_round_trips(topic: str) -> None:
    spec = bus.spec_for(topic)
    env = bus.decode(topic, _wire(topic, SHAPES[topic]))
    assert isinstance(env.data, spec.data_cls)
    again = bus.decode(topic, bus.encode(topic, env))
    if spec.bare:  # published without the envelope (py-tars' tts-worker reads it so): data only
        assert again.data == env.data and again.source == bus.BARE_SOURCE
    else:
        assert again == env
    # Every field of the original's JSON survives (an unset message_id is left out, as py-tars
    # wants it: its models refuse a null one).
    sent = json.loads(bus.encode(topic, env))
    sent = sent if spec.bare else sent["data"]
    assert "message_id" not in sent
    if spec.bare:  # py-tars' tts-worker's names: the utterance is ``id``
        assert sent == {**sent, **{"id" if k == "utt_id" else k: v for k, v in SHAPES[topic].items()}}
    else:
        assert sent == {**sent, **SHAPES[topic]}


@pytest.mark.parametrize(
    ("topic", "data", "key"),
    [
        ("tts/say", bus.TtsSay(text="hi"), "message_id"),
        ("memory/results", bus.MemoryResults(query="q", k=0), "error"),
    ],
)
def test_unset_trioworks_only_keys_are_left_out_and_set_ones_kept(topic: str, data: object, key: str) -> None:
    # py-tars forbids unknown keys and null message_ids (issue 14 item 1); a value that is set
    # still goes out, and the decoder reads the absent key back as None.
    spec = bus.spec_for(topic)
    env = bus.Envelope(id="e", type=spec.type, ts=1.0, source="t", data=data)
    assert key not in json.loads(bus.encode(topic, env))["data"]
    assert bus.decode(topic, bus.encode(topic, env)) == env
    filled = bus.Envelope(id="e", type=spec.type, ts=1.0, source="t", data=attrs.evolve(data, **{key: "x"}))
    assert json.loads(bus.encode(topic, filled))["data"][key] == "x"
    assert bus.decode(topic, bus.encode(topic, filled)) == filled


def test_envelope_type_is_informational() -> None:
    # py-tars never checks it (its wake service sends mic.control on wake/mic): the topic decides.
    env = bus.decode(
        "wake/mic", _wire("wake/mic", {"action": "unmute", "reason": "wake"}, type="mic.control")
    )
    assert env.type == "mic.control" and env.data == bus.MicCommand(action="unmute", reason="wake")


def test_pytars_shapes_read_as_trioworks_ones() -> None:
    hit = bus.decode(
        "memory/results", _wire("memory/results", {"query": "q", "k": 1, "results": [{"document": "x"}]})
    )
    assert hit.data.results[0].document == {"text": "x"} and hit.data.results[0].score is None
    history = [{"role": "user", "content": "a", "timestamp": 3.0}]
    req = bus.decode(
        "llm/request", _wire("llm/request", {"id": "r", "text": "t", "conversation_history": history})
    )
    assert req.data.conversation_history == (
        bus.ConversationMessage(role="user", content="a", timestamp=3.0),
    )
    control = bus.decode(
        "tts/control", _wire("tts/control", {"action": "pause", "reason": "wake", "id": "u7"})
    )
    assert control.data.utt_id == "u7"
    wake = bus.decode("wake/event", _wire("wake/event", {"type": "error", "ts": 12.5}))
    assert (wake.data.type, wake.data.ts) == ("error", 12.5)
    nulls = {"id": "r", "text": "t", "use_rag": None, "rag_k": None, "conversation_history": None}
    request = bus.decode("llm/request", _wire("llm/request", nulls)).data
    assert (request.use_rag, request.rag_k, request.conversation_history) == (None, None, None)
    with pytest.raises(EnvelopeError, match="name different utterances"):
        bus.decode("tts/control", _wire("tts/control", {"action": "stop", "id": "a", "utt_id": "b"}))


def test_times_py_tars_always_has_are_set_on_encode() -> None:
    for topic, data, key in (
        ("stt/final", bus.FinalTranscript(text="hi"), "ts"),
        ("stt/partial", bus.PartialTranscript(text="hi"), "ts"),
        ("tts/status", bus.TtsStatus(event="speaking_end"), "timestamp"),
    ):
        env = bus.Envelope(id="e", type="x", ts=42.5, source="t", data=data)
        assert json.loads(bus.encode(topic, env))["data"][key] == 42.5


def test_type_and_topic_map_one_to_one() -> None:
    assert bus.spec_for("llm/request").type == "llm.request"
    assert bus.spec_for("system/health/llm").type == "system.health"
    assert bus.spec_for("llm/tool.call.request/abc").type == "llm.tool.call.request"
    assert len({spec.type for spec in bus.TOPICS}) == len(bus.TOPICS)
    assert bus.spec_for("test/anything") is None


def test_unknown_envelope_key_is_rejected_by_name() -> None:
    with pytest.raises(EnvelopeError) as info:
        bus.decode("llm/cancel", _wire("llm/cancel", {"id": "r"}, correlation_id="x"))
    assert info.value.topic == "llm/cancel"
    assert any("$.correlation_id: unknown key" in p for p in info.value.problems)


@pytest.mark.parametrize(
    ("topic", "data", "fragment"),
    [
        ("llm/cancel", {"id": "r", "extra": 1}, "extra fields found (extra)"),
        # attrs range validators run after cattrs left the field: the path still names it.
        ("memory/query", {"text": "x", "top_k": 51}, "$.data.top_k: must be <= 50, got 51"),
        ("memory/query", {"text": "x", "top_k": 0}, "$.data.top_k: must be >= 1, got 0"),
        ("memory/query", {"text": "x", "context_window": 6}, "$.data.context_window: must be <= 5, got 6"),
        ("memory/query", {"text": 5}, "$.data.text: expected str, got int"),
        ("memory/query", {"text": "x", "top_k": "5"}, "$.data.top_k: expected int, got str"),
        (
            "memory/query",
            {"text": "x", "retrieval_strategy": "best"},
            "$.data.retrieval_strategy: expected one of 'hybrid', 'recent', 'similarity', got 'best'",
        ),
        (
            "llm/stream",
            {"id": "r", "seq": True, "delta": "", "done": False},
            "$.data.seq: expected int, got a boolean",
        ),
        (
            "llm/request",
            {"id": "r", "text": "t", "params": {"max_tokens": 0}},
            "$.data.params.max_tokens: must be >= 1",
        ),
        (
            "llm/request",
            {"id": "r", "text": "t", "conversation_history": [{"role": "bot", "content": "hi"}]},
            "$.data.conversation_history[0].role: expected one of",
        ),
        ("wake/mic", {"action": "mute", "ttl_ms": -1}, "$.data.ttl_ms: must be >= 0, got -1"),
        ("character/update", {"trait": "humor", "value": 101}, "$.data.value: must be <= 100, got 101"),
        ("wake/event", {"type": "sneeze"}, "$.data.type"),
        ("llm/request", {"text": "no id"}, "$.data.id"),
    ],
)
def test_bad_data_is_rejected_naming_the_field(topic: str, data: Any, fragment: str) -> None:
    with pytest.raises(EnvelopeError) as info:
        bus.decode(topic, _wire(topic, data))
    assert fragment in str(info.value)
    assert topic in str(info.value)


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (b"not json", "not a JSON document"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"id": "x", "data": {"id": "r"}}', "$.type: missing"),
        (
            json.dumps(
                {"id": "x", "type": "llm.cancel", "ts": "now", "source": "s", "data": {"id": "r"}}
            ).encode(),
            "$.ts",
        ),
        (
            json.dumps(
                {"id": "", "type": "llm.cancel", "ts": 1, "source": "s", "data": {"id": "r"}}
            ).encode(),
            "$.id",
        ),
        (
            json.dumps({"id": "x", "type": "llm.cancel", "ts": 1, "source": "s", "data": []}).encode(),
            "$.data: expected dict",
        ),
    ],
)
def test_bad_envelope_is_rejected(payload: bytes, fragment: str) -> None:
    with pytest.raises(EnvelopeError, match="llm/cancel") as info:
        bus.decode("llm/cancel", payload)
    assert fragment in str(info.value)


def test_tool_result_accepts_both_error_spellings_and_sends_error() -> None:
    env = bus.decode(
        "llm/tool.call.result", _wire("llm/tool.call.result", {"call_id": "c", "error_msg": "boom"})
    )
    assert env.data.error == "boom"
    wire = json.loads(bus.encode("llm/tool.call.result", env))["data"]
    assert wire["error"] == "boom" and "error_msg" not in wire


def test_encode_refuses_the_wrong_class_for_a_topic() -> None:
    env = bus.Envelope(id="x", type="tts.say", ts=1.0, source="s", data=bus.LLMCancel(id="r"))
    with pytest.raises(bus.ContractError, match=r"tts/say.*TtsSay"):
        bus.encode("tts/say", env)


@given(st.dictionaries(st.text(max_size=5), st.none() | st.integers() | st.text(max_size=5), max_size=6))
def test_random_data_never_escapes_as_anything_but_envelope_error(data: dict[str, Any]) -> None:
    for topic in ("memory/query", "llm/request", "tts/control"):
        try:
            bus.decode(topic, _wire(topic, data))
        except EnvelopeError:
            pass


@pytest.mark.parametrize("bad", ["", "a/+/b", "a/#", "a\0b"])
def test_bad_topic_names(bad: str) -> None:
    with pytest.raises(TopicError):
        bus.validate_topic(bad)


@pytest.mark.parametrize("bad", ["", "a/#/b", "a/b#", "a+/b", "#/a"])
def test_bad_filters(bad: str) -> None:
    with pytest.raises(TopicError):
        bus.validate_filter(bad)


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        ("a/+/c", "a/b/c", True),
        ("a/+/c", "a/b/d", False),
        ("a/+", "a/b/c", False),
        ("a/#", "a", True),
        ("a/#", "a/b/c", True),
        ("#", "a/b", True),
        ("#", "$SYS/x", False),
        ("+/x", "$SYS/x", False),
        ("system/health/+", "system/health/stt", True),
        ("a/b", "a/b", True),
        ("a/b", "a/b/c", False),
    ],
)
def test_wildcard_matching(pattern: str, topic: str, expected: bool) -> None:
    assert bus.matches(pattern, topic) is expected


@pytest.mark.parametrize(
    ("topic", "data", "field", "value"),
    [
        ("tts/control", {"action": "stop", "utt_id": "u7"}, "utt_id", "u7"),
        ("tts/control", {"action": "stop"}, "utt_id", None),
        ("tts/status", {"event": "speaking_end", "wake_ack": True}, "wake_ack", True),
        ("llm/stream", {"id": "r", "seq": None, "delta": None, "done": True}, "delta", None),
        ("llm/stream", {"id": "r", "seq": 1, "delta": "a", "provider": "p"}, "provider", "p"),
        (
            "memory/results",
            {"query": "?", "k": 0, "error": "top_k: must be <= 50"},
            "error",
            "top_k: must be <= 50",
        ),
        ("memory/results", {"query": "q", "k": 1}, "error", None),
    ],
)
def test_optional_fields_added_since_the_original(topic: str, data: Any, field: str, value: Any) -> None:
    # Optional, so the original's messages (without them) still decode; typed when present.
    env = bus.decode(topic, _wire(topic, data))
    assert getattr(env.data, field) == value
    with pytest.raises(EnvelopeError, match=rf"\$\.data\.{field}"):
        bus.decode(topic, _wire(topic, {**data, field: 5}))


# --- nesting depth (issue 10, case 2): refused before parsing, never a RecursionError ---------


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for n in range(depth):
        value = [value] if n % 2 else {"k": value}
    return value


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


_tricky_text = st.text(alphabet='[]{}"\\ab,:', max_size=6)
_json_values = st.recursive(
    st.none() | st.integers() | _tricky_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_tricky_text, inner, max_size=3),
    max_leaves=40,
)


@given(_json_values, st.integers(min_value=0, max_value=12))
def test_depth_scan_agrees_with_the_parsed_depth(value: Any, limit: int) -> None:
    # Brackets, quotes and backslashes inside strings must not count.
    payload = json.dumps(value).encode()
    assert _codec._too_deep(payload, limit) == (_depth(value) > limit)


def test_a_deeply_nested_payload_is_refused_before_parsing_naming_the_limit() -> None:
    def off_table(data: Any) -> bytes:
        return json.dumps({"id": "i", "type": "test.x", "ts": 1, "source": "s", "data": data}).encode()

    # The envelope is level 1, its data level 2.
    assert bus.decode("test/x", off_table(_nested(bus.MAX_DEPTH - 1))).data == _nested(bus.MAX_DEPTH - 1)
    with pytest.raises(EnvelopeError, match=f"test/x.*nested deeper than {bus.MAX_DEPTH} levels"):
        bus.decode("test/x", off_table(_nested(bus.MAX_DEPTH)))
    # The attack: ~100 KB of brackets, deep enough to exhaust the parser's recursion.
    bomb = _wire("llm/request", {"id": "r", "text": "hi", "x": "@"}).replace(
        b'"@"', b"[" * 50_000 + b"]" * 50_000
    )
    with pytest.raises(EnvelopeError, match=f"llm/request.*nested deeper than {bus.MAX_DEPTH} levels"):
        bus.decode("llm/request", bomb)


def test_salvage_reads_the_ids_of_a_payload_refused_for_its_depth() -> None:
    bomb = _wire("llm/request", {"id": "r", "text": "hi", "x": "@"}).replace(
        b'"@"', b"[" * 50_000 + b"]" * 50_000
    )
    found = bus.salvage(bomb)
    assert (found.id, found.text("id"), found.text("text")) == ("a" * 32, "r", "hi")
    assert _depth(found.data["x"]) == bus.MAX_DEPTH - 2  # what is deeper reads as None


@given(
    st.binary(max_size=64)
    | st.text(alphabet='[]{}"\\:,0 a', max_size=200).map(str.encode)
    | st.integers(min_value=60, max_value=3000).map(lambda n: b'{"id":"x","data":' + b"[" * n)
)
def test_any_payload_decodes_or_raises_envelope_error(payload: bytes) -> None:
    for topic in ("llm/request", "test/x"):
        try:
            bus.decode(topic, payload)
        except EnvelopeError:
            pass
    bus.salvage(payload)  # never raises


# --- issue 14: bare payloads, py-tars' health and persona shapes --------------------------------


def test_a_bare_payload_is_the_topics_data_with_an_envelope_made_for_it() -> None:
    env = bus.decode("llm/cancel", b'{"id": "r1", "message_id": "m-7"}')
    assert env.data == bus.LLMCancel(id="r1", message_id="m-7")
    assert (env.id, env.source, env.type) == ("m-7", bus.BARE_SOURCE, "llm.cancel")
    other = bus.decode("tts/say", b'{"text": "hi"}')
    assert other.data == bus.TtsSay(text="hi") and other.id  # a new id when there is no message_id


def test_a_bad_bare_payload_names_its_field_and_says_it_was_read_bare() -> None:
    with pytest.raises(EnvelopeError) as info:
        bus.decode("tts/say", b'{"text": 5}')
    assert "$.text" in str(info.value) and "no 'data' key" in str(info.value)


def test_pytars_health_reads_and_ours_carries_a_timestamp() -> None:
    env = bus.decode(
        "system/health/tars-tts",
        b'{"id":"a","type":"health.status","ts":1.0,"source":"tars-tts","data":{"ok":true,"timestamp":2.5}}',
    )
    assert env.data == bus.HealthStatus(ok=True) and env.data.timestamp == 2.5
    ours = bus.Envelope(id="b", type="system.health", ts=3.0, source="s", data=bus.HealthStatus(ok=True))
    assert json.loads(bus.encode("system/health/s", ours))["data"]["timestamp"] == 3.0


def test_character_result_is_the_persona_or_one_section() -> None:
    whole = _wire("character/result", {"name": "TARS", "description": None, "meta": {}})
    assert isinstance(bus.decode("character/result", whole).data, bus.CharacterResult)
    part = _wire("character/result", {"section": "traits", "value": {"humor": 75}})
    assert bus.decode("character/result", part).data == bus.CharacterSection(
        section="traits", value={"humor": 75}
    )


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"trait": "humor"}, "$.data.trait: must be set with 'value'"),
        ({"section": "voice", "trait": "humor", "value": 5}, "$.data.section: must be 'traits'"),
        ({"trait": "humor", "value": 101}, "$.data.value"),
    ],
)
def test_a_bad_character_update_names_its_field(data: dict[str, Any], fragment: str) -> None:
    with pytest.raises(EnvelopeError) as info:
        bus.decode("character/update", _wire("character/update", data))
    assert fragment in str(info.value)


def test_reset_traits_is_a_character_update() -> None:
    env = bus.decode("character/update", _wire("character/update", {"action": "reset_traits"}))
    assert env.data.action == "reset_traits"
