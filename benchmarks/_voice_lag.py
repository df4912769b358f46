"""Worst Trio loop lag while the stt service transcribes and the memory service embeds.

A 5 ms ticker (``_voice_common.LagProbe``) runs beside each phase; the phase's worst lag is the largest
delay of a tick past its deadline. Phases: the stt service transcribing the questions (as fast as
the decoder goes, not paced) with a grammar (decoder in a thread) and with the general language
model (decoder in its own process); the memory service embedding and storing documents in
batches of 64 (MiniLM in a thread); and the general-model stt and the embedding at once. As a
services entry point does, the heap is frozen (``gc.freeze()``) once the services are up.
"""

from __future__ import annotations

import gc
import time
from typing import Any

import trio

from _voice_common import QUESTIONS, begin_phase, bus, in_process, lag_fields, running_memory
from trioworks.services.memory import NewDocument
from trioworks.services.stt import SttConfig, SttService, pcm_source

_SILENCE = bytes(2 * 8000)  # 0.5 s at 16 kHz


async def _transcribe(make: Any, config: SttConfig, pcm: bytes, *, lag: Any) -> dict[str, Any]:
    """Start an stt service, then transcribe ``pcm`` unpaced; ``lag``: take start-up and decoding apart."""
    stt = SttService(bus(make, "stt"), config)
    out: dict[str, Any] = {"audio_s": len(pcm) / 32000}
    async with trio.open_nursery() as nursery:
        await nursery.start(stt.run)
        await trio.sleep(0.05)  # the ticker notes a stall that ended as start-up did
        out["startup"] = lag_fields(lag)  # loading the decoder
        await begin_phase(lag, freeze=True)
        started = time.perf_counter()
        await stt.transcribe(pcm_source(pcm))
        out["wall_s"] = time.perf_counter() - started
        out.update(lag_fields(lag))
        nursery.cancel_scope.cancel()
    gc.unfreeze()
    return out


async def _embed(memory: Any, texts: list[str]) -> dict[str, Any]:
    started = time.perf_counter()
    for i in range(0, len(texts), 64):
        await memory.add([NewDocument(t, 1.7e9 + i + j, "stt") for j, t in enumerate(texts[i : i + 64])])
    elapsed = time.perf_counter() - started
    return {"documents": len(texts), "docs_per_s": len(texts) / elapsed}


async def bench_lag(speech: dict[str, bytes], embedder: Any, texts: list[str], *, lag: Any) -> dict[str, Any]:
    """``speech``: question -> 16 kHz PCM; ``texts``: documents to embed."""
    pcm = b"".join(_SILENCE + speech[q] + _SILENCE for q in QUESTIONS if q in speech)
    make = in_process()
    out: dict[str, Any] = {}
    for name, config in (
        ("stt_grammar_thread", SttConfig(phrases=QUESTIONS)),
        ("stt_language_model_process", SttConfig()),
    ):
        await begin_phase(lag)
        out[name] = await _transcribe(make, config, pcm, lag=lag)

    async with running_memory(make, embedder, []) as memory:
        await begin_phase(lag, freeze=True)
        out["embedding"] = {**await _embed(memory, texts), **lag_fields(lag)}
        stt = SttService(bus(make, "stt"), SttConfig())
        async with trio.open_nursery() as nursery:
            await nursery.start(stt.run)
            await begin_phase(lag)
            async with trio.open_nursery() as both:
                both.start_soon(stt.transcribe, pcm_source(pcm))
                await _embed(memory, list(reversed(texts)))
            out["stt_and_embedding"] = lag_fields(lag)
            nursery.cancel_scope.cancel()
        gc.unfreeze()
    return out
