"""The demo's section 3, judged: each voice highlight turns false with the fact it claims.

A real run of the section (espeak-ng, pocketsphinx, MiniLM) is in tests/cli/test_services_cli.py.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from trioworks.bus import MemoryResult
from trioworks.demo import FACTS, QUESTION, VoiceRun, voice_highlights
from trioworks.services import TurnResult

FACT = FACTS[0]


def _good() -> VoiceRun:
    turn = TurnResult(
        transcript=QUESTION,
        turn_id="t1",
        rag_asked=True,
        hits=(MemoryResult(document={"text": FACT}, score=0.03),),
        rag_seconds=0.02,
        answer=f"From memory: {FACT}",
        provider="offline",
        reply_paths=(Path("/tmp/reply.wav"),),
        spoken=f"From memory: {FACT}",
        first_audio=0.15,
    )
    return VoiceRun(turn=turn, reply_seconds=2.0, reply_peak=20000)


@pytest.mark.parametrize(
    ("change", "false_one"),
    [
        (lambda r: attrs.evolve(r, turn=attrs.evolve(r.turn, transcript="where does my sister leave")), 0),
        (lambda r: attrs.evolve(r, turn=attrs.evolve(r.turn, hits=())), 1),
        (lambda r: attrs.evolve(r, turn=attrs.evolve(r.turn, rag_seconds=None)), 2),
        (lambda r: attrs.evolve(r, reply_peak=0), 3),
        (lambda r: attrs.evolve(r, turn=attrs.evolve(r.turn, spoken="From memory:")), 3),
        (
            lambda r: attrs.evolve(r, turn=attrs.evolve(r.turn, first_audio=0.4)),
            4,
        ),  # 0.4 + ~0.5 endpointing > 0.8
    ],
)
def test_each_voice_highlight_turns_false_with_its_fact(change, false_one: int) -> None:
    assert all(h.ok for h in voice_highlights(_good()))
    verdicts = [h.ok for h in voice_highlights(change(_good()))]
    assert verdicts == [i != false_one for i in range(5)]


def test_a_turn_that_did_not_complete_is_one_false_highlight() -> None:
    [highlight] = voice_highlights(attrs.evolve(_good(), problem="waited 30 s for the tts in vain"))
    assert not highlight.ok and "waited 30 s for the tts in vain" in highlight.text
