"""Settings of the router service and the error its bad values raise."""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from .._settings import SettingError, at_least

__all__ = ["RouterConfig", "RouterConfigError"]


class RouterConfigError(SettingError):
    """A setting of the router is unusable; names the field and what was expected."""

    prefix = "router config"


def _is_bool(_: object, attribute: attrs.Attribute[bool], value: bool) -> None:
    if not isinstance(value, bool):
        raise RouterConfigError(attribute.name, f"expected true or false, got {value!r}")


WAKE_ACKS: tuple[str, ...] = ("Hmm?", "Huh?", "Yes?")
"""py-tars' router's default wake acknowledgements, said in turn."""


def _texts(items: Iterable[str]) -> tuple[str, ...]:
    texts = tuple(items)
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise RouterConfigError(f"wake_ack[{i}]", f"expected a non-empty text, got {text!r}")
    return texts


@attrs.frozen(kw_only=True)
class RouterConfig:
    """How the router runs a conversation turn."""

    history_exchanges: int = attrs.field(default=10, validator=at_least(RouterConfigError, 0, int))
    """Exchanges (user + assistant) kept and sent as ``conversation_history``; older ones are
    forgotten."""
    min_chunk: int = attrs.field(default=60, validator=at_least(RouterConfigError, 1, int))
    """A ``tts/say`` chunk ends at the first sentence boundary past this many characters."""
    max_chunk: int = attrs.field(default=240, validator=at_least(RouterConfigError, 1, int))
    """... and is never longer than this (cut at a word break when no boundary comes)."""
    first_chunk: int = attrs.field(default=12, validator=at_least(RouterConfigError, 1, int))
    """The minimum of a reply's *first* chunk: its first clause (ending ``.!?;:``) is said as soon
    as it is complete, so speech starts early; the rest goes in ``min_chunk`` chunks."""
    reply_timeout: float = attrs.field(default=30.0, validator=at_least(RouterConfigError, 0.001))
    """Seconds to wait for the first, and then for each next, ``llm/stream`` delta or the
    ``llm/response``; past it the turn is cancelled (reason ``timeout``)."""
    speech_timeout: float = attrs.field(default=300.0, validator=at_least(RouterConfigError, 0))
    """Seconds a turn waits, once its reply is all said, for the tts to report the end of its
    speech (so a barge-in while it is spoken cancels the turn); then the turn ends anyway."""
    cancel_timeout: float = attrs.field(default=2.0, validator=at_least(RouterConfigError, 0.001))
    """Seconds the shielded cleanup of a cancelled turn (``llm/cancel``, ``tts/control stop``)
    may take at most."""
    system: str | None = None
    """``llm/request.system``; None lets the llm service use its own."""
    use_rag: bool = False
    rag_k: int = attrs.field(default=5, validator=at_least(RouterConfigError, 1, int))
    voice: str | None = None
    """``tts/say.voice``; None lets the tts service use its own."""
    wake_required: bool = attrs.field(default=False, validator=_is_bool)
    """True: an ``stt/final`` starts a turn only inside the wake window (py-tars' behaviour);
    False (the default): every ``stt/final`` starts a turn."""
    wake_window: float = attrs.field(default=8.0, validator=at_least(RouterConfigError, 0.001))
    """Seconds the window stays open after ``wake/event`` ``wake`` (or ``interrupt``), and after
    each turn ends, so a conversation goes on without the wake word. ``wake/event`` ``timeout``
    or ``cancelled`` closes it."""
    wake_ack: tuple[str, ...] = attrs.field(default=WAKE_ACKS, converter=_texts)
    """What the router says on ``wake/event`` ``wake`` (py-tars' wake acknowledgement: a
    ``tts/say`` with ``wake_ack`` true, the texts in turn); empty: nothing."""
    wake_ack_style: str = "neutral"
    """``tts/say.style`` of the acknowledgement."""

    def __attrs_post_init__(self) -> None:
        if self.max_chunk < self.min_chunk:
            raise RouterConfigError(
                "max_chunk", f"expected >= min_chunk ({self.min_chunk}), got {self.max_chunk}"
            )
        if self.max_chunk < self.first_chunk:
            raise RouterConfigError(
                "first_chunk", f"expected <= max_chunk ({self.max_chunk}), got {self.first_chunk}"
            )
