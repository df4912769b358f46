"""Settings of the wake service and the error its bad values raise."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from .._settings import SettingError
from .._url import wyoming_url

__all__ = ["CANCEL_PHRASES", "WakeConfig", "WakeConfigError"]

CANCEL_PHRASES: frozenset[str] = frozenset(
    {"cancel", "cancel it", "cancel that", "cancel please", "stop", "stop it", "stop that"}
    | {"never mind", "never mind that", "nevermind"}
)
"""What, said right after an interrupting wake word, stops the speech (py-tars' list)."""


DEFAULT_WORDS: dict[str, str] = {"tars": "T AA R Z", "tars(2)": "T AA Z"}
"""The default phrase's pronunciations: American ``tars`` and the non-rhotic (British) one."""


class WakeConfigError(SettingError):
    """A setting of the wake service is unusable; names the field and what was expected."""

    prefix = "wake config"


def _non_negative(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not isinstance(value, int | float) or value < 0:
        raise WakeConfigError(attribute.name, f"must be a number >= 0, got {value!r}")


def _positive(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not isinstance(value, int | float) or value <= 0:
        raise WakeConfigError(attribute.name, f"must be a number > 0, got {value!r}")


def _threshold(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not isinstance(value, int | float) or not 0 < value < 1:
        raise WakeConfigError(attribute.name, f"must be in (0, 1) (e.g. 1e-20), got {value!r}")


def _phrase(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value.split():
        raise WakeConfigError(attribute.name, f"expected a non-empty phrase, got {value!r}")


def _words(items: Mapping[str, str]) -> dict[str, str]:
    return dict(items)


def _names(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(items)


def _phrases(items: Iterable[str]) -> frozenset[str]:
    return frozenset(items)


def _check_words(_: object, attribute: attrs.Attribute[dict[str, str]], value: dict[str, str]) -> None:
    for word, phones in value.items():
        if not re.fullmatch(r"[a-z']+(\([2-9]\))?", word) or not phones.split():
            raise WakeConfigError(
                f"{attribute.name}[{word!r}]",
                f"expected a lower-case word (or word(2).. for another pronunciation) and its phones, got {phones!r}",
            )


@attrs.frozen(kw_only=True)
class WakeConfig:
    """How the wake service listens and what it does on a wake word.

    Detection is pocketsphinx keyphrase spotting: ``threshold`` is the spotter's detection
    threshold (default 1e-30; smaller: more detections, so more false accepts and fewer false rejects;
    ``benchmarks/wake.py`` measures both on espeak-ng speech, docs/performance.md). Words of
    ``phrase`` must be in pocketsphinx's dictionary or in ``words`` (``{"tars": "T AA R Z", "tars(2)": "T AA Z"}``,
    phones of the CMU set).

    The timers are py-tars' wake-activation's: ``idle_timeout`` after a wake word, a
    ``wake/event`` ``timeout`` (0: none); ``interrupt_window`` after a wake word that
    interrupted speech (the speech is paused), ``resume`` and the speech goes on unless the
    user said something (a :data:`CANCEL_PHRASES` phrase stops it).
    """

    phrase: str = attrs.field(default="hey tars", validator=_phrase)
    threshold: float = attrs.field(default=1e-30, validator=_threshold)
    words: dict[str, str] = attrs.field(
        factory=lambda: dict(DEFAULT_WORDS), converter=_words, validator=_check_words
    )
    """Pronunciations added to the dictionary (word -> phones); ``word(2)``, ``word(3)``.. are
    further pronunciations of ``word`` (after it), each spotted as a keyphrase of its own."""
    min_retrigger: float = attrs.field(default=1.0, validator=_non_negative)
    """Seconds after a detection during which another is ignored."""
    idle_timeout: float = attrs.field(default=3.0, validator=_non_negative)
    interrupt_window: float = attrs.field(default=2.5, validator=_non_negative)
    chunk_seconds: float = attrs.field(default=0.1, validator=_positive)
    """Audio per call into the spotter's thread."""
    cancel_phrases: frozenset[str] = attrs.field(default=CANCEL_PHRASES, converter=_phrases)
    url: str | None = attrs.field(default=None, validator=wyoming_url(WakeConfigError))
    """A Wyoming wake server (``tcp://host:10400``, e.g. openWakeWord) to detect instead of
    pocketsphinx (:class:`~trioworks.services.wake.WyomingWake`, listening for
    ``wyoming_names``); None: pocketsphinx spotting of ``phrase``."""
    wyoming_names: tuple[str, ...] = attrs.field(default=(), converter=_names)
    """The wake word models the Wyoming server listens for (empty: its own)."""

    @property
    def idle_timeout_ms(self) -> int | None:
        """``wake/mic`` ``ttl_ms`` (py-tars: the idle timeout; None when there is none)."""
        return int(self.idle_timeout * 1000) if self.idle_timeout > 0 else None

    def asdict(self) -> dict[str, Any]:
        return attrs.asdict(self)
