"""py-tars' wire contracts, re-encoded on the test side (the specification of issue 14).

py-tars (github:ZinkoSoft/py-tars, no licence) is read for facts only; every line here is written
for this suite. Three parts:

- **Models**: pydantic v2 classes with py-tars' field names, types, defaults and model config.
  py-tars uses pydantic's *default* (lax) validation: an ``int`` passes as a ``float``, ``None``
  does not pass as a ``str``. Every class below forbids extra keys because every py-tars model
  does (``extra="forbid"``), the envelope included. ``message_id`` is a ``str`` with a uuid
  default in every payload that has one: omitted is fine, ``null`` is refused.
- **Sends**: builders of the exact bytes each py-tars component publishes (``model_dump()`` of
  the model, wrapped the way its publisher wraps it: which ``type``, ``source`` and envelope id).
- **Checks**: the decoding each py-tars component applies to what it receives (which fallbacks it
  has, which checks it skips). A check returns the parsed value or raises :class:`Refused`.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "PYTARS_HEALTH_TOPICS",
    "PYTARS_VOICE",
    "Refused",
]

PYTARS_VOICE = "piper/en_US/amy"
"""The router's default ``tts/say`` voice (``ROUTER_TTS_VOICE``)."""

PYTARS_HEALTH_TOPICS = {"tts": "system/health/tars-tts", "stt": "system/health/tars-stt"}
"""The health topics py-tars' router waits on before it announces itself (and wake-activation on
``tars-stt``): ``system/health/<client_id>`` of the tts and stt workers."""


def _uuid() -> str:
    return uuid.uuid4().hex


class _Strict(BaseModel):
    # Every py-tars contract model forbids unknown keys.
    model_config = ConfigDict(extra="forbid")


class _WithId(_Strict):
    message_id: str = Field(default_factory=_uuid)


# --- the envelope ----------------------------------------------------------------------------


class Envelope(_Strict):
    """``{id, type, ts, source, data}``; ``type`` is never compared by any consumer that acts on it
    (stt/tts workers log a mismatch at debug level and carry on)."""

    id: str = Field(default_factory=_uuid)
    type: str
    ts: float = Field(default_factory=time.time)
    source: str = "router"
    data: dict[str, Any]


# --- health ----------------------------------------------------------------------------------


class HealthPing(_WithId):
    ok: bool
    event: str | None = None
    err: str | None = None
    timestamp: float = Field(default_factory=time.time)


# --- stt -------------------------------------------------------------------------------------


class FinalTranscript(_WithId):
    text: str
    lang: str = "en"
    confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    utt_id: str | None = None
    ts: float = Field(default_factory=time.time)
    is_final: bool = True


class PartialTranscript(_WithId):
    text: str
    lang: str = "en"
    confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    utt_id: str | None = None
    ts: float = Field(default_factory=time.time)
    is_final: bool = False


# --- wake (core contracts: what the router and stt-worker validate against) -------------------


class WakeEvent(_WithId):
    type: str  # any string; the router lower-cases it and ignores what it does not know
    tts_id: str | None = None
    confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    energy: float | None = Field(default=None, ge=0.0)
    cause: str | None = None
    ts: float | None = None


class WakeMicCommand(_WithId):
    action: Literal["mute", "unmute"]
    reason: str = "wake"
    ttl_ms: int | None = Field(default=None, ge=0)


# --- wake-activation's own models (what it publishes: no message_id at all) --------------------


class WakeActivationEvent(_Strict):
    type: Literal["wake", "interrupt", "timeout", "resume", "cancelled", "error"]
    confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    energy: float | None = Field(default=None, ge=0.0)
    tts_id: str | None = None
    cause: str | None = None
    ts: float  # time.monotonic() of the detection


class WakeActivationMic(_Strict):
    action: Literal["mute", "unmute"]
    reason: str
    ttl_ms: int | None = Field(default=None, ge=0)


class WakeActivationTtsControl(_Strict):
    action: Literal["pause", "resume", "stop"]
    reason: str
    id: str | None = None  # the utterance (tts/status utt_id) being controlled


