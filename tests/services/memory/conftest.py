"""Fixtures of the memory tests: the real model once per session, a fast fake, a bus broker."""

from __future__ import annotations

import os

# As docs/memory.md recommends for the service: one BLAS thread per embedding call, so that the
# model limiter (not OpenBLAS) decides how many cores the model uses and the Trio loop keeps one.
# Only effective if numpy was not imported yet in this pytest process.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import pytest
from memory_helpers import HashEmbedder

from trioworks.bus import InProcessBroker
from trioworks.services.memory import MiniLM


@pytest.fixture(scope="session")
def minilm() -> MiniLM:
    """all-MiniLM-L6-v2, loaded once (about 0.3 s) and shared: encode() is thread-safe."""
    return MiniLM()


@pytest.fixture
def fake_embedder() -> HashEmbedder:
    return HashEmbedder()


@pytest.fixture
def memory_broker() -> InProcessBroker:
    return InProcessBroker()
