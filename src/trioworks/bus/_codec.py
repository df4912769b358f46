"""The envelope, the topic table and the bus's one cattrs converter (wire JSON <-> attrs classes).

Decoding is strict: unknown envelope keys, unknown ``data`` keys, wrong JSON types (no silent
``str(5)``) and values outside a contract's range are all rejected with an
:exc:`~trioworks.bus.EnvelopeError` naming the topic and each offending field. A payload nested
deeper than :data:`MAX_DEPTH` is refused before it is parsed (the depth is counted without
recursion), and :func:`decode` raises nothing but :exc:`EnvelopeError`: any bad message is that
message's problem, never its handler's.
"""

from __future__ import annotations

import functools
import itertools
import json
import operator
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import attrs
import cattrs

from . import _contracts as c
from ._errors import ContractError, EnvelopeError
from ._topics import matches

__all__ = [
    "BARE_SOURCE",
    "MAX_DEPTH",
    "TOPICS",
    "Envelope",
    "Message",
    "Salvage",
    "TopicSpec",
    "decode",
    "encode",
    "new_id",
    "salvage",
    "spec_for",
    "type_for_topic",
]

ENVELOPE_KEYS = ("id", "type", "ts", "source", "data")

MAX_DEPTH = 64
"""Deepest nesting of JSON arrays and objects a message may have (the envelope is level 1, its
``data`` level 2). Far above any contract's needs; far below what would exhaust the stack of the
parser, the converter or a service that walks the data."""


@attrs.frozen
class TopicSpec:
    """One row of the spec's topic table: filter, event type, payload class, QoS, retained."""

    pattern: str
    type: str
    data_cls: Any  # a class, or a union of classes (the field ``type`` shadows the builtin here)
    qos: int = 1
    retain: bool = False
    bare: bool = False
    """Published without the envelope (``data`` at the top level), for a py-tars consumer that
    reads the topic bare: ``tts/control`` (py-tars' tts-worker). Decoding takes either form."""


TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec("stt/final", "stt.final", c.FinalTranscript),
    TopicSpec("stt/partial", "stt.partial", c.PartialTranscript, qos=0),
    TopicSpec("wake/event", "wake.event", c.WakeEvent),
    TopicSpec("wake/mic", "wake.mic", c.MicCommand),
    TopicSpec("llm/request", "llm.request", c.LLMRequest),
    TopicSpec("llm/response", "llm.response", c.LLMResponse),
    TopicSpec("llm/stream", "llm.stream", c.LLMStreamDelta, qos=0),
    TopicSpec("llm/cancel", "llm.cancel", c.LLMCancel),
    TopicSpec("llm/tools/registry", "llm.tools.registry", c.ToolsRegistry, retain=True),
    TopicSpec("llm/tool.call.request/+", "llm.tool.call.request", c.ToolCallRequest),
    TopicSpec("llm/tool.call.result", "llm.tool.call.result", c.ToolCallResult),
    TopicSpec("memory/query", "memory.query", c.MemoryQuery),
    TopicSpec("memory/results", "memory.results", c.MemoryResults),
    TopicSpec("tts/say", "tts.say", c.TtsSay),
    TopicSpec("tts/status", "tts.status", c.TtsStatus, qos=0),
    TopicSpec("tts/control", "tts.control", c.TtsControl, bare=True),
    TopicSpec("tts/output", "tts.output", c.TtsOutput, qos=0),
    TopicSpec("character/get", "character.get", c.CharacterGet),
    TopicSpec("character/result", "character.result", c.CharacterResult | c.CharacterSection),
    TopicSpec("character/update", "character.update", c.CharacterUpdate),
    TopicSpec("system/character/current", "system.character.current", c.CharacterResult, retain=True),
    TopicSpec("system/health/+", "system.health", c.HealthStatus, retain=True),
)


@functools.lru_cache(maxsize=4096)  # hot path: several calls per message; topic names repeat
def spec_for(topic: str) -> TopicSpec | None:
    """The contract row for topic name ``topic``, or None for a topic outside the spec."""
    for spec in TOPICS:
        if matches(spec.pattern, topic):
            return spec
    return None


