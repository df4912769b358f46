"""Our numpy all-MiniLM-L6-v2 against vectors made by sentence-transformers (torch)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from trioworks.services.memory import MiniLM, default_model_dir

REFERENCE = json.loads(Path(__file__).with_name("minilm_reference.json").read_text(encoding="utf-8"))


def test_reference_fixture_is_what_we_think() -> None:
    vectors = np.array(REFERENCE["vectors"])
    assert vectors.shape == (len(REFERENCE["sentences"]), 384) and len(vectors) >= 5
    assert REFERENCE["generator"].startswith("sentence-transformers")


def test_embeddings_match_sentence_transformers(minilm: MiniLM) -> None:
    ours = minilm.encode(REFERENCE["sentences"])
    ref = np.array(REFERENCE["vectors"], np.float32)
    assert ours.dtype == np.float32 and ours.shape == ref.shape
    cosine = (ours * ref).sum(1) / np.linalg.norm(ref, axis=1)
    assert cosine.min() >= 0.99999, cosine
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, rtol=1e-5)


def test_batching_does_not_change_a_vector(minilm: MiniLM) -> None:
    texts = REFERENCE["sentences"][:4]
    alone = np.stack([minilm.encode([t])[0] for t in texts])
    batched = minilm.encode(texts, batch_size=3)
    np.testing.assert_allclose(alone, batched, atol=1e-5)


def test_related_sentences_are_closer_than_unrelated_ones(minilm: MiniLM) -> None:
    weather, rain, cat = minilm.encode(REFERENCE["sentences"][:3])
    assert weather @ rain > 0.6 > 0.2 > weather @ cat


def test_no_texts_no_rows(minilm: MiniLM) -> None:
    assert minilm.encode([]).shape == (0, 384)


def test_a_missing_model_dir_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(
        FileNotFoundError, match=r"model\.safetensors not found; run `trioworks services install-model`"
    ):
        MiniLM(tmp_path)


def test_the_model_dir_variable_is_looked_in_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIOWORKS_MINILM_DIR", str(tmp_path))
    with pytest.raises(
        FileNotFoundError, match=r"TRIOWORKS_MINILM_DIR .* has no model\.safetensors or tokenizer"
    ):
        MiniLM()
    for name in ("model.safetensors", "tokenizer.json"):
        (tmp_path / name).touch()
    assert default_model_dir() == tmp_path
