"""``trioworks demo``, section 3: one voice turn, a WAV question in and a WAV answer out.

The five voice services run on the in-process bus of this process (:func:`._voice_turn.ask`, the
code ``trioworks services ask`` runs): memory is seeded with a few facts, espeak-ng speaks the
question into a WAV file, stt transcribes it, the router asks the llm (offline rules, with RAG
through memory), and the tts speaks the answer into a WAV file. :func:`voice_highlights` judges
what the turn showed; it is a pure function of a :class:`VoiceRun`, so a test can change one
fact of a real run and see the one highlight about it turn false.
"""

from __future__ import annotations

import array
import tempfile
import wave
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import trio
from rich.text import Text

from ..core import single_error
from ..services import find_program
from ..services.llm import LLMConfig
from ..services.stt import SttConfig
from ._install_model import install_on_first_run
from ._streams import Streams
from ._voice_stack import VoiceSettings, prepare_process
from ._voice_turn import TurnResult, ask

if TYPE_CHECKING:
    from ._demo import Highlight

__all__ = ["FACTS", "QUESTION", "VoiceRun", "voice_highlights", "voice_section"]

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
"""Where the question and the spoken reply are left, to listen to after the demo."""


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


async def _speak_question(wav: Path) -> None:
    """The question as a WAV file: espeak-ng, then sox pads silence around it (as a mic hears it)."""
    raw = wav.with_suffix(".raw.wav")
    espeak, sox = find_program("espeak-ng"), find_program("sox")
    await trio.run_process([espeak, "-v", VOICE, "-s", "150", "-w", str(raw), QUESTION], capture_stderr=True)
    await trio.run_process([sox, "-D", str(raw), str(wav), "pad", "0.5", "1.0"], capture_stderr=True)


async def _run(settings: VoiceSettings, wav: Path) -> TurnResult:
    await _speak_question(wav)
    return await ask(settings, wav, limit=TURN_LIMIT)


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


def voice_section(io: Streams, bar: bool) -> list[Highlight]:
    """The section: seed, speak, run the turn (a few seconds), show it, return the highlights."""
    io.out.print(
        "The voice services (stt, memory, llm, tts, router) on the in-process bus, as\n"
        "`trioworks services ask` runs them. Memory is seeded with three facts;\n"
        f"espeak-ng speaks the question into a WAV file ({VOICE} voice). stt\n"
        f"(pocketsphinx) listens with a grammar of {len(PHRASES)} phrases: its general model\n"
        "transcribes espeak-ng's synthetic voice poorly, a grammar makes it exact.\n"
        "The llm is the built-in offline backend: rules, not a language model; with\n"
        "RAG context it answers from the best memory.\n"
    )
    prepare_process()
    # A folder of this run's own (two demos at once must not share one); kept for listening.
    audio = Path(tempfile.mkdtemp(prefix="trioworks-demo-voice-"))
    wav = audio / "question.wav"
    for fact in FACTS:
        io.out.print(Text("  remembered  ", style="dim") + Text(fact))
    with tempfile.TemporaryDirectory(prefix="trioworks-demo-memory-") as data:
        try:
            try:
                turn = trio.run(_run, _settings(Path(data), audio), wav)
            except Exception as exc:
                if not install_on_first_run(single_error(exc), io):
                    raise
                turn = trio.run(_run, _settings(Path(data), audio), wav)  # the weights are there now
        except Exception as exc:  # a missing program or model: one false highlight that names it
            error = single_error(exc)
            # A missing model or extra says what to install; anything else is named by its type.
            missing = type(error).__name__ == "ModelNotInstalled" or isinstance(error, ModuleNotFoundError)
            problem = str(error) if missing else f"{type(error).__name__}: {error}"
            return voice_highlights(VoiceRun(turn=TurnResult(), problem=problem))
    seconds, peak = _audio(turn.reply_paths)
    run = VoiceRun(turn=turn, reply_seconds=seconds, reply_peak=peak, problem=turn.problem)
    _show(run, wav, io)
    return voice_highlights(run)


def _show(run: VoiceRun, wav: Path, io: Streams) -> None:
    turn = run.turn
    rows = [("question", f"{QUESTION!r} spoken into {wav}")]
    rows.append(("transcript", turn.transcript or "(none)"))
    for i, hit in enumerate(turn.used_hits):
        rows.append(("memory" if i == 0 else "", f"{hit.score:.4f}  {hit.document.get('text', '')}"))
    rows.append(("answer", f"{turn.answer} ({turn.provider})" if turn.answer else "(none)"))
    for path in turn.reply_paths:
        rows.append(("reply", f"{path} ({run.reply_seconds:.1f} s of audio)"))
    for label, value in rows:
        io.out.print(Text(f"  {label:<11} ", style="bold") + Text(value))


def voice_highlights(run: VoiceRun) -> list[Highlight]:
    """The section's claims, each checked against ``run``."""
    from ._demo import Highlight  # here, not at the top: _demo imports this module for SECTIONS

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
