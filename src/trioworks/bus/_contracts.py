"""Typed payloads (the envelope's ``data``) for every topic of the voice-services spec.

These are the wire contracts shared by every service and by the tests: frozen attrs classes,
converted to and from JSON only by the converter in :mod:`._codec`. Field names match the
original's JSON exactly. Every payload may carry its own optional ``message_id``.
"""

from __future__ import annotations

from typing import Any, Literal

import attrs
from attrs import validators as v

__all__ = [
    "CharacterGet",
    "CharacterResult",
    "CharacterSection",
    "CharacterUpdate",
    "ConversationMessage",
    "FinalTranscript",
    "HealthStatus",
    "LLMCancel",
    "LLMParams",
    "LLMRequest",
    "LLMResponse",
    "LLMStreamDelta",
    "MemoryQuery",
    "MemoryResult",
    "MemoryResults",
    "MicCommand",
    "PartialTranscript",
    "ToolCallRequest",
    "ToolCallResult",
    "ToolFunction",
    "ToolSpec",
    "ToolsRegistry",
    "TtsControl",
    "TtsOutput",
    "TtsSay",
    "TtsStatus",
    "WakeEvent",
]


@attrs.frozen(kw_only=True)
class _Payload:
    message_id: str | None = attrs.field(default=None, validator=v.optional(v.instance_of(str)))
    """Optional id the payload carries itself (not the correlation id: that is the envelope's)."""


# --- stt -------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class FinalTranscript(_Payload):
    """``stt/final``: one finished utterance."""

    text: str
    lang: str = "en"
    confidence: float | None = None
    utt_id: str | None = None
    ts: float | None = None
    is_final: bool = True


@attrs.frozen(kw_only=True)
class PartialTranscript(_Payload):
    """``stt/partial``: the utterance so far, about every 600 ms while speaking."""

    text: str
    lang: str = "en"
    confidence: float | None = None
    utt_id: str | None = None
    ts: float | None = None
    is_final: bool = False


# --- wake ------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class WakeEvent(_Payload):
    """``wake/event``: wake word heard, or barge-in (``interrupt``) and its follow-ups."""

    type: Literal["wake", "interrupt", "resume", "cancelled", "timeout", "error"]
    confidence: float | None = None
    energy: float | None = None
    cause: str | None = None
    tts_id: str | None = None
    ts: float | None = None
    """py-tars' wake service: its ``time.monotonic()`` at the detection (no epoch time)."""


@attrs.frozen(kw_only=True)
class MicCommand(_Payload):
    """``wake/mic``: mute or unmute the microphone, optionally for ``ttl_ms``."""

    action: Literal["mute", "unmute"]
    reason: str = ""
    ttl_ms: int | None = attrs.field(default=None, validator=v.optional(v.ge(0)))


# --- llm -------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class LLMParams:
    model: str | None = None
    max_tokens: int | None = attrs.field(default=None, validator=v.optional(v.ge(1)))
    temperature: float | None = None
    top_p: float | None = None


@attrs.frozen(kw_only=True)
class ConversationMessage:
    role: Literal["system", "user", "assistant", "tool"]
    content: str
    timestamp: float | None = None
    """When it was said (py-tars' router sets it); informational."""


@attrs.frozen(kw_only=True)
class LLMRequest(_Payload):
    """``llm/request``; ``id`` is the request id."""

    id: str
    text: str
    stream: bool = True
    use_rag: bool | None = None
    """None (py-tars' router sends ``null`` when unset): no retrieval, as False."""
    rag_k: int | None = attrs.field(default=None, validator=v.optional(v.ge(1)))
    """Hits to retrieve; None: the llm's default (5)."""
    system: str | None = None
    params: LLMParams | None = None
    conversation_history: tuple[ConversationMessage, ...] | None = None
    """Earlier turns, oldest first; None (py-tars' ``null``): none."""


@attrs.frozen(kw_only=True)
class LLMResponse(_Payload):
    """``llm/response``: the whole reply (or ``error``)."""

    id: str
    reply: str | None = None
    error: str | None = None
    provider: str | None = None
    model: str | None = None
    tokens: dict[str, int] | None = None


@attrs.frozen(kw_only=True)
class LLMStreamDelta(_Payload):
    """``llm/stream`` (QoS 0): one chunk of a streamed reply."""

    id: str
    seq: int | None = attrs.field(default=None, validator=v.optional(v.ge(0)))
    """Position in the stream (trioworks counts from 0, py-tars from 1); None: unnumbered."""
    delta: str | None = ""
    """The text; py-tars' closing delta has ``null``."""
    done: bool = False
    provider: str | None = None
    model: str | None = None


@attrs.frozen(kw_only=True)
class LLMCancel(_Payload):
    """``llm/cancel``: stop generation of request ``id`` and the speech it feeds."""

    id: str


@attrs.frozen(kw_only=True)
class ToolFunction:
    name: str
    description: str = ""
    parameters: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class ToolSpec:
    type: Literal["function"] = "function"
    function: ToolFunction


@attrs.frozen(kw_only=True)
class ToolsRegistry(_Payload):
    """``llm/tools/registry`` (retained)."""

    tools: tuple[ToolSpec, ...] = ()


@attrs.frozen(kw_only=True)
class ToolCallRequest(_Payload):
    """``llm/tool.call.request/<call_id>``: reply within 30 s on ``llm/tool.call.result``."""

    call_id: str
    name: str
    arguments: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class ToolCallResult(_Payload):
    """``llm/tool.call.result``; the codec also accepts the original's ``error_msg`` spelling."""

    call_id: str
    result: Any = None
    error: str | None = None


