"""Settings of the stt service and the error its bad values raise."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import attrs

from .._settings import SettingError
from .._url import wyoming_url

__all__ = ["SttConfig", "SttConfigError"]


class SttConfigError(SettingError):
    """A setting of the stt service is unusable; names the field and what was expected."""

    prefix = "stt config"


def _positive(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if value <= 0:
        raise SttConfigError(attribute.name, f"must be > 0, got {value!r}")


def _fraction(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0 < value <= 1:
        raise SttConfigError(attribute.name, f"must be in (0, 1], got {value!r}")


# Typed converters (``converter=tuple`` would type the parameters as a generic mypy cannot match).
def _phrases(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(items)


def _keyphrases(items: Iterable[tuple[str, float]]) -> tuple[tuple[str, float], ...]:
    return tuple(items)


@attrs.frozen(kw_only=True)
class SttConfig:
    """How the recognizer listens. At most one of ``phrases``, ``jsgf_path``, ``keyphrases`` is set.

    - Default: pocketsphinx's general en-us language model (``lm_path`` overrides it). It
      transcribes espeak speech poorly; the ``en-us+klatt`` voice or a grammar do much better.
    - ``phrases``: the only sentences to recognise (built into a JSGF grammar): exact and about
      20x cheaper to decode than the general model. Every word must be in the dictionary.
    - ``jsgf_path``: a JSGF grammar file.
    - ``keyphrases``: keyword spotting, ``(phrase, threshold)`` pairs (e.g. ``("hey tars", 1e-20)``).
    """

    lang: str = "en"
    lm_path: Path | None = None
    dict_path: Path | None = None
    phrases: tuple[str, ...] = attrs.field(default=(), converter=_phrases)
    jsgf_path: Path | None = None
    keyphrases: tuple[tuple[str, float], ...] = attrs.field(default=(), converter=_keyphrases)
    partial_interval: float = attrs.field(default=0.6, validator=_positive)
    """Seconds of speech between two ``stt/partial`` messages."""
    vad_window: float = attrs.field(default=0.3, validator=_positive)
    """Seconds of audio the endpointer looks at to decide speech/silence."""
    vad_ratio: float = attrs.field(default=0.9, validator=_fraction)
    """Fraction of the window that must be speech (or silence) to start (or end) an utterance."""
    vad_mode: Literal["loose", "medium_loose", "medium_strict", "strict"] = "loose"
    mute_while_speaking: bool = False
    """Echo suppression: discard audio between ``tts/status`` ``speaking_start`` and its
    ``speaking_end``/``stopped``, so the assistant does not transcribe itself from a speaker.
    Off by default: it also hides a user who talks over the assistant (barge-in)."""
    backend: Literal["auto", "thread", "process"] = "auto"
    """Where the decoder runs: ``auto`` = a thread for phrases/grammar/keyphrases (cheap calls),
    a process of its own for a language model (its calls hold the GIL for up to ~400 ms)."""
    chunk_seconds: float = attrs.field(default=0.1, validator=_positive)
    """Audio per call into the decoder thread (and per read from a source)."""
    url: str | None = attrs.field(default=None, validator=wyoming_url(SttConfigError))
    """A Wyoming ASR server (``tcp://host:10300``, e.g. faster-whisper) to transcribe instead of
    pocketsphinx (:class:`~trioworks.services.stt.WyomingRecognizer`); None: pocketsphinx."""

    def __attrs_post_init__(self) -> None:
        chosen = [
            name
            for name, value in (
                ("phrases", self.phrases),
                ("jsgf_path", self.jsgf_path),
                ("keyphrases", self.keyphrases),
            )
            if value
        ]
        if len(chosen) > 1:
            raise SttConfigError(
                chosen[1], f"only one of phrases, jsgf_path, keyphrases may be set (got {', '.join(chosen)})"
            )
        for i, phrase in enumerate(self.phrases):
            if not isinstance(phrase, str) or not phrase.split():
                raise SttConfigError(f"phrases[{i}]", f"expected a non-empty sentence, got {phrase!r}")
        for i, item in enumerate(self.keyphrases):
            if (
                not isinstance(item, tuple)
                or len(item) != 2
                or not isinstance(item[0], str)
                or not item[0].strip()
                or not isinstance(item[1], int | float)
            ):
                raise SttConfigError(f"keyphrases[{i}]", f"expected (phrase, threshold), got {item!r}")
