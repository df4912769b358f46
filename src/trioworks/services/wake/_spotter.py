"""The blocking keyphrase spotter: one pocketsphinx Decoder in keyword-spotting mode.

Nothing here is async: :class:`Spotter` is used from one thread at a time (the wake service's
one-slot limiter). Unlike the stt recognizer there is no endpointer: keyword spotting runs over
the whole stream, so a phrase is heard wherever it falls, and as soon as it is heard (not at
the end of the utterance).
"""

from __future__ import annotations

import array
import itertools
import math
import os
import tempfile
from typing import Any

import attrs

from .._audio import STT_RATE, pcm_seconds
from .._sphinx import dictionary_of
from ..stt import VoiceUnavailable
from ._config import WakeConfig, WakeConfigError

__all__ = ["Detection", "Spotter"]


@attrs.frozen
class Detection:
    """The phrase was heard: at ``at`` seconds of audio since the stream began.

    ``score``: 0..1, the decoder's posterior of the hypothesis when it gives one, else 1.
    ``energy``: RMS of the chunk it was heard in, 0..1 of full scale.
    """

    phrase: str
    at: float
    score: float
    energy: float


def _rms(pcm: bytes) -> float:
    samples = array.array("h", pcm[: len(pcm) - len(pcm) % 2])
    if not samples:
        return 0.0
    return math.sqrt(sum(s * s for s in samples) / len(samples)) / 32768


MAX_SPELLINGS = 64
"""The most keyphrases one phrase may expand to (every combination of its words' pronunciations)."""


def _spellings(decoder: Any, words: list[str]) -> list[str]:
    """The phrase once per combination of its words' pronunciations (``tars``, ``tars(2)``, ...).

    pocketsphinx's keyword search uses a word's first pronunciation only, so each alternative
    (``tars(2) T AA Z``, the non-rhotic one) is a keyphrase line of its own in the kws list.
    """
    variants = []
    for word in words:
        forms = [word]
        n = 2
        while decoder.lookup_word(f"{word}({n})") is not None:
            forms.append(f"{word}({n})")
            n += 1
        variants.append(forms)
    if math.prod(len(forms) for forms in variants) > MAX_SPELLINGS:
        raise WakeConfigError(
            "phrase", f"its words have more than {MAX_SPELLINGS} combinations of pronunciations (shorten it)"
        )
    return [" ".join(combination) for combination in itertools.product(*variants)]


class Spotter:
    """Keyphrase spotting over a stream of 16 kHz mono s16le PCM. Blocking; one thread at a time.

    Construction loads the acoustic model (~0.1 s): do it in a thread. Raises
    :exc:`~trioworks.services.wake.WakeConfigError` naming ``phrase`` for a word that has no
    pronunciation, and :exc:`~trioworks.services.stt.VoiceUnavailable` without pocketsphinx.
    """

    def __init__(self, config: WakeConfig) -> None:
        try:
            import pocketsphinx as ps
        except ImportError:
            raise VoiceUnavailable(
                "the wake service needs pocketsphinx: pip install 'trioworks[voice]'"
            ) from None
        self.config = config
        self.phrase = " ".join(config.phrase.lower().split())
        self.spellings: list[str] = []
        """The keyphrases searched for: the phrase in each combination of pronunciations."""
        self._decoder = self._make_decoder(ps, config)
        self._bytes = 0
        self._decoder.start_utt()

    def _make_decoder(self, ps: Any, config: WakeConfig) -> Any:
        small_dict = dictionary_of(ps.Config()["dict"], [self.phrase])
        try:
            with open(small_dict, "a", encoding="utf-8") as f:
                f.writelines(f"{word} {' '.join(phones.split())}\n" for word, phones in config.words.items())
            try:
                decoder = ps.Decoder(samprate=STT_RATE, loglevel="FATAL", lm=None, dict=small_dict)
            except (RuntimeError, ValueError) as exc:
                raise WakeConfigError("words", f"pocketsphinx could not load them ({exc})") from None
        finally:
            os.unlink(small_dict)
        lost = [w for w in config.words if decoder.lookup_word(w) is None]
        if lost:  # pocketsphinx drops an alternative whose first pronunciation it lacks
            raise WakeConfigError(
                f"words[{lost[0]!r}]",
                f"another pronunciation of {lost[0].split('(')[0]!r}, which has no first one (add it before)",
            )
        unknown = [w for w in self.phrase.split() if decoder.lookup_word(w) is None]
        if unknown:
            raise WakeConfigError(
                "phrase",
                f"words not in the pronunciation dictionary: {', '.join(unknown)} (add them to words)",
            )
        self.spellings = _spellings(decoder, self.phrase.split())
        fd, path = tempfile.mkstemp(suffix=".kws", text=True)
        try:
            with os.fdopen(fd, "w") as f:
                f.writelines(f"{spelling} /{config.threshold:g}/\n" for spelling in self.spellings)
            decoder.add_kws("wake", path)
        finally:
            os.unlink(path)
        decoder.activate_search("wake")
        return decoder

    def feed(self, pcm: bytes) -> Detection | None:
        """Feed any amount of audio; the detection it completed, if any (then the search restarts)."""
        self._decoder.process_raw(pcm, False, False)
        self._bytes += len(pcm)
        hyp = self._decoder.hyp()
        if hyp is None or not hyp.hypstr.strip():
            return None
        self._decoder.end_utt()
        score = float(hyp.prob) if 0 < hyp.prob <= 1 else 1.0
        detection = Detection(self.phrase, pcm_seconds(self._bytes, STT_RATE), score, _rms(pcm))
        self._decoder.start_utt()
        return detection

    def reset(self) -> None:
        """Forget the audio heard so far (a restart of the search)."""
        self._decoder.end_utt()
        self._decoder.start_utt()

    def close(self) -> None:
        self._decoder.end_utt()