# --- tts -------------------------------------------------------------------------------------


class TtsSay(_WithId):
    text: str
    voice: str | None = None
    lang: str | None = None
    utt_id: str | None = None
    style: str | None = None
    stt_ts: float | None = None
    wake_ack: bool | None = None
    system_announce: bool | None = None


class TtsStatus(_WithId):
    event: Literal["speaking_start", "speaking_end", "paused", "resumed", "stopped"]
    text: str = ""
    timestamp: float = Field(default_factory=time.time)
    utt_id: str | None = None
    reason: str | None = None
    wake_ack: bool | None = None
    system_announce: bool | None = None


class TtsControlCommand(_WithId):
    """The core contract for ``tts/control`` (no consumer validates with it; see
    :func:`tts_worker_control`)."""

    action: Literal["pause", "resume", "stop", "mute", "unmute"]
    reason: str | None = None
    ts: float = Field(default_factory=time.time)


# --- llm -------------------------------------------------------------------------------------


class ConversationMessage(_Strict):
    role: Literal["user", "assistant"]
    content: str
    timestamp: float | None = None


class LLMRequest(_WithId):
    id: str
    text: str
    stream: bool = True
    use_rag: bool | None = None
    rag_k: int | None = None
    system: str | None = None
    params: dict[str, Any] | None = None
    conversation_history: list[ConversationMessage] | None = None


class LLMResponse(_WithId):
    id: str
    reply: str | None = None
    error: str | None = None
    provider: str | None = None
    model: str | None = None
    tokens: dict[str, Any] | None = None


class LLMStreamDelta(_WithId):
    id: str
    seq: int | None = None
    delta: str | None = None
    done: bool = False
    provider: str | None = None
    model: str | None = None


class LLMCancel(_WithId):
    id: str


# --- memory and character --------------------------------------------------------------------


class MemoryQuery(_WithId):
    text: str
    top_k: int = Field(default=5, ge=1, le=50)
    max_tokens: int | None = Field(default=None, ge=1, le=10000)
    include_context: bool = False
    context_window: int = Field(default=1, ge=0, le=5)
    retrieval_strategy: str = "hybrid"


class MemoryResult(_Strict):
    document: dict[str, Any] | str
    score: float | None = None
    timestamp: str | None = None  # a string: str(doc["timestamp"])
    context_type: str = "target"
    token_count: int | None = None


class MemoryResults(_WithId):
    query: str
    k: int
    results: list[MemoryResult] = Field(default_factory=list)
    total_tokens: int | None = None
    strategy_used: str = "hybrid"
    truncated: bool = False


class CharacterGetRequest(_WithId):
    section: str | None = None


class CharacterSnapshot(_WithId):
    name: str
    description: str | None = None
    systemprompt: str | None = None
    traits: dict[str, Any] = Field(default_factory=dict)
    voice: dict[str, Any] = Field(default_factory=dict)
    meta: dict[str, Any] = Field(default_factory=dict)
    scenario: dict[str, Any] = Field(default_factory=dict)
    personality_notes: dict[str, Any] = Field(default_factory=dict)
    example_interactions: dict[str, Any] = Field(default_factory=dict)


class CharacterSection(_WithId):
    section: str
    value: dict[str, Any] | str | None = None


class CharacterTraitUpdate(_WithId):
    section: str = "traits"
    trait: str
    value: int = Field(ge=0, le=100)


# ==============================================================================================
# Sends: the bytes each py-tars component publishes
# ==============================================================================================


def wrap(
    event_type: str, data: BaseModel | dict[str, Any], *, source: str, correlate: str | None = None
) -> bytes:
    """An enveloped message as py-tars' publishers build it: ``data`` dumped with every field
    (``None`` included), the envelope id the correlation id when there is one, else a new uuid."""
    body = data.model_dump() if isinstance(data, BaseModel) else data
    envelope = Envelope(id=correlate or _uuid(), type=event_type, source=source, data=body)
    return envelope.model_dump_json().encode()


