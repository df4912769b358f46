"""The Wyoming protocol (Trio, TCP): better engines where the user has them.

The Wyoming protocol is what local voice servers speak (faster-whisper, piper, openWakeWord).
Give a service a server URL (``tcp://host:10300``) and it uses it instead of the offline
default (pocketsphinx for stt and wake, espeak-ng for tts):

- :class:`~trioworks.services.stt.WyomingRecognizer` for the stt service (``SttService(recognizer=...)``);
- :class:`~trioworks.services.tts.WyomingSynthesizer` for the tts service (``TtsService(synthesizer=...)``);
- :class:`~trioworks.services.wake.WyomingWake` for the wake service (``WakeService(detector=...)``).

Each client lives in its service's package (it builds that service's results); this package is the
protocol alone, so the services import it and it imports none of them.

The protocol (:class:`WyomingConnection`, :class:`WyomingEvent`, :func:`connect`,
:func:`describe`) is written here on Trio; :exc:`WyomingError` names the server's URL.
"""

from ._protocol import (
    AUDIO_FORMAT,
    WyomingConnection,
    WyomingError,
    WyomingEvent,
    connect,
    describe,
    parse_url,
)

__all__ = [
    "AUDIO_FORMAT",
    "WyomingConnection",
    "WyomingError",
    "WyomingEvent",
    "connect",
    "describe",
    "parse_url",
]