def type_for_topic(topic: str) -> str:
    """The envelope ``type`` for ``topic``: from the table, else ``/`` replaced by ``.``."""
    spec = spec_for(topic)
    return spec.type if spec is not None else topic.replace("/", ".")


def new_id() -> str:
    """A fresh envelope / correlation id (hex uuid4, as the original)."""
    return uuid.uuid4().hex


@attrs.frozen
class Envelope:
    """``{id, type, ts, source, data}``; ``data`` is the topic's contract class (a dict off-table)."""

    id: str
    type: str
    ts: float
    source: str
    data: Any


@attrs.frozen
class Message:
    """What a handler receives: the decoded envelope and how it arrived."""

    topic: str
    envelope: Envelope
    retained: bool = False

    @property
    def data(self) -> Any:
        return self.envelope.data


# --- the converter ----------------------------------------------------------------------------


class _WrongType(TypeError):
    """A JSON value of the wrong type; its message says what was expected and what came."""


def _strict(kind: type, *accepted: type) -> Any:
    accepted = accepted or (kind,)

    def hook(value: Any, _: Any) -> Any:
        # bool is an int subclass: JSON true must not pass as a number.
        if isinstance(value, bool) and kind is not bool:
            raise _WrongType(f"expected {kind.__name__}, got a boolean")
        if not isinstance(value, accepted):
            raise _WrongType(f"expected {kind.__name__}, got {type(value).__name__}")
        return kind(value)

    return hook


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True)
    conv.register_structure_hook(str, _strict(str))
    conv.register_structure_hook(int, _strict(int))
    conv.register_structure_hook(float, _strict(float, int, float))
    conv.register_structure_hook(bool, _strict(bool))

    base_tool_result = conv.get_structure_hook(c.ToolCallResult)

    def tool_result(value: Any, cls: Any) -> c.ToolCallResult:
        # The original spells the error field both ``error`` and ``error_msg``; accept both.
        if isinstance(value, dict) and "error_msg" in value:
            value = dict(value)
            alias = value.pop("error_msg")
            value.setdefault("error", alias)
        return base_tool_result(value, cls)

    conv.register_structure_hook(c.ToolCallResult, tool_result)

    base_memory_result = conv.get_structure_hook(c.MemoryResult)

    def memory_result(value: Any, cls: Any) -> c.MemoryResult:
        # py-tars' memory-worker may send a document as a plain string: it is the document's text.
        if isinstance(value, dict) and isinstance(value.get("document"), str):
            value = {**value, "document": {"text": value["document"]}}
        return base_memory_result(value, cls)

    conv.register_structure_hook(c.MemoryResult, memory_result)

    base_tts_control = conv.get_structure_hook(c.TtsControl)

    def tts_control(value: Any, cls: Any) -> c.TtsControl:
        # py-tars' wake service names the utterance ``id``; trioworks ``utt_id``. Either, or
        # both when they agree.
        if isinstance(value, dict) and "id" in value:
            value = dict(value)
            alias = value.pop("id")
            if value.get("utt_id") is None:
                value["utt_id"] = alias
            elif alias is not None and alias != value["utt_id"]:
                raise _WrongType(f"id {alias!r} and utt_id {value['utt_id']!r} name different utterances")
        return base_tts_control(value, cls)

    conv.register_structure_hook(c.TtsControl, tts_control)

    def character_result(value: Any, _: Any) -> c.CharacterResult | c.CharacterSection:
        # character/result is the whole persona (it has a ``name``) or one section of it.
        if isinstance(value, dict) and "section" in value and "name" not in value:
            return conv.structure(value, c.CharacterSection)
        return conv.structure(value, c.CharacterResult)

    conv.register_structure_hook(c.CharacterResult | c.CharacterSection, character_result)

    def section_value(value: Any, _: Any) -> dict[str, Any] | str | None:
        if value is not None and not isinstance(value, dict | str):
            raise _WrongType(f"expected an object, a string or null, got {type(value).__name__}")
        return value

    conv.register_structure_hook(dict[str, Any] | str | None, section_value)
    return conv


converter = _make_converter()


