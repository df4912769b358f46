"""Wyoming protocol clients (Trio, TCP): better engines where the user has them.

The Wyoming protocol is what local voice servers speak (faster-whisper, piper, openWakeWord).
Give a service a server URL (``tcp://host:10300``) and it uses it instead of the offline
default (pocketsphinx for stt and wake, espeak-ng for tts):

- :class:`WyomingRecognizer` for the stt service (``SttService(recognizer=...)``);
- :class:`WyomingSynthesizer` for the tts service (``TtsService(synthesizer=...)``);
- :class:`WyomingWake` for the wake service (``WakeService(detector=...)``).

The protocol (:class:`WyomingConnection`, :class:`WyomingEvent`, :func:`connect`,
:func:`describe`) is written here on Trio; :exc:`WyomingError` names the server's URL.
"""

from ._clients import WyomingRecognizer, WyomingSynthesizer, WyomingWake
from ._protocol import WyomingConnection, WyomingError, WyomingEvent, connect, describe, parse_url

__all__ = [
    "WyomingConnection",
    "WyomingError",
    "WyomingEvent",
    "WyomingRecognizer",
    "WyomingSynthesizer",
    "WyomingWake",
    "connect",
    "describe",
    "parse_url",
]
