"""The wake service: a wake word in a continuous audio stream (pocketsphinx keyphrase spotting).

- :class:`WakeService`: an audio source in (the stt service's sources), ``wake/event``,
  ``wake/mic`` and ``tts/control`` out, as py-tars' wake-activation publishes them.
- :class:`WakeConfig` (and :exc:`WakeConfigError`): phrase, threshold, timers;
  :data:`CANCEL_PHRASES`.
- :class:`Spotter`: the blocking pocketsphinx spotter (:class:`Detection`), run by the service
  through :class:`ThreadDetector`; any :class:`AsyncDetector` can replace it (a Wyoming server:
  :class:`trioworks.services.wake.WyomingWake`).
"""

from ._config import CANCEL_PHRASES, WakeConfig, WakeConfigError
from ._detector import AsyncDetector, ThreadDetector
from ._service import WakeService
from ._spotter import Detection, Spotter
from ._wyoming import WyomingWake

__all__ = [
    "CANCEL_PHRASES",
    "AsyncDetector",
    "Detection",
    "Spotter",
    "ThreadDetector",
    "WakeConfig",
    "WakeConfigError",
    "WakeService",
    "WyomingWake",
]