def bare(data: BaseModel | dict[str, Any]) -> bytes:
    """A payload without the envelope (py-tars' docs, scripts and web UI send these)."""
    body = data.model_dump() if isinstance(data, BaseModel) else data
    return json.dumps(body).encode()


# The sources: MQTTClient's source_name (default: its client id), or "router" for the router.
ROUTER, STT, TTS, LLM, MEMORY, WAKE = (
    "router",
    "tars-stt",
    "tars-tts",
    "llm-worker",
    "memory-worker",
    "wake-activation",
)


def health_ping(source: str, ok: bool = True, event: str = "ready") -> bytes:
    """``system/health/<client_id>`` as MQTTClient.publish_health sends it (type ``health.status``,
    ``None`` fields left out: no ``err`` when healthy)."""
    ping = HealthPing(ok=ok, event=event, err=None if ok else "error")
    return wrap("health.status", ping.model_dump(exclude_none=True), source=source)


def stt_final(text: str, *, utt_id: str | None = None, confidence: float | None = 0.92) -> bytes:
    """stt-worker's ``stt/final``."""
    return wrap("stt.final", FinalTranscript(text=text, utt_id=utt_id, confidence=confidence), source=STT)


def router_llm_request(
    text: str, *, req_id: str, correlate: str, history: list[tuple[str, str]] = ()
) -> bytes:
    """The router's ``llm/request``: unset options serialised as ``null``, the history's entries
    with their ``timestamp`` (the user's: the transcript's ``ts``; the assistant's: time.time())."""
    now = time.time()
    turns = [ConversationMessage(role=role, content=content, timestamp=now) for role, content in history]  # type: ignore[arg-type]
    turns.append(ConversationMessage(role="user", content=text, timestamp=now))
    request = LLMRequest(id=req_id, text=text, stream=True, conversation_history=turns)
    return wrap("llm.request", request, source=ROUTER, correlate=correlate)


def router_tts_say(
    text: str,
    *,
    utt_id: str | None,
    correlate: str | None = None,
    style: str = "neutral",
    wake_ack: bool | None = None,
    system_announce: bool | None = None,
) -> bytes:
    """The router's ``tts/say`` (its ``_speak``): voice ``piper/en_US/amy``, ``lang`` "en"."""
    say = TtsSay(
        text=text,
        voice=PYTARS_VOICE,
        lang="en",
        utt_id=utt_id,
        style=style,
        wake_ack=wake_ack,
        system_announce=system_announce,
    )
    return wrap("tts.say", say, source=ROUTER, correlate=correlate)


def llm_stream(req_id: str, *, correlate: str, deltas: list[str]) -> list[bytes]:
    """llm-worker's ``llm/stream``: seq from 1, ``provider``/``model`` on every delta, a final
    ``done`` delta with ``delta: null``; every envelope carries the same id (the correlation id)."""
    out = [
        wrap(
            "llm.stream",
            LLMStreamDelta(id=req_id, seq=i, delta=d, provider="openai", model="gpt-4o-mini"),
            source=LLM,
            correlate=correlate,
        )
        for i, d in enumerate(deltas, 1)
    ]
    done = LLMStreamDelta(id=req_id, seq=len(deltas) + 1, done=True, provider="openai", model="gpt-4o-mini")
    out.append(wrap("llm.stream", done, source=LLM, correlate=correlate))
    return out


def llm_response(req_id: str, reply: str, *, correlate: str) -> bytes:
    """llm-worker's ``llm/response`` (``tokens``: the provider's usage dict)."""
    usage = {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}
    response = LLMResponse(id=req_id, reply=reply, provider="openai", model="gpt-4o-mini", tokens=usage)
    return wrap("llm.response", response, source=LLM, correlate=correlate)


def llm_tts_chunks(texts: list[str], *, correlate: str) -> list[bytes]:
    """llm-worker's ``tts/say`` with ``LLM_TTS_STREAM``: bare ``TtsSay(text=...)`` per sentence,
    every chunk under the one correlation id (the envelope id)."""
    return [wrap("tts.say", TtsSay(text=t), source=LLM, correlate=correlate) for t in texts]


