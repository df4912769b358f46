"""A fast, deterministic stand-in for MiniLM, shared by the voice tests that are not about the model."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np


class WordEmbedder:
    """A normalised bag of hashed words: texts sharing words are similar, no model is loaded."""

    name = "test-words"
    dim = 64

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[row, int(hashlib.sha1(word.encode()).hexdigest(), 16) % self.dim] += 1.0
            out[row] /= np.linalg.norm(out[row]) or 1.0
        return out
