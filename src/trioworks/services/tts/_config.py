"""Settings of the tts service and the error its bad values raise."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import attrs

from .._settings import SettingError
from .._url import wyoming_url

__all__ = ["DEFAULT_OUT_DIR", "TtsConfig", "TtsConfigError"]

DEFAULT_OUT_DIR = Path(tempfile.gettempdir()) / "trioworks-tts"
"""Where utterances go as WAV files when there is no audio device."""


class TtsConfigError(SettingError):
    """A setting of the tts service is unusable; names the field and what was expected."""

    prefix = "tts config"


def _between(low: float, high: float) -> Callable[[object, attrs.Attribute[Any], Any], None]:
    def check(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            raise TtsConfigError(attribute.name, f"expected a number in [{low}, {high}], got {value!r}")

    return check


def _player(_: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value in ("auto", "wav"):
        return
    if isinstance(value, tuple) and value and all(isinstance(part, str) for part in value):
        return
    raise TtsConfigError(
        attribute.name, f"expected 'auto', 'wav' or a command (tuple of strings), got {value!r}"
    )


@attrs.frozen(kw_only=True)
class TtsConfig:
    """How the tts service speaks.

    ``player``:
      - ``"auto"``: ``aplay`` when it lists a sound card, else ``paplay`` when a PulseAudio
        server answers, else WAV files in ``out_dir``.
      - ``"wav"``: always WAV files, ``<out_dir>/<utt_id>.wav`` (``-2``, ``-3``... if taken).
      - a command (tuple) that plays raw s16le mono PCM from its stdin; ``{rate}`` in an
        argument is replaced by the sample rate, e.g. ``("aplay", "-q", "-t", "raw", "-f",
        "S16_LE", "-c", "1", "-r", "{rate}")``.
    """

    voice: str = "en-us"
    rate_wpm: int = attrs.field(default=170, validator=_between(80, 450))
    pitch: int = attrs.field(default=50, validator=_between(0, 99))
    player: Literal["auto", "wav"] | tuple[str, ...] = attrs.field(default="auto", validator=_player)
    out_dir: Path = attrs.field(default=DEFAULT_OUT_DIR, converter=Path)
    realtime: bool = True
    """Pace output at the audio's own speed, as a device does (WAV files too), so speaking_end,
    pause and stop happen when a listener would hear them. False: as fast as synthesis goes."""
    aggregate_window: float = attrs.field(default=0.15, validator=_between(0, 60))
    """Seconds to wait, after an utterance's last chunk was spoken, for another chunk with the
    same ``utt_id`` before ending it with ``speaking_end``."""
    lead: float = attrs.field(default=0.2, validator=_between(0, 5))
    """Seconds of audio written ahead of the (real-time) playback position."""
    max_queued: int = attrs.field(default=32, validator=_between(1, 10_000))
    """Utterances speaking or waiting at most; a ``tts/say`` starting one more is dropped, with
    ``stopped`` (reason ``queue full``) and the ``tts.say.dropped`` counter."""
    url: str | None = attrs.field(default=None, validator=wyoming_url(TtsConfigError))
    """A Wyoming TTS server (``tcp://host:10200``, e.g. piper) to synthesize instead of espeak-ng
    (:class:`~trioworks.services.tts.WyomingSynthesizer`, with ``wyoming_voice``); None: espeak-ng."""
    wyoming_voice: str | None = None
    """The voice name sent to the Wyoming server (None: its default)."""
    stop_on_llm_cancel: bool = True
    """Subscribe to ``llm/cancel`` and stop the speech whose ``utt_id`` is the cancelled request id."""
