"""The KB's lexical index in every script against the ASCII-only pattern it replaced, same run.

    nice .venv/bin/python bench/bench_kb_words.py

On the shared English KB (2,446 articles) and its 80 judged tickets: how many articles read
other terms, the vocabulary either way, the lexical ranking's nDCG@5 / MRR@10 with each (scored by
the shared ``score_run.py``), the largest change of any ticket's lexical score, and the CPU of
fitting the index and of reading one query. Nothing derived from the shared data is written
into the repository.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_kb import KB_DIR, load_judgments, score, top10, write_run  # noqa: E402

from triage.kb import _OLD_ASCII_PATTERN, _vectorizer, lexical_text, load_articles  # noqa: E402


def old_vectorizer() -> TfidfVectorizer:
    """The lexical index before 2026-12-07 (ASCII letters only), as the reference."""
    return TfidfVectorizer(
        sublinear_tf=True,
        stop_words="english",
        lowercase=True,
        token_pattern=_OLD_ASCII_PATTERN,
        min_df=1,
        dtype=np.float32,
    )


def fit(vectorizer: TfidfVectorizer, texts: list[str]):
    t = time.process_time()
    matrix = vectorizer.fit_transform(texts)
    return matrix, time.process_time() - t


def query_cpu_us(vectorizer: TfidfVectorizer, queries: list[str], rounds: int = 5) -> float:
    best = float("inf")
    for _ in range(rounds):
        t = time.process_time()
        for q in queries:
            vectorizer.transform([q])
        best = min(best, time.process_time() - t)
    return best / len(queries) * 1e6


def main() -> None:
    articles = load_articles(KB_DIR / "kb_articles.jsonl")
    ids = [a.id for a in articles]
    texts = [lexical_text(a) for a in articles]
    tickets = load_judgments()
    queries = [" ".join(t["ticket_text"].lower().split()) for t in tickets]

    old, new = old_vectorizer(), _vectorizer()
    m_old, fit_old = fit(old, texts)
    m_new, fit_new = fit(new, texts)
    a_old, a_new = old.build_analyzer(), new.build_analyzer()
    differ = [i for i, t in enumerate(texts) if a_old(t) != a_new(t)]
    non_ascii = sum(not t.isascii() for t in texts)
    added = sorted(set(new.vocabulary_) - set(old.vocabulary_))
    print(
        f"articles: {len(articles)}, holding non-ASCII characters: {non_ascii}, reading other terms: {len(differ)}"
    )
    print(
        f"vocabulary: ASCII-only {len(old.vocabulary_)}, every script {len(new.vocabulary_)} (+{len(added)})"
    )
    print(f"  added terms (first 30): {added[:30]}")

    s_old = np.asarray((m_old @ old.transform(queries).T).todense()).T
    s_new = np.asarray((m_new @ new.transform(queries).T).todense()).T
    print(
        f"lexical score, 80 judged tickets x {len(ids)} articles: largest change {np.abs(s_new - s_old).max():.2e}"
    )
    moved = sum(top10(a, ids) != top10(b, ids) for a, b in zip(s_old, s_new))
    print(f"tickets whose lexical top 10 changed: {moved}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, s in (("ASCII-only (reference)", s_old), ("every script", s_new)):
            run = write_run(Path(tmp) / "run.jsonl", tickets, [top10(row, ids) for row in s])
            r = score(run)
            print(f"lexical ranking, {name}: nDCG@5 {r['ndcg@5']:.4f}  MRR@10 {r['mrr@10']:.4f}")
    print(f"fit CPU, 2,446 articles: ASCII-only {fit_old:.2f} s, every script {fit_new:.2f} s")
    print(
        f"CPU per query (best of 5 over 80 tickets): ASCII-only {query_cpu_us(old, queries):.0f} us, "
        f"every script {query_cpu_us(new, queries):.0f} us"
    )


if __name__ == "__main__":
    main()
