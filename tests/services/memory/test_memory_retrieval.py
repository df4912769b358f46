"""The retrieval strategies over small corpora: recent, similarity, hybrid (RRF), context, budget."""

from __future__ import annotations

from collections.abc import Sequence

import bm25s
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from memory_helpers import Constant, HashEmbedder, make_snapshot, texts_of

from trioworks.bus import MemoryQuery
from trioworks.services.memory import MiniLM, bm25_rankings, estimate_tokens, rrf_fuse, search, tokenize

CONVERSATION = [
    "Remind me to buy bread and milk tomorrow morning.",
    "What is the weather like in Paris today?",
    "My cat likes to sleep on the sofa all afternoon.",
    "The meeting with Alice moved to Tuesday at three.",
    "Play some jazz music in the living room.",
    "How far is the moon from the earth?",
]


def q(text: str, **kw: object) -> MemoryQuery:
    return MemoryQuery(text=text, **kw)  # type: ignore[arg-type]


def test_recent_is_newest_first_and_honours_top_k(fake_embedder: HashEmbedder) -> None:
    snap = make_snapshot(CONVERSATION, fake_embedder)
    got = search(snap, q("anything", top_k=3, retrieval_strategy="recent"), fake_embedder)
    assert texts_of(got) == CONVERSATION[::-1][:3]
    assert [r.score for r in got.results] == [1.0, 1 / 2, 1 / 3]
    assert [r.timestamp for r in got.results] == ["1005.0", "1004.0", "1003.0"]
    assert got.strategy_used == "recent" and got.k == 3 and not got.truncated
    assert fake_embedder.calls == 1  # the corpus only: recent never embeds the query


def test_similarity_scores_are_cosines_best_first(fake_embedder: HashEmbedder) -> None:
    snap = make_snapshot(CONVERSATION, fake_embedder)
    got = search(snap, q("weather in Paris", top_k=6, retrieval_strategy="similarity"), fake_embedder)
    assert texts_of(got)[0] == CONVERSATION[1]
    qv = fake_embedder.encode(["weather in Paris"])[0]
    want = {
        text: float(v @ qv) for text, v in zip(CONVERSATION, fake_embedder.encode(CONVERSATION), strict=True)
    }
    assert [r.score for r in got.results] == pytest.approx([want[t] for t in texts_of(got)])
    assert [r.score for r in got.results] == sorted((r.score for r in got.results), reverse=True)


@pytest.mark.parametrize("strategy", ["hybrid", "similarity"])
def test_real_model_ranks_the_weather_document_first(minilm: MiniLM, strategy: str) -> None:
    snap = make_snapshot(CONVERSATION, minilm)
    got = search(snap, q("Will it rain? I need a forecast.", top_k=2, retrieval_strategy=strategy), minilm)
    assert texts_of(got)[0] == CONVERSATION[1]
    assert len(got.results) == 2 and all(r.context_type == "target" for r in got.results)


def brute_force_hybrid(texts: Sequence[str], embedder: HashEmbedder, query: str, top_k: int) -> list[str]:
    """Cosine top 2k and BM25 top 2k computed by sorting everything, fused by RRF."""
    emb = embedder.encode(list(texts))
    cos = emb @ embedder.encode([query])[0]
    dense = sorted(range(len(texts)), key=lambda i: (-cos[i], i))[: 2 * top_k]
    lexical: list[int] = []
    tokens = tokenize(list(texts))
    query_tokens = [t for t in tokenize([query])[0]]
    if any(tokens) and query_tokens:
        retriever = bm25s.BM25()
        retriever.index(tokens, show_progress=False)
        ids = retriever.get_tokens_ids(query_tokens)
        if ids:
            scores = retriever.get_scores_from_ids(ids)
            lexical = [i for i in sorted(range(len(texts)), key=lambda i: (-scores[i], i)) if scores[i] > 0][
                : 2 * top_k
            ]
    return [texts[i] for i, _ in rrf_fuse([dense, lexical], limit=top_k)]


WORDS = ["rain", "paris", "cat", "sofa", "jazz", "moon", "bread", "milk", "alice", "tuesday"]
corpus_strategy = st.lists(
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=6).map(" ".join),
    min_size=1,
    max_size=25,
    unique=True,
)


@settings(max_examples=60, deadline=None)
@given(
    texts=corpus_strategy,
    query=st.lists(st.sampled_from(WORDS), min_size=1, max_size=3).map(" ".join),
    top_k=st.integers(1, 8),
)
def test_hybrid_is_rrf_of_cosine_and_bm25_top_2k(texts: list[str], query: str, top_k: int) -> None:
    embedder = HashEmbedder()
    got = search(make_snapshot(texts, embedder), q(query, top_k=top_k), embedder)
    assert texts_of(got) == brute_force_hybrid(texts, embedder, query, top_k)
    assert got.strategy_used == "hybrid"


def test_a_document_not_yet_in_the_bm25_index_is_still_found() -> None:
    texts = [f"note number {i} about groceries" for i in range(19)] + ["the zebra escaped from the zoo"]
    fresh = make_snapshot(texts, Constant(), indexed=19)  # the zebra is in the tail
    assert fresh.bm25.n == 19 and fresh.n == 20
    got = search(fresh, q("zebra", top_k=3), Constant())
    # Dense ranks everything equally (oldest first); only BM25 lifts the zebra above note 1.
    assert texts_of(got) == [texts[0], "the zebra escaped from the zoo", texts[1]]
    # Once indexed, the same answer from the main index.
    assert texts_of(search(make_snapshot(texts, Constant()), q("zebra", top_k=3), Constant())) == texts_of(
        got
    )


