"""The demo's section 3, run: one voice turn, a WAV question in and a WAV answer out.

The five voice services run on the in-process bus (:func:`trioworks.services.ask_once`, the code
``trioworks services ask`` runs): memory is seeded with :data:`FACTS`, espeak-ng speaks
:data:`QUESTION` into a WAV file, stt transcribes it, the router asks the llm (offline rules, with
RAG through memory), and the tts speaks the answer into a WAV file. :func:`voice_highlights` judges
what the turn showed; it is a pure function of a :class:`VoiceRun`, so a test can change one fact
of a real run and see the one highlight about it turn false.
"""

from __future__ import annotations

import array
import wave
from pathlib import Path

import attrs
import trio

from ..services import TurnResult, VoiceSettings, ask_once, find_program
from ..services.llm import LLMConfig
from ..services.stt import SttConfig
from ._highlight import Highlight

__all__ = ["FACTS", "PHRASES", "QUESTION", "VOICE", "VoiceRun", "ask_question", "voice_highlights"]

FACTS = (
    "My sister lives in Bergen.",
    "The boiler was serviced in May.",
    "The spare key is under the blue flower pot.",
)
ANSWERING_FACT = FACTS[0]
QUESTION = "where does my sister live"
# The grammar stt listens with: the question among a few others (every word is in the dictionary).
PHRASES = (QUESTION, "when was the boiler serviced", "where is the spare key", "what time is it")
VOICE = "en-us+klatt"  # the espeak-ng voice pocketsphinx hears best (notes/voice-research.md)
TURN_LIMIT = 30.0  # seconds the whole turn may take before the section gives up
RAG_DEADLINE = 5.0  # the llm's memory/query deadline (the spec's), past which it answers blind
FIRST_AUDIO_TARGET = 0.8  # seconds, end of speech -> first audio (issue 5's target)
ENDPOINTING = 0.5
"""Seconds the recogniser takes, after the end of speech, to decide the utterance is over (its 0.3 s
silence window plus a 0.1 s chunk, measured ~0.5 s by benchmarks/voice.py). It comes before
``stt/final``, so the services after it have what is left of the target."""


@attrs.frozen(kw_only=True)
class VoiceRun:
    """What the section saw: the turn, and the reply's audio as read back from its file."""

    turn: TurnResult
    question: str = QUESTION
    fact: str = ANSWERING_FACT
    reply_seconds: float = 0.0
    """Audio in the reply's WAV file(s)."""
    reply_peak: int = 0
    """Largest absolute sample in them (0: silence)."""
    problem: str | None = None

    @classmethod
    def of(cls, turn: TurnResult) -> VoiceRun:
        """The run of ``turn``, its reply's audio read back from the WAV file(s): blocking file
        reads, so call it outside the Trio loop (or in a thread)."""
        seconds, peak = _audio(turn.reply_paths)
        return cls(turn=turn, reply_seconds=seconds, reply_peak=peak, problem=turn.problem)


async def _speak_question(wav: Path) -> None:
    """The question as a WAV file: espeak-ng, then sox pads silence around it (as a mic hears it)."""
    raw = wav.with_suffix(".raw.wav")
    espeak, sox = find_program("espeak-ng"), find_program("sox")
    await trio.run_process([espeak, "-v", VOICE, "-s", "150", "-w", str(raw), QUESTION], capture_stderr=True)
    await trio.run_process([sox, "-D", str(raw), str(wav), "pad", "0.5", "1.0"], capture_stderr=True)


async def ask_question(audio_dir: Path, data_dir: Path) -> TurnResult:
    """Speak :data:`QUESTION` into ``audio_dir/question.wav`` and ask it of the whole stack, in
    process, with :data:`FACTS` remembered in a memory store in ``data_dir`` (both folders exist);
    the reply is spoken into WAV files in ``audio_dir``.

    Errors: a missing program (``ProgramMissing``: espeak-ng, sox) or model (``ModelNotInstalled``)
    propagates; a turn that stops short says why in ``TurnResult.problem``.
    """
    wav = audio_dir / "question.wav"
    await _speak_question(wav)
    return await ask_once(_settings(data_dir, audio_dir), wav, limit=TURN_LIMIT)


def _audio(paths: tuple[Path, ...]) -> tuple[float, int]:
    seconds, peak = 0.0, 0
    for path in paths:
        with wave.open(str(path), "rb") as reply:
            frames = reply.readframes(reply.getnframes())
            seconds += reply.getnframes() / reply.getframerate()
        samples = array.array("h", frames)
        peak = max(peak, max((abs(s) for s in samples), default=0))
    return seconds, peak


def _settings(data: Path, audio: Path) -> VoiceSettings:
    return VoiceSettings(
        bus="memory",
        data_dir=data,
        audio_dir=audio,
        llm=LLMConfig(),  # the offline rules: not a language model
        stt=SttConfig(phrases=PHRASES),
        voice="en-us",
        realtime=False,  # a WAV file needs no pacing
        remember=FACTS,
    )


def voice_highlights(run: VoiceRun) -> list[Highlight]:
    """The section's claims, each checked against ``run``."""
    if run.problem is not None:
        return [Highlight(f"the voice turn completes ({run.problem})", False)]
    turn = run.turn
    top = next(iter(turn.used_hits), None)
    top_text = str(top.document.get("text", "")) if top is not None else None
    rag = turn.rag_seconds
    first = turn.first_audio
    return [
        Highlight(
            f"stt transcribed the spoken question exactly: {turn.transcript!r}",
            turn.transcript == run.question,
        ),
        Highlight(
            f"RAG: the router's llm/request made the llm query memory, whose best hit is the right fact "
            f"({top_text!r}) and the answer says it: {turn.answer!r}",
            top_text == run.fact and turn.answer == f"From memory: {run.fact}",
        ),
        Highlight(
            f"no RAG timeout: memory answered the llm's query in {rag * 1000:.0f} ms while the turn's other "
            f"messages flowed (deadline {RAG_DEADLINE:g} s; the original's single dispatch loop always hit it)"
            if rag is not None
            else "no RAG timeout (memory never answered the llm's query)",
            rag is not None and rag < RAG_DEADLINE,
        ),
        Highlight(
            f"the reply was spoken into {len(turn.reply_paths)} WAV file(s) holding {run.reply_seconds:.1f} s of "
            f"audio (peak sample {run.reply_peak}), the whole answer and nothing else",
            len(turn.reply_paths) >= 1
            and run.reply_seconds > 0.5
            and run.reply_peak > 1000
            and " ".join(turn.spoken.split()) == " ".join((turn.answer or "").split()),
        ),
        Highlight(
            f"transcript (stt/final) -> first audio (tts speaking_start): {first * 1000:.0f} ms, within the "
            f"{(FIRST_AUDIO_TARGET - ENDPOINTING) * 1000:.0f} ms that the < {FIRST_AUDIO_TARGET * 1000:.0f} ms "
            f"end-of-speech target leaves after the recogniser's ~{ENDPOINTING * 1000:.0f} ms end-of-speech window "
            "(benchmarks/voice.py measures the whole path from the end of the audio)"
            if first is not None
            else "transcript -> first audio (no speaking_start seen)",
            first is not None and first < FIRST_AUDIO_TARGET - ENDPOINTING,
        ),
    ]
