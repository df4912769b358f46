"""The spec's responsiveness requirement (the event loop is never blocked for more than 50 ms)
with stt (pocketsphinx, general language model) decoding speech and memory embedding documents
with the real all-MiniLM-L6-v2 at the same time, on the same loop.

What is asserted is where the heavy work ran: decoding in the decoder process, embedding, SQLite
writes and BM25 builds in worker threads, never on the loop; and that both services did all of
their work. How long the loop waited meanwhile depends on the machine and its load: that figure
is measured by ``benchmarks/voice.py --only lag`` (its target in docs/performance.md).
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as docs/memory.md says a service should

import pytest
import trio
from voice_helpers import PHRASES, speak_wav

from _offloaded import CallSites
from trioworks.bus import Bus, FinalTranscript, InProcessBroker, InProcessTransport
from trioworks.services.memory import MemoryConfig, MemoryService, MemoryStore, MiniLM, _bm25
from trioworks.services.stt import Recognizer, SttConfig, SttService, wav_source

DOCUMENTS = 16


async def test_stt_and_embedding_at_once_keep_their_work_off_the_loop(
    espeak_ng: str, sox: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wav = tmp_path / "speech.wav"
    parts = [speak_wav(espeak_ng, sox, tmp_path / f"p{i}.wav", text) for i, text in enumerate(PHRASES)]
    await trio.run_process([sox, "-D", *map(str, parts), str(wav), "rate", "16000"])
    embedder = await trio.to_thread.run_sync(MiniLM)

    sites = CallSites()
    sites.patch(monkeypatch, Recognizer, "__init__", "feed", "flush", "reset")
    sites.patch(monkeypatch, MiniLM, "encode")
    sites.patch(monkeypatch, MemoryStore, "append")
    sites.patch(monkeypatch, _bm25, "_prepare", "_load")

    broker = InProcessBroker()
    stt = SttService(
        Bus(InProcessTransport(broker), source="stt"),
        SttConfig(),  # the general model: decoded in a process of its own (see docs/stt.md)
        source=wav_source(wav, limiter=trio.CapacityLimiter(1)),  # as fast as it decodes
    )
    memory = MemoryService(
        Bus(InProcessTransport(broker), source="memory"),
        MemoryConfig(db_path=tmp_path / "m.db"),
        embedder=embedder,
    )
    client = Bus(InProcessTransport(broker), source="client")
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            await nursery.start(client.run)
            await nursery.start(memory.run)
            stored = len(memory)
            await nursery.start(stt.run)
            for i in range(DOCUMENTS):  # an ingest backlog, embedded while stt decodes
                text = f"Remind me that meeting number {i} with Alice is on Tuesday at {i % 12 + 1} pm."
                await client.publish("stt/final", FinalTranscript(text=text, utt_id=f"m{i}"))
            await stt.finished.wait()
            finals = int(stt.bus.metrics.snapshot()["stt.finals"])
            await memory.wait_documents(stored + DOCUMENTS + finals)
            await memory.indexer.wait_indexed(stored + DOCUMENTS + finals)
            nursery.cancel_scope.cancel()

    assert finals >= 2, "stt heard too little: the decoder barely ran"
    # Decoding happened in the decoder process (no decoder call in this one); the memory work
    # in threads.
    assert sites.labels() == {"MiniLM.encode", "MemoryStore.append", "_bm25._prepare", "_bm25._load"}
    assert sites.on_loop() == []