def test_context_window_brings_neighbours_in_order(fake_embedder: HashEmbedder) -> None:
    texts = [f"filler line {i}" for i in range(10)]
    texts[5] = "the zebra escaped"
    snap = make_snapshot(texts, fake_embedder)
    got = search(snap, q("zebra", top_k=1, include_context=True, context_window=2), fake_embedder)
    assert texts_of(got) == [
        "the zebra escaped",
        "filler line 3",
        "filler line 4",
        "filler line 6",
        "filler line 7",
    ]
    assert [r.context_type for r in got.results] == ["target", "previous", "previous", "next", "next"]
    assert {r.score for r in got.results} == {got.results[0].score}
    no_context = search(snap, q("zebra", top_k=1, include_context=False, context_window=2), fake_embedder)
    assert texts_of(no_context) == ["the zebra escaped"]


def test_context_is_clipped_at_the_edges_and_never_repeats_a_document(fake_embedder: HashEmbedder) -> None:
    texts = ["zebra one", "filler a", "zebra two", "filler b"]
    snap = make_snapshot(texts, fake_embedder)
    got = search(
        snap,
        q("zebra", top_k=2, include_context=True, context_window=5, retrieval_strategy="similarity"),
        fake_embedder,
    )
    kinds = dict(zip(texts_of(got), (r.context_type for r in got.results), strict=True))
    assert sorted(kinds) == sorted(texts)  # each document once
    assert kinds["zebra one"] == kinds["zebra two"] == "target"
    assert kinds["filler a"] in ("next", "previous") and kinds["filler b"] == "next"


def test_max_tokens_truncates_the_list_and_says_so(fake_embedder: HashEmbedder) -> None:
    snap = make_snapshot(CONVERSATION, fake_embedder)
    full = search(snap, q("x", top_k=6, retrieval_strategy="recent"), fake_embedder)
    assert full.total_tokens == sum(estimate_tokens(t) for t in CONVERSATION) and not full.truncated
    budget = full.results[0].token_count + full.results[1].token_count
    cut = search(snap, q("x", top_k=6, retrieval_strategy="recent", max_tokens=budget + 1), fake_embedder)
    assert texts_of(cut) == texts_of(full)[:2]
    assert cut.truncated and cut.total_tokens == budget <= budget + 1
    too_small = search(snap, q("x", top_k=6, retrieval_strategy="recent", max_tokens=1), fake_embedder)
    assert too_small.results == () and too_small.truncated and too_small.total_tokens == 0


@pytest.mark.parametrize("strategy", ["hybrid", "similarity", "recent"])
def test_empty_corpus_answers_empty(fake_embedder: HashEmbedder, strategy: str) -> None:
    got = search(make_snapshot([], fake_embedder), q("weather", retrieval_strategy=strategy), fake_embedder)
    assert got.results == () and got.total_tokens == 0 and not got.truncated


def test_blank_query_text_finds_nothing_by_similarity_but_recent_still_works(
    fake_embedder: HashEmbedder,
) -> None:
    snap = make_snapshot(CONVERSATION, fake_embedder)
    assert search(snap, q("  ", retrieval_strategy="hybrid"), fake_embedder).results == ()
    assert search(snap, q("", retrieval_strategy="similarity"), fake_embedder).results == ()
    assert len(search(snap, q("", retrieval_strategy="recent", top_k=2), fake_embedder).results) == 2


def test_results_carry_the_document_and_its_metadata(fake_embedder: HashEmbedder) -> None:
    snap = make_snapshot(CONVERSATION, fake_embedder)
    [result] = search(snap, q("jazz music", top_k=1), fake_embedder).results
    assert result.document == {
        "id": 5,
        "text": CONVERSATION[4],
        "timestamp": 1004.0,
        "source": "stt",
        "utt_id": None,
    }
    assert result.token_count == estimate_tokens(CONVERSATION[4]) and result.timestamp == "1004.0"


@settings(max_examples=60, deadline=None)
@given(
    texts=corpus_strategy,
    words=st.lists(st.sampled_from(WORDS), min_size=1, max_size=3),
    split=st.floats(0, 1),
)
def test_bm25_ranks_every_matching_document_wherever_the_index_ends(
    texts: list[str], words: list[str], split: float
) -> None:
    indexed = int(split * len(texts))
    snap = make_snapshot(texts, Constant(), indexed=indexed)
    rankings = bm25_rankings(snap, words, limit=len(texts))
    assert len(rankings) == (1 if indexed == len(texts) else 2)
    main, *tail = rankings
    matching = {i for i, t in enumerate(texts) if set(t.split()) & set(words)}
    assert set(main) == {i for i in matching if i < indexed}
    assert set(tail[0] if tail else []) == {i for i in matching if i >= indexed}
    # The indexed part ranks as one bm25s index over just those documents would.
    if indexed:
        assert main == bm25_rankings(make_snapshot(texts[:indexed], Constant()), words, limit=len(texts))[0]
