"""The voice services benchmark (issue 5 §4): one command, one table, each row against its target.

    python benchmarks/voice.py [--quick] [--only rag,turn,bus,lag,memory] [--json PATH] [sizes...]

Sections (all by default):

- ``rag``: RAG round trip p50/p99, ``llm/request`` (use_rag) -> ``memory/query`` ->
  ``memory/results`` -> ``llm/response``, and the ``memory/query`` round trip alone, in process
  and over mosquitto (started here on a free port), next to py-tars' single-dispatch-loop design
  reproduced on the same bus (``_voice_rag.SingleLoopLLM``; short RAG timeout, see
  ``--baseline-timeout``). Target: RAG p99 < 100 ms in process.
- ``turn``: end of speech -> first TTS audio, espeak-ng question -> stt -> router -> llm
  (offline, RAG) -> tts, real models (``_voice_turn``). Target < 800 ms.
- ``bus``: bus throughput QoS 0/1 next to a plain moat-lib-mqtt loop (``benchmarks/bus.py``).
- ``lag``: worst Trio loop lag during STT transcription and embedding (``_voice_lag``). Target
  < 50 ms (aim < 10 ms).
- ``memory``: the memory service at 10,000 documents (``benchmarks/voice_memory.py``).

Real all-MiniLM-L6-v2 unless ``--fake-embedder`` (a hashing bag of words: plumbing only, for the
smoke test). Needs espeak-ng and sox for ``turn``/``lag`` and mosquitto for the MQTT rows; what
cannot run is skipped and says why.
"""

from __future__ import annotations

import os

# One BLAS thread per embedding call (docs/memory.md); must precede numpy's import.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import gc
import json
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

import attrs
import trio

import bus as bus_benchmark
from _voice_common import QUESTIONS, LagProbe, in_process, load_embedder, over_mqtt
from _voice_lag import bench_lag
from _voice_rag import bench_rag
from _voice_table import table
from _voice_turn import bench_turns, programs_missing, speak_question
from trioworks.services.router import RouterConfig
from trioworks.services.stt import SttConfig
from voice_memory import bench_memory, utterances

SECTIONS = ("rag", "turn", "bus", "lag", "memory")
QUICK = {
    "rag_requests": 20,
    "baseline_requests": 2,
    "rag_docs": 20,
    "turns": 1,
    "lag_docs": 64,
    "memory_docs": 300,
    "memory_queries": 5,
    "bus_messages": 300,
}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--quick", action="store_true", help="small sizes, one voice-turn variant: a smoke run")
    add("--only", default=",".join(SECTIONS), help=f"comma-separated sections of {', '.join(SECTIONS)}")
    add("--fake-embedder", action="store_true", help="hashing embedder instead of MiniLM (plumbing only)")
    add(
        "--no-mqtt", action="store_true", help="skip the RAG rows over mosquitto (bus.py runs its own broker)"
    )
    add("--rag-requests", type=int, default=200, help="round trips per RAG row")
    add("--rag-docs", type=int, default=200, help="filler documents in memory for the RAG rows")
    add("--baseline-requests", type=int, default=5)
    add("--baseline-timeout", type=float, default=0.5, help="the baseline's RAG timeout (the original: 5 s)")
    add("--turns", type=int, default=5, help="spoken questions per end-of-speech row")
    add("--word-delay", type=float, default=0.03, help="offline llm's pause per word (its default)")
    add("--lag-docs", type=int, default=256, help="documents embedded in the loop-lag phase")
    add("--memory-docs", type=int, default=10_000)
    add("--memory-queries", type=int, default=30)
    add("--bus-messages", type=int, default=5000)
    add("--json", type=Path, help="also write every number as JSON here")
    add("--render", type=Path, metavar="JSON", help="only print the table of an earlier --json file")
    args = parser.parse_args(argv)
    if args.quick:
        for name, value in QUICK.items():
            if f"--{name.replace('_', '-')}" not in (argv if argv is not None else sys.argv):
                setattr(args, name, value)
    args.sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown:
        parser.error(
            f"--only: unknown section(s) {', '.join(unknown)}; expected some of {', '.join(SECTIONS)}"
        )
    return args


