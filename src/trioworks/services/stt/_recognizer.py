"""The blocking recognizer: pocketsphinx's Endpointer (VAD) in front of one Decoder.

Nothing here is async. :class:`Recognizer` is used from one thread at a time (the service's
decoder limiter has one slot). pocketsphinx's Cython calls hold the GIL while they run, so
:meth:`Recognizer.feed` hands the decoder one 30 ms endpointer frame per call: between calls the
Trio loop gets the GIL back, which is what keeps the loop responsive while decoding.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterable
from typing import Any, Literal

import attrs

from .._audio import STT_RATE, pcm_seconds
from .._sphinx import dictionary_of
from ._config import SttConfig, SttConfigError

__all__ = ["Recognition", "Recognizer", "VoiceUnavailable", "grammar_for"]


class VoiceUnavailable(RuntimeError):
    """pocketsphinx is not installed (it is the ``voice`` extra of trioworks)."""


@attrs.frozen
class Recognition:
    """One recognizer result: a partial or final hypothesis of utterance ``utt_id``.

    ``start``/``end`` are seconds of audio since the stream began; ``confidence`` is the
    decoder's posterior probability of the hypothesis (0..1), ``None`` for partials.
    """

    kind: Literal["partial", "final"]
    text: str
    utt_id: str
    start: float
    end: float
    confidence: float | None = None


def grammar_for(phrases: tuple[str, ...]) -> str:
    """A JSGF grammar accepting exactly ``phrases`` (lower-cased, whitespace-normalised)."""
    alternatives = " | ".join(f"( {' '.join(p.lower().split())} )" for p in phrases)
    return f"#JSGF V1.0;\ngrammar trioworks;\npublic <utterance> = {alternatives};\n"


def _import_pocketsphinx() -> Any:  # the module; pocketsphinx has no type information
    try:
        import pocketsphinx
    except ImportError:
        raise VoiceUnavailable("the stt service needs pocketsphinx: pip install 'trioworks[voice]'") from None
    return pocketsphinx


class Recognizer:
    """VAD + decoder over a stream of 16 kHz mono s16le PCM. Blocking; one thread at a time.

    Construction loads the model (0.1–0.7 s): do it in a thread. Raises :exc:`SttConfigError`
    naming the field for an unusable grammar, model path or out-of-dictionary word, and
    :exc:`VoiceUnavailable` without pocketsphinx.
    """

    def __init__(self, config: SttConfig) -> None:
        ps = _import_pocketsphinx()
        self.config = config
        self._decoder = self._make_decoder(ps, config)
        modes = {
            "loose": ps.Vad.LOOSE,
            "medium_loose": ps.Vad.MEDIUM_LOOSE,
            "medium_strict": ps.Vad.MEDIUM_STRICT,
            "strict": ps.Vad.STRICT,
        }
        self._endpointer_args = {
            "window": config.vad_window,
            "ratio": config.vad_ratio,
            "vad_mode": modes[config.vad_mode],
            "sample_rate": STT_RATE,
        }
        self._ps = ps
        self._endpointer = ps.Endpointer(**self._endpointer_args)
        self._pending = bytearray()  # less than one endpointer frame, waiting for more
        self._utt_id: str | None = None
        self._utt_bytes = 0
        self._last_partial = 0.0

    @staticmethod
    def _make_decoder(ps: Any, config: SttConfig) -> Any:
        kwargs: dict[str, object] = {"samprate": STT_RATE, "loglevel": "FATAL"}
        for field in ("lm_path", "dict_path", "jsgf_path"):
            path = getattr(config, field)
            if path is not None and not os.path.exists(path):
                raise SttConfigError(field, f"{path}: no such file")
        small_dict: str | None = None
        if config.dict_path is not None:
            kwargs["dict"] = str(config.dict_path)
        elif config.phrases or config.keyphrases:
            small_dict = kwargs["dict"] = dictionary_of(
                ps.Config()["dict"], [*config.phrases, *(p for p, _ in config.keyphrases)]
            )
        if config.lm_path is not None:
            kwargs["lm"] = str(config.lm_path)
        elif config.phrases or config.keyphrases or config.jsgf_path:
            kwargs["lm"] = None  # skip loading the general model: 0.1 s instead of 0.7 s
        if config.jsgf_path is not None:
            kwargs["jsgf"] = str(config.jsgf_path)
        try:
            decoder = ps.Decoder(**kwargs)
        except (RuntimeError, ValueError) as exc:
            field = "jsgf_path" if config.jsgf_path else "lm_path" if config.lm_path else "dict_path"
            raise SttConfigError(field, f"pocketsphinx could not load it ({exc})") from None
        finally:
            if small_dict is not None:
                os.unlink(small_dict)
        if config.phrases:
            Recognizer._check_words(decoder, "phrases", config.phrases)
            decoder.add_jsgf_string("phrases", grammar_for(config.phrases))
            decoder.activate_search("phrases")
        elif config.keyphrases:
            Recognizer._check_words(decoder, "keyphrases", [p for p, _ in config.keyphrases])
            fd, path = tempfile.mkstemp(suffix=".kws", text=True)
            try:
                with os.fdopen(fd, "w") as f:
                    for phrase, threshold in config.keyphrases:
                        f.write(f"{' '.join(phrase.lower().split())} /{threshold:g}/\n")
                decoder.add_kws("keyphrases", path)
            finally:
                os.unlink(path)
            decoder.activate_search("keyphrases")
        return decoder

    @staticmethod
    def _check_words(decoder: Any, field: str, phrases: Iterable[str]) -> None:
        for i, phrase in enumerate(phrases):
            unknown = [w for w in phrase.lower().split() if decoder.lookup_word(w) is None]
            if unknown:
                raise SttConfigError(
                    f"{field}[{i}]",
                    f"words not in the pronunciation dictionary: {', '.join(unknown)} "
                    "(add them to a custom dict_path)",
                )

    @property
    def in_utterance(self) -> bool:
        return self._utt_id is not None

    def feed(self, pcm: bytes) -> list[Recognition]:
        """Feed any amount of audio; the partials and finals it completed, in order."""
        out: list[Recognition] = []
        self._pending += pcm
        frame_bytes = self._endpointer.frame_bytes
        while len(self._pending) >= frame_bytes:
            frame = bytes(self._pending[:frame_bytes])
            del self._pending[:frame_bytes]
            self._step(self._endpointer.process(frame), out)
        return out

    def flush(self) -> list[Recognition]:
        """End of the stream: finish an utterance in progress. The recognizer can be fed again."""
        out: list[Recognition] = []
        if self._endpointer.in_speech:
            speech = self._endpointer.end_stream(bytes(self._pending))
            if speech and self._utt_id is not None:
                self._decoder.process_raw(speech)
                self._utt_bytes += len(speech)
        if self._utt_id is not None:
            out.append(self._final())
        self._pending.clear()
        self._endpointer = self._ps.Endpointer(**self._endpointer_args)
        return out

    def reset(self) -> None:
        """Drop the utterance in progress without a result (the microphone was muted)."""
        if self._utt_id is not None:
            self._decoder.end_utt()
            self._utt_id = None
        self._pending.clear()
        self._endpointer = self._ps.Endpointer(**self._endpointer_args)

    def _step(self, speech: bytes | None, out: list[Recognition]) -> None:
        if speech is None:
            return
        if self._utt_id is None:
            self._decoder.start_utt()
            self._utt_id = uuid.uuid4().hex
            self._utt_bytes = 0
            self._last_partial = 0.0
        self._decoder.process_raw(speech)
        self._utt_bytes += len(speech)
        if not self._endpointer.in_speech:
            out.append(self._final())
            return
        spoken = pcm_seconds(self._utt_bytes, STT_RATE)
        if spoken - self._last_partial >= self.config.partial_interval:
            self._last_partial = spoken
            hyp = self._decoder.hyp()
            if hyp is not None and hyp.hypstr.strip():
                start = self._endpointer.speech_start
                text = hyp.hypstr.strip()
                out.append(Recognition("partial", text, self._utt_id, start, start + spoken))

    def _final(self) -> Recognition:
        assert self._utt_id is not None
        self._decoder.end_utt()
        hyp = self._decoder.hyp()
        start = self._endpointer.speech_start
        end = start + pcm_seconds(self._utt_bytes, STT_RATE)
        utt_id, self._utt_id = self._utt_id, None
        text = hyp.hypstr.strip() if hyp is not None else ""  # keyword spotting adds a space
        confidence = float(hyp.prob) if hyp is not None else 0.0
        return Recognition("final", text, utt_id, start, end, confidence)