_FIELD = "\x00"  # marks a message whose field name belongs on the path (see _reword)
_ATTRS_RANGE = re.compile(r"^'([A-Za-z_]\w*)' (must .*?)(?:: (.*))?$", re.DOTALL)
_LITERAL = re.compile(r"^(.*) not in literal typing\.Literal\[(.*)\]$", re.DOTALL)


def _format(exc: BaseException, type_: type | None) -> str:
    # attrs validators run in the class's __init__, after cattrs has left the field, so cattrs
    # reports them at the class's path ("$.data"). Their message starts with the field name
    # ("'top_k' must be <= 50: 99"): move that name onto the path (_reword), so the error says
    # "$.data.top_k: must be <= 50, got 99".
    if type(exc) is ValueError and (found := _ATTRS_RANGE.match(str(exc))):
        name, rule, value = found.groups()
        return f"{_FIELD}{name}{_FIELD}{rule}" + (f", got {value}" if value is not None else "")
    if isinstance(exc, TypeError) and len(exc.args) == 4 and isinstance(exc.args[1], attrs.Attribute):
        return f"{_FIELD}{exc.args[1].name}{_FIELD}{exc.args[0]}"  # attrs instance_of
    if type(exc) is cattrs.errors.CattrsError and (found := _LITERAL.match(str(exc))):
        value, options = found.groups()
        return f"expected one of {options}, got {value!r}"
    if type(exc) in (ValueError, _WrongType) and str(exc):
        return str(exc)
    return cattrs.v.format_exception(exc, type_)


def _problems(exc: Exception, path: str) -> list[str]:
    return [_reword(msg) for msg in cattrs.transform_error(exc, path=path, format_exception=_format)]


def _reword(msg: str) -> str:
    # cattrs says "<what> @ <path>"; lead with the path, which is what a reader looks for.
    what, _, where = msg.rpartition(" @ ")
    if not where:
        return msg
    if what.startswith(_FIELD):
        _, name, what = what.split(_FIELD, 2)
        where = f"{where}.{name}"
    return f"{where}: {what}"


# --- nesting depth, without recursion ----------------------------------------------------------

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # a JSON string, escapes included
# Each byte's step to the depth after it, plus one (bytes are unsigned): an opener 2, a closer 0.
_STEP = bytes(2 if b in b"[{" else 0 if b in b"]}" else 1 for b in range(256))


def _blank_strings(payload: bytes) -> bytes:
    # Same length, so offsets still line up with the payload: brackets inside strings don't count.
    return _STRING.sub(lambda m: b'"' + b" " * (len(m[0]) - 2) + b'"', payload)


def _depths(blanked: bytes) -> Iterator[int]:
    # The depth after each byte, computed in C (accumulate/map): no Python loop per byte.
    return map(operator.sub, itertools.accumulate(blanked.translate(_STEP)), itertools.count(1))