async def _run(args: argparse.Namespace, mqtt_url: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"skipped": {}}
    lag = LagProbe()
    missing = programs_missing()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lag.tick)
        embedder = await load_embedder(args.fake_embedder)
        out["embedder"] = embedder.name
        filler = utterances(max(args.rag_docs, args.lag_docs))
        if "rag" in args.sections:
            transports = [("in_process", in_process())]
            if mqtt_url is not None:
                transports.append(("mqtt", over_mqtt(mqtt_url)))
            for name, make in transports:
                print(f"rag: {name}", flush=True)
                out[f"rag_{name}"] = await bench_rag(
                    make,
                    embedder,
                    filler[: args.rag_docs],
                    requests=args.rag_requests,
                    baseline_requests=args.baseline_requests,
                    baseline_timeout=args.baseline_timeout,
                    lag=lag,
                )
        if missing and {"turn", "lag"} & set(args.sections):
            out["skipped"]["turn, lag"] = missing
        elif {"turn", "lag"} & set(args.sections):
            await _speech_sections(args, out, embedder, filler, lag)
        if "bus" in args.sections:
            print("bus throughput (benchmarks/bus.py)", flush=True)
            out["bus"] = await bus_benchmark._run(args.bus_messages)
        nursery.cancel_scope.cancel()
    if "memory" in args.sections:  # last: the long one, with its own ticker
        print(f"memory at {args.memory_docs} documents (benchmarks/voice_memory.py)", flush=True)
        gc.collect()
        gc.freeze()  # as a services entry point does once started (docs/memory.md), like the phases above
        out["memory"] = await bench_memory(args.memory_docs, args.memory_queries, 64, args.fake_embedder)
        gc.unfreeze()
    return out


async def _speech_sections(
    args: argparse.Namespace, out: dict[str, Any], embedder: Any, filler: list[str], lag: LagProbe
) -> None:
    with tempfile.TemporaryDirectory(prefix="voice-bench-") as tmp:
        speech = {q: await speak_question(q, Path(tmp)) for q in QUESTIONS}
        if "turn" in args.sections:
            grammar = SttConfig(phrases=QUESTIONS)
            router = RouterConfig(use_rag=True, rag_k=3)
            variants = [
                ("grammar", grammar, args.word_delay, router),
                ("grammar_no_word_delay", grammar, 0.0, router),
                ("language_model", SttConfig(), args.word_delay, router),
                # Before RouterConfig.first_chunk: the first chunk also waits for 60 characters
                # (the whole first sentence here); shows what speaking the first clause saves.
                (
                    "grammar_whole_first_sentence",
                    grammar,
                    args.word_delay,
                    attrs.evolve(router, first_chunk=60),
                ),
                # What-if: the endpointer deciding on 0.2 s of silence instead of 0.3 s.
                ("grammar_vad_0.2", attrs.evolve(grammar, vad_window=0.2), args.word_delay, router),
            ]
            for name, stt, delay, router_config in variants[:1] if args.quick else variants:
                print(f"end of speech -> first audio: {name}", flush=True)
                out[f"turn_{name}"] = await bench_turns(
                    embedder,
                    stt=stt,
                    word_delay=delay,
                    trials=args.turns,
                    lag=lag,
                    workdir=Path(tmp),
                    router=router_config,
                )
        if "lag" in args.sections:
            print("loop lag during stt and embedding", flush=True)
            if args.quick:  # one question instead of four: 2.5 s of audio
                speech = {QUESTIONS[0]: speech[QUESTIONS[0]]}
            out["lag"] = await bench_lag(speech, embedder, filler[: args.lag_docs], lag=lag)


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    if args.render:
        print(table(json.loads(args.render.read_text(encoding="utf-8"))))
        return
    load = os.getloadavg()[0]
    print(
        f"python {platform.python_version()}, {os.cpu_count()} CPUs, load {load:.2f}, sections {args.sections}"
    )
    # Our own broker (blocking start and stop, outside the Trio run); bus.py starts another for its rows.
    broker = None if args.no_mqtt else bus_benchmark._start_mosquitto()
    try:
        out = trio.run(_run, args, broker[1] if broker else None)
    finally:
        if broker is not None:
            broker[0].terminate()
            broker[0].wait(10)
    if broker is None and not args.no_mqtt:
        out["skipped"]["mqtt"] = "mosquitto not installed or did not start"
    out["load_before"] = load
    print()
    print(f"embedder: {out.get('embedder')}; load average before {load:.2f}, after {os.getloadavg()[0]:.2f}")
    for what, why in out["skipped"].items():
        print(f"skipped {what}: {why}")
    print(table(out))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