def llm_memory_query(text: str, *, correlate: str) -> bytes:
    """llm-worker's RAG ``memory/query`` (its defaults: RAG_MAX_TOKENS 2000, context on)."""
    query = MemoryQuery(text=text, top_k=5, max_tokens=2000, include_context=True, context_window=1)
    return wrap("memory.query", query.model_dump(), source=LLM, correlate=correlate)


def llm_character_get() -> bytes:
    """llm-worker's start-up ``character/get``: type ``memory.character.get``, ``{"section": null}``."""
    return wrap("memory.character.get", {"section": None}, source=LLM)


def memory_results(query: str, texts: list[str], *, correlate: str) -> bytes:
    """memory-worker's ``memory/results``: ``timestamp`` a string, ``token_count`` an estimate."""
    hits = [
        MemoryResult(
            document={"text": t, "timestamp": 1700000000.5},
            score=0.8,
            timestamp="1700000000.5",
            token_count=max(1, len(t) // 4),
        )
        for t in texts
    ]
    results = MemoryResults(
        query=query, k=len(hits), results=hits, total_tokens=sum(h.token_count or 0 for h in hits)
    )
    return wrap("memory.results", results, source=MEMORY, correlate=correlate)


def tts_status(
    event: str,
    *,
    text: str = "",
    utt_id: str | None = None,
    wake_ack: bool | None = None,
    system_announce: bool | None = None,
) -> bytes:
    """tts-worker's ``tts/status`` (QoS 0, a fresh envelope id, ``timestamp`` a float)."""
    status = TtsStatus(
        event=event, text=text, utt_id=utt_id, wake_ack=wake_ack, system_announce=system_announce
    )  # type: ignore[arg-type]
    return wrap("tts.status", status, source=TTS)


def wake_event(kind: str = "wake", *, tts_id: str | None = None) -> bytes:
    """wake-activation's ``wake/event`` (no ``message_id``; ``ts`` monotonic seconds)."""
    event = WakeActivationEvent(
        type=kind,  # type: ignore[arg-type]
        confidence=0.83,
        energy=0.12,
        cause="wake_phrase" if kind == "wake" else "double_wake",
        tts_id=tts_id,
        ts=time.monotonic(),
    )
    return wrap("wake.event", event, source=WAKE)


def wake_mic(action: str = "unmute", ttl_ms: int | None = 8000) -> bytes:
    """wake-activation's ``wake/mic``: envelope type ``mic.control``."""
    return wrap("mic.control", WakeActivationMic(action=action, reason="wake", ttl_ms=ttl_ms), source=WAKE)  # type: ignore[arg-type]


def wake_tts_control(action: str = "pause", *, utt_id: str | None, reason: str = "wake_interrupt") -> bytes:
    """wake-activation's ``tts/control``: the utterance named ``id``."""
    control = WakeActivationTtsControl(action=action, reason=reason, id=utt_id)  # type: ignore[arg-type]
    return wrap("tts.control", control, source=WAKE)


# ==============================================================================================
# Checks: how each py-tars component decodes what it receives
# ==============================================================================================


class Refused(Exception):
    """A py-tars component would drop this message; the text says which check and why."""


def _json(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except ValueError as exc:
        raise Refused(f"not JSON: {exc}") from None


def _validate(model: type[BaseModel], data: Any, where: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Refused(f"{where}: {model.__name__} refused it: {_summary(exc)}") from None


def _summary(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or '$'}: {e['msg']}" for e in exc.errors())


def router_dispatch(payload: bytes, model: type[BaseModel]) -> Any:
    """The router's Dispatcher (tars.runtime.dispatcher): the envelope, then ``model`` on its
    ``data``; if either fails, ``model`` on the whole payload (a bare message)."""
    try:
        envelope = Envelope.model_validate_json(payload)
        return model.model_validate(envelope.data)
    except ValidationError as first:
        try:
            return model.model_validate(_json(payload))
        except ValidationError:
            raise Refused(f"router: {model.__name__} refused it: {_summary(first)}") from None


def decode_event(payload: bytes, model: type[BaseModel], who: str = "worker") -> Any:
    """stt-worker / tts-worker ``_decode_event`` and llm-worker's request decoding: ``data`` of a
    valid envelope, else the whole payload as a bare message; then ``model`` on it (no second try;
    the envelope ``type`` is not checked)."""
    try:
        data = Envelope.model_validate_json(payload).data
    except ValidationError:
        data = _json(payload)
    return _validate(model, data, who)


def ui_check(payload: bytes, model: type[BaseModel]) -> Any:
    """The UI (apps/ui): envelope, then ``model`` on ``data``; no bare fallback."""
    envelope = _validate(Envelope, _json(payload), "ui")
    return _validate(model, envelope.data, "ui")


def llm_worker_memory_results(payload: bytes) -> tuple[str, list[str]]:
    """llm-worker's ``memory/results``: only the envelope is validated (its ``data`` read as a
    dict, never as MemoryResults); the correlation id is the envelope id. Returns (id, texts)."""
    try:
        envelope = Envelope.model_validate_json(payload)
        data, corr = envelope.data, envelope.id
    except ValidationError:
        data = _json(payload)
        if not isinstance(data, dict):
            raise Refused("llm-worker: memory/results is not an object") from None
        corr = data.get("correlate") or data.get("id")
    texts = []
    for hit in data.get("results", []):
        doc = hit.get("document", {})
        texts.append(doc if isinstance(doc, str) else str(doc.get("text", "")))
    if not corr:
        raise Refused("llm-worker: memory/results without a correlation id")
    return corr, texts


def memory_worker_query(payload: bytes) -> MemoryQuery:
    """memory-worker's ``memory/query``, strict path: MemoryQuery on the envelope's ``data``.

    (When that fails, memory-worker still answers a degraded query built from ``text`` and
    ``top_k`` alone, dropping every other option; see :func:`memory_worker_query_degraded`.)"""
    return decode_event(payload, MemoryQuery, "memory-worker")


def memory_worker_query_degraded(payload: bytes) -> MemoryQuery:
    """memory-worker's fallback: ``text`` (or ``query``) and ``top_k`` only."""
    try:
        data = Envelope.model_validate_json(payload).data
    except ValidationError:
        data = _json(payload)
    text = str(data.get("text") or data.get("query") or "").strip()
    if not text:
        raise Refused("memory-worker: no text")
    try:
        top_k = max(1, int(data.get("top_k", 5)))
    except (TypeError, ValueError):
        top_k = 5
    return MemoryQuery(text=text, top_k=top_k)


def tts_worker_control(payload: bytes) -> dict[str, Any]:
    """tts-worker's ``tts/control``: the raw JSON object, read at the top level (an envelope is
    *not* unwrapped): ``action`` one of pause/resume/stop, ``reason`` a non-empty string, ``id``
    a string when present."""
    data = _json(payload)
    if not isinstance(data, dict):
        raise Refused("tts-worker: control payload must be a JSON object")
    action = data.get("action")
    if not isinstance(action, str) or action.lower() not in {"pause", "resume", "stop"}:
        raise Refused(f"tts-worker: unsupported control action {action!r}")
    reason = data.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise Refused("tts-worker: control reason is required")
    if data.get("id") is not None and not isinstance(data["id"], str):
        raise Refused("tts-worker: control id must be a string")
    return data


def wake_activation_reads(payload: bytes, key: str) -> Any:
    """wake-activation's ``tts/status`` and ``stt/final`` handlers read keys at the top level of
    the JSON (no envelope unwrapping): the value it would act on, None when absent."""
    data = _json(payload)
    return data.get(key) if isinstance(data, dict) else None


def health_check(payload: bytes) -> HealthPing:
    """The router's health subscription: Dispatcher semantics with HealthPing."""
    return router_dispatch(payload, HealthPing)