def _too_deep(payload: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether the JSON text ``payload`` nests arrays and objects deeper than ``limit``.

    Counted by scanning, not parsing: no recursion, linear time, and nearly free for a payload
    with few brackets. Brackets inside strings don't count. On text that is not JSON the answer
    is a guess (the parser refuses such text anyway).
    """
    if payload.count(b"[") + payload.count(b"{") <= limit:
        return False
    return max(_depths(_blank_strings(payload))) > limit


def _flatten(payload: bytes, limit: int) -> bytes:
    """``payload`` with every array or object deeper than ``limit`` replaced by ``null``."""
    deep = bytes(map(limit.__lt__, _depths(_blank_strings(payload))))  # 1 where deeper than limit
    parts: list[bytes] = []
    last = 0
    for run in re.finditer(b"\\x01+", deep):  # a run starts at an opener; its closer ends it
        parts += (payload[last : run.start()], b"null")
        last = run.end() + 1
    parts.append(payload[last:])
    return b"".join(parts)


# --- decoding -----------------------------------------------------------------------------------


def decode(topic: str, payload: bytes) -> Envelope:
    """Parse and validate one message on ``topic``. Never checkpoints.

    Raises :exc:`EnvelopeError` and nothing else, whatever the payload: invalid UTF-8 or JSON,
    nesting deeper than :data:`MAX_DEPTH` (checked before parsing), a broken contract, or any
    other failure to decode it (a ``RecursionError`` or ``MemoryError`` included).
    """
    try:
        return _decode(topic, payload)
    except EnvelopeError:
        raise
    except Exception as exc:  # whatever else one message can provoke stays that message's error
        raise EnvelopeError(topic, [f"$: could not be decoded ({type(exc).__name__}: {exc})"]) from None


def _decode(topic: str, payload: bytes) -> Envelope:
    try:
        text = payload.decode()  # JSON on the wire is UTF-8 (RFC 8259), so bytes scan as ASCII
    except UnicodeDecodeError as exc:
        raise EnvelopeError(topic, [f"$: not a JSON document ({exc})"]) from None
    if _too_deep(payload):
        raise EnvelopeError(topic, [f"$: nested deeper than {MAX_DEPTH} levels of arrays and objects"])
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise EnvelopeError(topic, [f"$: not a JSON document ({exc})"]) from None
    if not isinstance(raw, dict):
        raise EnvelopeError(topic, [f"$: expected a JSON object, got {type(raw).__name__}"])
    if "data" not in raw and spec_for(topic) is not None:
        return _decode_bare(topic, raw)
    problems = [f"$.{key}: missing" for key in ENVELOPE_KEYS if key not in raw]
    problems += [
        f"$.{key}: unknown key (expected only {', '.join(ENVELOPE_KEYS)})"
        for key in raw
        if key not in ENVELOPE_KEYS
    ]
    for key, kind in (("id", str), ("type", str), ("source", str), ("data", dict)):
        if key in raw and not isinstance(raw[key], kind):
            problems.append(f"$.{key}: expected {kind.__name__}, got {type(raw[key]).__name__}")
    ts = raw.get("ts", 0.0)
    if isinstance(ts, bool) or not isinstance(ts, int | float):
        problems.append(f"$.ts: expected a number (epoch seconds), got {type(ts).__name__}")
    if isinstance(raw.get("id"), str) and not raw["id"]:
        problems.append("$.id: must not be empty")
    # The envelope ``type`` is informational: py-tars never checks it (its wake service sends
    # ``mic.control`` on wake/mic), so any string is taken; the topic decides the contract.
    if problems:
        raise EnvelopeError(topic, problems)
    spec = spec_for(topic)
    data = raw["data"]
    if spec is not None:
        try:
            data = converter.structure(data, spec.data_cls)
        except Exception as exc:
            raise EnvelopeError(topic, _problems(exc, "$.data")) from None
    return Envelope(id=raw["id"], type=raw["type"], ts=float(ts), source=raw["source"], data=data)


BARE_SOURCE = "bare"
"""The envelope ``source`` given to a payload that came without an envelope."""


def _decode_bare(topic: str, raw: dict[str, Any]) -> Envelope:
    """A JSON object without ``data`` on a topic of the table: the payload itself, as py-tars' docs, scripts and web UI
    send it (and py-tars' consumers take it: envelope first, else the bare JSON). It gets an
    envelope here: id its ``message_id`` when a string (what py-tars correlates a bare request
    by), else a new one; ``ts`` now; source :data:`BARE_SOURCE`."""
    spec = spec_for(topic)
    assert spec is not None  # off the topic table a payload must be enveloped
    try:
        data = converter.structure(raw, spec.data_cls)
    except Exception as exc:
        problems = _problems(exc, "$")
        raise EnvelopeError(topic, [*problems, "(read without an envelope: it has no 'data' key)"]) from None
    message_id = raw.get("message_id")
    id_ = message_id if isinstance(message_id, str) and message_id else new_id()
    return Envelope(id=id_, type=type_for_topic(topic), ts=time.time(), source=BARE_SOURCE, data=data)


_OMIT_WHEN_NONE: dict[type, tuple[str, ...]] = {
    c.MemoryResults: ("error",),
}
"""trioworks-only keys of a payload, left out of the JSON while unset: py-tars' models forbid
unknown keys, so a ``null`` one makes py-tars drop the whole message (issue 14 item 1)."""


def fill_times(data: Any, ts: float) -> Any:
    """py-tars' transcripts, tts statuses and health always carry their time (a float, never ``null``):
    an unset one is the envelope's ``ts``."""
    if isinstance(data, c.FinalTranscript | c.PartialTranscript) and data.ts is None:
        return attrs.evolve(data, ts=ts)
    if isinstance(data, c.TtsStatus | c.HealthStatus) and data.timestamp is None:
        return attrs.evolve(data, timestamp=ts)
    return data


def _drop_unset(data: dict[str, Any], extra: tuple[str, ...]) -> dict[str, Any]:
    # message_id: py-tars' models type it ``str`` with a uuid default, so ``null`` is refused
    # while an absent one is filled in. Unset here means absent on the wire.
    for key in ("message_id", *extra):
        if key in data and data[key] is None:
            del data[key]
    return data


def encode(topic: str, envelope: Envelope) -> bytes:
    """Serialize ``envelope`` for ``topic``. Raises :exc:`ContractError` if ``data`` is the wrong class."""
    spec = spec_for(topic)
    if spec is not None and not isinstance(envelope.data, spec.data_cls):
        expected = getattr(spec.data_cls, "__name__", None) or " or ".join(
            cls.__name__ for cls in spec.data_cls.__args__
        )
        raise ContractError(topic, f"data must be a {expected}, got {type(envelope.data).__name__}")
    if spec is None and not isinstance(envelope.data, dict):
        raise ContractError(
            topic, f"data for an off-table topic must be a dict, got {type(envelope.data).__name__}"
        )
    payload = envelope.data
    if spec is not None:
        payload = fill_times(payload, envelope.ts)
    data = converter.unstructure(payload)
    if spec is not None:
        data = _drop_unset(data, _OMIT_WHEN_NONE.get(type(payload), ()))
    if spec is not None and spec.bare:
        return _dumps(topic, _bare_form(data))
    body = {
        "id": envelope.id,
        "type": envelope.type,
        "ts": envelope.ts,
        "source": envelope.source,
        "data": data,
    }
    return _dumps(topic, body)


def _bare_form(data: dict[str, Any]) -> dict[str, Any]:
    # tts/control as py-tars' tts-worker reads it: {action, reason, id}, no nulls (its ``id``
    # must be a string when present); trioworks' decoder reads ``id`` as ``utt_id``.
    # Its ``reason`` must be a non-empty string: an unset one is the action.
    data = {key: value for key, value in data.items() if value is not None}
    if "utt_id" in data:
        data["id"] = data.pop("utt_id")
    if not data.get("reason"):
        data["reason"] = data.get("action", "control")
    return data


def _dumps(topic: str, body: dict[str, Any]) -> bytes:
    try:
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    except (TypeError, ValueError) as exc:
        raise ContractError(topic, f"data is not JSON-serializable ({exc})") from None


@attrs.frozen
class Salvage:
    """What can still be read from a message that failed to decode (see :func:`salvage`)."""

    id: str | None
    """The envelope id (a reply's correlation id), when it is a non-empty string."""
    data: dict[str, Any] = attrs.field(factory=dict)
    """The raw ``data`` object ({} when missing or not an object). Untrusted: read with :meth:`text`."""

    def text(self, field: str) -> str | None:
        """``data[field]`` when it is a non-empty string, else None."""
        value = self.data.get(field)
        return value if isinstance(value, str) and value.strip() else None


def salvage(payload: bytes) -> Salvage:
    """The envelope id and ``data`` of a payload that :func:`decode` rejected, as far as they
    can be read (a bad payload may be anything: never raises, never checkpoints).

    Arrays and objects nested deeper than :data:`MAX_DEPTH` read as None, so the ids of a
    message refused for its depth can still be read.
    """
    try:
        if _too_deep(payload):
            payload = _flatten(payload, MAX_DEPTH)
        raw = json.loads(payload)
    except Exception:  # anything at all: this is the path for hostile payloads
        return Salvage(None)
    if not isinstance(raw, dict):
        return Salvage(None)
    id_ = raw.get("id")
    data = raw.get("data")
    return Salvage(
        id_ if isinstance(id_, str) and id_.strip() else None, data if isinstance(data, dict) else {}
    )
