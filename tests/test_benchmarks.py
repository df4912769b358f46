"""Smoke test of benchmarks/voice.py: its ``--quick`` run works end to end and its rows say what they claim.

Real programs (espeak-ng, sox, mosquitto) and pocketsphinx; the hashing embedder instead of MiniLM
to keep it to about 15 s. Numbers are not checked against targets here (the machine is shared);
what is checked is that each section ran and that the baseline reproduces the original's bug.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parents[1]


async def test_voice_benchmark_quick_run(
    espeak_ng: str, sox: str, mosquitto_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "voice.json"
    command = [
        sys.executable,
        str(ROOT / "benchmarks" / "voice.py"),
        "--quick",
        "--fake-embedder",
        "--baseline-timeout",
        "0.2",
        "--json",
        str(out),
    ]
    with trio.fail_after(120):
        result = await trio.run_process(
            command, cwd=ROOT, capture_stdout=True, capture_stderr=True, check=False
        )
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    printed = result.stdout.decode()
    assert "| measurement | trioworks |" in printed

    numbers = json.loads(out.read_text())
    assert numbers["skipped"] == {}
    for transport in ("rag_in_process", "rag_mqtt"):
        rag, baseline = numbers[transport]["rag"], numbers[transport]["baseline"]
        assert rag["with_context"] == rag["n"] == 20
        # The single dispatch loop cannot deliver memory/results while its handler waits for them.
        assert baseline["rag_timeouts"] == baseline["n"] == 2
        assert baseline["with_context"] == 0
        assert baseline["p50_ms"] >= 200
    turn = numbers["turn_grammar"]
    assert turn["answered"] == turn["trials"] == 1
    assert turn["heard_right"] == 1
    stages = turn["median_stage_ms"]
    assert list(stages) == [
        "stt_final",
        "llm_request",
        "first_delta",
        "first_say",
        "speaking_start",
        "first_audio",
    ]
    assert list(stages.values()) == sorted(stages.values())
    assert set(numbers["lag"]) == {
        "stt_grammar_thread",
        "stt_language_model_process",
        "embedding",
        "stt_and_embedding",
    }
    assert {(row["system"], row["qos"]) for row in numbers["bus"]} == {
        (system, qos) for system in ("bus in-process", "bus mqtt", "moat client") for qos in (0, 1)
    }
    assert numbers["memory"]["restart"]["documents"] == 300 + 5  # the corpus + one utterance per query