# --- memory ----------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class MemoryQuery(_Payload):
    """``memory/query``: reply on ``memory/results`` within 5 s."""

    text: str
    top_k: int = attrs.field(default=5, validator=[v.ge(1), v.le(50)])
    max_tokens: int | None = attrs.field(default=None, validator=v.optional(v.ge(1)))
    include_context: bool = False
    context_window: int = attrs.field(default=1, validator=[v.ge(0), v.le(5)])
    retrieval_strategy: Literal["hybrid", "recent", "similarity"] = "hybrid"


@attrs.frozen(kw_only=True)
class MemoryResult:
    document: dict[str, Any]
    """The stored document (``text`` and its metadata); the codec reads py-tars' plain-string
    document as ``{"text": ...}``."""
    score: float | None = None
    timestamp: str | None = None
    """When the document was stored, as py-tars has it: a string (``str()`` of epoch seconds)."""
    context_type: Literal["target", "previous", "next"] = "target"
    token_count: int | None = 0


@attrs.frozen(kw_only=True)
class MemoryResults(_Payload):
    """``memory/results``; its envelope id is the query's correlation id."""

    query: str
    k: int
    results: tuple[MemoryResult, ...] = ()
    total_tokens: int | None = 0
    strategy_used: str = "hybrid"
    truncated: bool = False
    error: str | None = None
    """Why the query could not be answered (e.g. a malformed ``memory/query``); results then empty."""


# --- tts -------------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class TtsSay(_Payload):
    """``tts/say``: chunks with the same ``utt_id`` form one utterance."""

    text: str
    voice: str | None = None
    lang: str | None = None
    utt_id: str | None = None
    style: str | None = None
    stt_ts: float | None = None
    wake_ack: bool | None = None
    system_announce: bool | None = None


@attrs.frozen(kw_only=True)
class TtsStatus(_Payload):
    """``tts/status`` (QoS 0)."""

    event: Literal["speaking_start", "speaking_end", "paused", "resumed", "stopped"]
    text: str = ""
    utt_id: str | None = None
    reason: str | None = None
    timestamp: float | None = None
    """Epoch seconds; the encoder sets it (from the envelope's ``ts``) when unset, as py-tars does."""
    wake_ack: bool | None = None
    system_announce: bool | None = None


@attrs.frozen(kw_only=True)
class TtsOutput(_Payload):
    """``tts/output`` (trioworks only; QoS 0): the WAV file an utterance was written to, when the
    tts output is files. Published before the utterance's ``speaking_end`` / ``stopped``; kept off
    ``tts/status`` because py-tars' models refuse an unknown key there."""

    utt_id: str | None = None
    path: str


@attrs.frozen(kw_only=True)
class TtsControl(_Payload):
    """``tts/control``: must act during playback."""

    action: Literal["pause", "resume", "stop", "mute", "unmute"]
    reason: str | None = None
    utt_id: str | None = None
    """The utterance to act on (``stop``); None: every utterance speaking or queued."""


# --- character and health --------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class CharacterGet(_Payload):
    """``character/get``: the whole persona, or one ``section`` of it."""

    section: str | None = None


@attrs.frozen(kw_only=True)
class CharacterResult(_Payload):
    """``character/result`` (the whole persona) and the retained ``system/character/current``:
    py-tars' CharacterSnapshot."""

    name: str
    description: str | None = None
    systemprompt: str | None = None
    traits: dict[str, Any] = attrs.field(factory=dict)
    voice: dict[str, Any] = attrs.field(factory=dict)
    meta: dict[str, Any] = attrs.field(factory=dict)
    scenario: dict[str, Any] = attrs.field(factory=dict)
    personality_notes: dict[str, Any] = attrs.field(factory=dict)
    example_interactions: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class CharacterSection(_Payload):
    """``character/result`` for a ``character/get`` naming a ``section``: its value (an unknown
    section: ``{"error": ..., "available": [...]}``, as py-tars answers)."""

    section: str
    value: dict[str, Any] | str | None = None


@attrs.frozen(kw_only=True)
class CharacterUpdate(_Payload):
    """``character/update``: set one trait to 0–100 (``section`` ``traits``), or
    ``action: reset_traits`` (every trait back to the persona file's)."""

    section: str = "traits"
    trait: str | None = None
    value: int | None = attrs.field(default=None, validator=v.optional([v.ge(0), v.le(100)]))
    action: Literal["reset_traits"] | None = None

    def __attrs_post_init__(self) -> None:
        if self.action is None and (self.trait is None or self.value is None):
            raise ValueError("'trait' must be set with 'value' (or action 'reset_traits')")
        if self.action is None and self.section != "traits":
            raise ValueError(f"'section' must be 'traits' (the only one updated), got {self.section!r}")


@attrs.frozen(kw_only=True)
class HealthStatus(_Payload):
    """``system/health/<client_id>`` (retained); the broker's last will sends ``ok=False``.
    py-tars' HealthPing: ``event`` optional, ``timestamp`` set when published."""

    ok: bool
    event: str | None = None
    err: str | None = None
    timestamp: float | None = attrs.field(default=None, eq=False)
    """Epoch seconds; the encoder sets it (from the envelope's ``ts``); not part of equality."""
