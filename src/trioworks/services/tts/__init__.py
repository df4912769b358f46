"""The tts service: espeak-ng synthesis, played on a device or written to WAV files.

- :class:`TtsService`: ``tts/say`` in (chunks aggregated by ``utt_id``), ``tts/status`` out;
  ``tts/control`` pause / resume / stop / mute / unmute act during playback; ``llm/cancel`` and
  :meth:`TtsService.stop` stop the speech of one ``utt_id``.
- :class:`TtsConfig` (and :exc:`TtsConfigError`): voice, speed, pitch, player, output directory.
- Outputs: :class:`WavSink` (files), :class:`CommandSink` (a player process such as aplay).
"""

from .._audio import AudioError, ProgramMissing
from ._clock import PlaybackClock
from ._config import DEFAULT_OUT_DIR, TtsConfig, TtsConfigError
from ._service import TtsService
from ._sinks import CommandSink, Output, Sink, WavSink, detect_player
from ._synth import Synthesis, SynthesisError, Synthesizer, synthesize
from ._wyoming import WyomingSynthesizer

__all__ = [
    "DEFAULT_OUT_DIR",
    "AudioError",
    "CommandSink",
    "Output",
    "PlaybackClock",
    "ProgramMissing",
    "Sink",
    "Synthesis",
    "SynthesisError",
    "Synthesizer",
    "TtsConfig",
    "TtsConfigError",
    "TtsService",
    "WavSink",
    "WyomingSynthesizer",
    "detect_player",
    "synthesize",
]
