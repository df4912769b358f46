"""The Markdown table of benchmarks/voice.py: one row per measurement, with its target and verdict."""

from __future__ import annotations

import math
from typing import Any

Row = tuple[str, str, str, str, str]  # measurement, trioworks, original / reference, target, met?

TURNS = {
    "grammar": "stt grammar (thread), offline llm at its default 30 ms/word",
    "grammar_no_word_delay": "same, offline llm without word pacing",
    "language_model": "stt general model (process), 30 ms/word",
    "grammar_whole_first_sentence": "as the first, router first_chunk 60 (before: the whole first sentence)",
    "grammar_vad_0.2": "what-if: as the first, and stt vad_window 0.2 s",
}
LAG_PHASES = {
    "stt_grammar_thread": "stt transcribing, grammar (decoder thread)",
    "stt_language_model_process": "stt transcribing, general model (decoder process)",
    "embedding": "memory embedding + storing, batches of 64 (MiniLM thread)",
    "stt_and_embedding": "general-model stt and embedding at once",
}


def _ms(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:,.0f} ms"


def _met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def _lag(phase: dict[str, Any]) -> str:
    return f"{phase['worst_lag_ms']:.1f} ms (run queue: {phase['cpu_wait_ms']:.0f} ms of that tick)"


def _lag_met(phase: dict[str, Any], bar: float = 50) -> str:
    """Judged on the raw lag; when only the run-queue wait (other processes) put it over, say so."""
    if phase["worst_lag_ms"] < bar:
        return "yes"
    own = max(0.0, phase["worst_lag_ms"] - phase["cpu_wait_ms"])
    return f"**no**, machine: {own:.0f} ms without the run-queue wait" if own < bar else "**no**"


def _rag_rows(out: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for name, label in (("in_process", "in process"), ("mqtt", "over mosquitto")):
        rag = out.get(f"rag_{name}")
        if rag is None:
            continue
        ours, base, query = rag["rag"], rag["baseline"], rag["memory_query"]
        target = name == "in_process"
        rows.append(
            (
                f"RAG turn {label}: llm/request (use_rag) → memory/query → memory/results → llm/response,"
                f" p50 / p99 of {ours['n']}",
                f"{ours['p50_ms']:.1f} / {ours['p99_ms']:.1f} ms, context in {ours['with_context']}/{ours['n']}",
                f"single dispatch loop: {base['p50_ms']:,.0f} / {base['p99_ms']:,.0f} ms at a"
                f" {base['rag_timeout_s']:g} s RAG timeout, {base['rag_timeouts']}/{base['n']} timed out,"
                f" context in {base['with_context']}/{base['n']} (at the original's 5 s: 5,000 ms)",
                "p99 < 100 ms" if target else "–",
                _met(ours["p99_ms"] < 100 and ours["with_context"] == ours["n"]) if target else "–",
            )
        )
        rows.append(
            (
                f"memory/query → memory/results alone, {label}, p50 / p99",
                f"{query['p50_ms']:.1f} / {query['p99_ms']:.1f} ms",
                "–",
                "–",
                "–",
            )
        )
    return rows


def _turn_rows(out: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for key, label in TURNS.items():
        turn = out.get(f"turn_{key}")
        if turn is None:
            continue
        stages = ", ".join(f"{k} {v:.0f}" for k, v in turn["median_stage_ms"].items())
        diagnostic = key in (
            "grammar_whole_first_sentence",
            "grammar_vad_0.2",
        )  # comparisons, not the product
        rows.append(
            (
                f"end of speech → first TTS audio, {label}: p50 / max of {turn['trials']}",
                f"{_ms(turn['p50_ms'])} / {_ms(turn['max_ms'])}; heard right {turn['heard_right']}/{turn['trials']};"
                f" medians after end of speech (ms): {stages}",
                "–",
                "–" if diagnostic else "< 800 ms",
                "–" if diagnostic else _met(turn["answered"] == turn["trials"] and turn["max_ms"] < 800),
            )
        )
    return rows


def _lag_rows(out: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for key, label in LAG_PHASES.items():
        phase = out.get("lag", {}).get(key)
        if phase is None:
            continue
        if "audio_s" in phase:
            label += f": {phase['audio_s']:.1f} s of audio in {phase['wall_s']:.2f} s"
        elif "docs_per_s" in phase:
            label += f": {phase['documents']} documents, {phase['docs_per_s']:.0f}/s"
        rows.append(
            (
                f"worst loop lag, {label}",
                _lag(phase),
                "–",
                "< 50 ms (aim < 10)",
                _lag_met(phase),
            )
        )
    for key, label in (
        ("stt_grammar_thread", "grammar, thread"),
        ("stt_language_model_process", "general model, process"),
    ):
        phase = out.get("lag", {}).get(key)
        if phase is not None:
            rows.append(
                (
                    f"worst loop lag, stt start-up ({label}: decoder loaded)",
                    _lag(phase["startup"]),
                    "–",
                    "–",
                    "–",
                )
            )
    for key, label in TURNS.items():
        turn = out.get(f"turn_{key}")
        if turn is not None:
            rows.append(
                (
                    f"worst loop lag during the voice turns ({label})",
                    _lag(turn),
                    "–",
                    "< 50 ms",
                    _lag_met(turn),
                )
            )
    return rows


def _bus_rows(out: dict[str, Any]) -> list[Row]:
    return [
        (f"bus throughput, {row['system']}, QoS {row['qos']}", f"{row['msg_per_s']:,} msg/s", "–", "–", "–")
        for row in out.get("bus", [])
    ]


def _memory_rows(out: dict[str, Any]) -> list[Row]:
    memory = out.get("memory")
    if memory is None:
        return []
    docs = f"{memory['config']['docs']:,}"
    ingest, one, restart = memory["ingest"], memory["one_utterance_ingest"], memory["restart"]
    rows: list[Row] = [
        (
            f"memory: ingest {docs} documents (embed + SQLite + BM25), worst lag",
            f"{ingest['total_s']:.1f} s, {ingest['docs_per_s']:.1f} documents/s; {ingest['worst_lag_ms']:.0f} ms",
            "–",
            "–",
            "–",
        )
    ]
    for strategy in ("hybrid", "similarity", "recent"):
        q = memory[f"query_{strategy}"]
        rows.append(
            (
                f"memory: {strategy} query at {docs}, p50 / p95",
                f"{q['p50_ms']:.1f} / {q['p95_ms']:.1f} ms",
                "–",
                "–",
                "–",
            )
        )
    rows.append(
        (
            "memory: one stt/final → searchable, p50 / p95",
            f"{one['p50_ms']:.1f} / {one['p95_ms']:.1f} ms",
            "–",
            "–",
            "–",
        )
    )
    rows.append(
        (
            f"memory: restart on {docs} documents until serving",
            f"{restart['to_serving_ms']:.0f} ms",
            "–",
            "–",
            "–",
        )
    )
    return rows


def table(out: dict[str, Any]) -> str:
    lines = [
        "| measurement | trioworks | original design / reference | target | met? |",
        "|---|---|---|---|---|",
    ]
    for rows in (_rag_rows, _turn_rows, _bus_rows, _lag_rows, _memory_rows):
        lines += ["| " + " | ".join(row) + " |" for row in rows(out)]
    return "\n".join(lines)
