"""The stt service: voice activity detection and offline transcription (pocketsphinx).

- :class:`SttService`: an audio source in, ``stt/partial`` and ``stt/final`` out; honours ``wake/mic``.
- :class:`SttConfig` (and :exc:`SttConfigError`): language model, JSGF grammar, phrases or
  keyphrases; VAD and partial timing.
- Sources (async iterators of 16 kHz mono s16le chunks): :func:`wav_source`, :func:`pcm_source`,
  :func:`stream_source`, :func:`mic_source`.
- :class:`Recognizer`: the blocking VAD + decoder, usable on its own (in a thread); run by the
  service through :class:`ThreadRecognizer` or, for language models, :class:`ProcessRecognizer`.

pocketsphinx is imported only when a :class:`Recognizer` is made (``pip install 'trioworks[voice]'``).
"""

from .._audio import AudioError, ProgramMissing
from ._backends import AsyncRecognizer, ProcessRecognizer, RecognizerDied, ThreadRecognizer, open_recognizer
from ._config import SttConfig, SttConfigError
from ._recognizer import Recognition, Recognizer, VoiceUnavailable, grammar_for
from ._service import SttService
from ._sources import AudioSource, mic_source, pcm_source, stream_source, wav_source
from ._wyoming import WyomingRecognizer

__all__ = [
    "AsyncRecognizer",
    "AudioError",
    "AudioSource",
    "ProcessRecognizer",
    "ProgramMissing",
    "Recognition",
    "Recognizer",
    "RecognizerDied",
    "SttConfig",
    "SttConfigError",
    "SttService",
    "ThreadRecognizer",
    "VoiceUnavailable",
    "WyomingRecognizer",
    "grammar_for",
    "mic_source",
    "open_recognizer",
    "pcm_source",
    "stream_source",
    "wav_source",
]
