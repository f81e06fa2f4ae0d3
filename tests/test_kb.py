"""Knowledge-base loading, index, thresholded search and persistence (hashing encoder: fast)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from triage.articles import MICROSOFT_ATTRIBUTION, Article, load_articles, markdown_to_text
from triage.encoder import HashingEncoder
from triage.errors import InputError
from triage.kb import KBConfig, KnowledgeBase, article_chunks

ARTICLES = [
    Article(
        "pw",
        "Reset your password",
        "Open the self-service portal and choose forgot password. "
        "A new password must have twelve characters. " * 5,
        "How to reset a forgotten password",
        ("account",),
        "Identity",
    ),
    Article(
        "vpn",
        "Connect to the VPN",
        "Install the VPN client, sign in and pick the nearest gateway. " * 5,
        "VPN connection from home",
        ("network",),
        "Network",
    ),
    Article(
        "mailbox",
        "Shared mailbox access",
        "Ask the mailbox owner to grant full access; the shared mailbox then appears in Outlook. " * 5,
        "Open a shared mailbox in Outlook",
        ("mail",),
        "Exchange",
    ),
    Article(
        "printer",
        "Printer is offline",
        "Check the cable, restart the printer and clear the queue. " * 5,
        "",
        ("hardware",),
        "Devices",
    ),
]


@pytest.fixture(scope="module")
def encoder():
    return HashingEncoder(dim=512)


@pytest.fixture(scope="module")
def kb(encoder):
    # body passages on (the default is one vector per article): chunking, blending, snippets
    return KnowledgeBase.build(
        ARTICLES, encoder, KBConfig(chunk_words=20, max_body_chunks=4, head_weight=0.5, threshold=0.3)
    )


def ask(kb, encoder, text, **kw):
    return kb.search(text, encoder.encode([text])[0], **kw)


def test_finds_the_right_article_first(kb, encoder):
    hits = ask(kb, encoder, "reset your password forgot password")
    assert hits and hits[0].article_id == "pw"
    assert hits[0].title == "Reset your password" and 0 < hits[0].score <= 1.5
    assert all(a.score >= b.score for a, b in zip(hits, hits[1:]))
    assert ask(kb, encoder, "shared mailbox access in outlook")[0].article_id == "mailbox"


def test_off_topic_query_returns_nothing(kb, encoder):
    assert ask(kb, encoder, "quarterly budget for the canteen menu") == []
    assert ask(kb, encoder, "   ") == []


def test_threshold_and_k_bound_the_answer(kb, encoder):
    text = "password vpn mailbox printer"
    assert len(ask(kb, encoder, text, k=2, threshold=-1.0)) == 2
    assert ask(kb, encoder, text, threshold=2.0) == []


def test_snippet_comes_from_the_closest_passage(kb, encoder):
    hit = ask(kb, encoder, "restart the printer and clear the queue")[0]
    assert hit.article_id == "printer" and "queue" in hit.snippet and len(hit.snippet) <= 245


def test_chunks_head_then_body_passages():
    chunks = article_chunks(ARTICLES[0], chunk_words=10, max_body_chunks=3)
    assert chunks[0] == "Reset your password. How to reset a forgotten password"
    assert len(chunks) == 4 and all(c.startswith("Reset your password: ") for c in chunks[1:])


def test_fusion_and_softmax_settings_change_scores_not_the_index(kb, encoder):
    q = "forgot password portal"
    v = encoder.encode([q])[0]
    base = kb.scores(q, v)
    fused = kb.with_config(lexical_weight=0.5).scores(q, v)
    assert np.argmax(fused) == 0 and fused[0] > base[0]
    soft = kb.with_config(aggregate="softmax", temperature=0.05).scores(q, v)
    assert np.all(soft <= kb.semantic_scores(v) + 1e-6)
    with pytest.raises(ValueError):
        kb.with_config(chunk_words=50)


def test_two_stage_scores_candidates_exactly(kb, encoder):
    q = "shared mailbox outlook"
    v = encoder.encode([q])[0]
    exact = kb.with_config(candidates=0).semantic_scores(v)
    two = kb.with_config(candidates=2).semantic_scores(v)
    picked = two > -1
    assert picked.sum() == 2 and np.allclose(two[picked], exact[picked])
    assert np.argmax(two) == np.argmax(exact)


def test_one_vector_per_article_scores_every_article_exactly(encoder):
    plain = KnowledgeBase.build(ARTICLES, encoder, KBConfig(candidates=2))  # the default settings
    v = encoder.encode(["shared mailbox outlook"])[0]
    assert len(plain.chunk_vecs) == len(ARTICLES)
    assert np.allclose(plain.semantic_scores(v), plain.chunk_vecs @ v)  # no article left at -1


def test_save_load_round_trip_and_content_hash(kb, encoder, tmp_path):
    kb.save(tmp_path / "idx")
    back = KnowledgeBase.load(tmp_path / "idx")
    q = "vpn gateway from home"
    v = encoder.encode([q])[0]
    assert np.allclose(back.scores(q, v), kb.scores(q, v))
    assert np.allclose(back.lexical_scores(q), kb.lexical_scores(q))
    assert back.digest == kb.digest and back.articles == kb.articles


def test_load_or_build_reuses_until_articles_change(encoder, tmp_path):
    class Counting(HashingEncoder):
        calls = 0

        def encode(self, texts, **kw):
            Counting.calls += 1
            return super().encode(texts, **kw)

    enc = Counting(dim=512)
    cfg = KBConfig(chunk_words=20)
    KnowledgeBase.load_or_build(ARTICLES, enc, tmp_path / "idx", cfg)
    again = KnowledgeBase.load_or_build(
        ARTICLES, enc, tmp_path / "idx", cfg.__class__(chunk_words=20, threshold=0.2)
    )
    assert Counting.calls == 1 and again.config.threshold == 0.2
    KnowledgeBase.load_or_build(ARTICLES[:3], enc, tmp_path / "idx", cfg)
    assert Counting.calls == 2


def test_markdown_folder_loading(tmp_path):
    (tmp_path / "reset-password.md").write_text(
        "---\nid: kb-001\ntitle: Reset a password\ntags: [account, password]\nproduct: Identity\n---\n"
        "# Reset a password\n\n1. Open **the portal**.\n2. Click [Forgot](https://x.example/f).\n"
    )
    (tmp_path / "no-front-matter.md").write_text("# Printer offline\n\nRestart it.\n")
    (tmp_path / "ignored.txt").write_text("not an article")
    (tmp_path / "README.md").write_text("# About this folder\n")
    arts = {a.id: a for a in load_articles(tmp_path)}
    assert set(arts) == {"kb-001", "no-front-matter"}
    pw = arts["kb-001"]
    assert pw.title == "Reset a password" and pw.tags == ("account", "password")
    assert pw.product == "Identity" and "Open the portal" in pw.body and "https" not in pw.body
    assert arts["no-front-matter"].title == "Printer offline" and pw.attribution is None


def test_markdown_errors_name_the_file(tmp_path):
    (tmp_path / "bad.md").write_text("---\ntitle: [unclosed\n---\nbody")
    with pytest.raises(InputError, match="bad.md"):
        load_articles(tmp_path)


def test_jsonl_loading_with_shared_field_names_and_attribution(tmp_path):
    rows = [
        {
            "id": "Outlook/a",
            "title": "A",
            "description": "d",
            "body_markdown": "# A\n**bold** text",
            "body_text": "A bold text",
            "product": "Outlook",
            "source_repo": "MicrosoftDocs/OfficeDocs-Support",
            "source_path": "Outlook/a.md",
        },
        {
            "id": 7,
            "title": "Own article",
            "body_markdown": "Use `ping` and [docs](http://x)",
            "tags": "net, dns",
        },
    ]
    path = tmp_path / "kb.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    a, b = load_articles(path)
    assert a.body == "A bold text" and a.attribution == MICROSOFT_ATTRIBUTION
    assert a.url.endswith("Outlook/a.md")
    assert b.id == "7" and b.body == "Use ping and docs" and b.tags == ("net", "dns")
    assert markdown_to_text("> [!NOTE]\n> Be careful") == "Be careful"


@pytest.mark.parametrize(
    "line, match",
    [
        ('{"title": "no id"}', "missing id"),
        ("not json", "not JSON"),
        ('["a list"]', "not a JSON object"),
        ('{"id": "x", "title": "t", "tags": {"a": 1}}', "bad tags"),
    ],
)
def test_jsonl_errors_name_the_row(tmp_path, line, match):
    path = tmp_path / "kb.jsonl"
    path.write_text('{"id": "ok", "title": "fine"}\n' + line + "\n")
    with pytest.raises(InputError, match=match) as e:
        load_articles(path)
    assert e.value.details["row"] == 2


def test_duplicate_ids_and_empty_kb_are_refused(tmp_path, encoder):
    path = tmp_path / "kb.jsonl"
    path.write_text('{"id": "x", "title": "a"}\n{"id": "x", "title": "b"}\n')
    with pytest.raises(InputError, match="duplicate"):
        load_articles(path)
    with pytest.raises(InputError):
        KnowledgeBase.build([], encoder)


def synthetic_kb(
    n_articles: int, dim: int = 64, chunks: int = 2, seed: int = 3, topics: int = 40, **config
) -> KnowledgeBase:
    """A KB of clustered random vectors (no encoder): articles near one of ``topics`` centres."""
    from triage.kb import _vectorizer

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(topics, dim))
    vecs = np.repeat(centres[rng.integers(0, topics, n_articles)], chunks, axis=0)
    vecs = vecs + 0.6 * rng.normal(size=vecs.shape)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    articles = [Article(f"s{i}", f"synthetic article {i}") for i in range(n_articles)]
    lexical = _vectorizer()
    matrix = lexical.fit_transform([a.title for a in articles])
    offsets = np.arange(0, n_articles * chunks, chunks)
    return KnowledgeBase(articles, vecs, offsets, lexical, matrix, KBConfig(**config), {"kind": "none"}, "x")


def test_a_kb_above_the_ann_threshold_finds_what_the_exact_scan_finds():
    from triage.ann import EXACT_BELOW

    big = synthetic_kb(EXACT_BELOW + 4000, chunks=1)  # the default threshold, crossed
    exact = big.with_config(ann_above=10**9)
    index = big.ann_index()
    assert big.uses_ann and not exact.uses_ann and len(index) == len(big.articles)
    assert index.wait(timeout=120) and index.approximate  # built in the background
    rng = np.random.default_rng(5)
    for probe in rng.integers(0, len(big.articles), 40):
        q = big.chunk_vecs[probe] + 0.02 * rng.normal(size=64).astype(np.float32)
        top = [(s.article_id, s.score) for s in big.search("q", q, k=5, threshold=-1.0)]
        assert top == [(s.article_id, s.score) for s in exact.search("q", q, k=5, threshold=-1.0)]
        assert top[0][0] == f"s{probe}"


def test_a_small_kb_keeps_the_exact_scan(kb):
    assert len(kb.articles) < kb.config.ann_above and not kb.uses_ann
    assert kb.warm()._derived.ann is None  # no graph is built for it


def test_scoring_variants_share_the_ann_index():
    big = synthetic_kb(1200, ann_above=1000)
    assert big.uses_ann and big.with_config(head_weight=0.2).ann_index() is big.ann_index()
    assert big.ann_index().wait(timeout=120)


RAW_SUBJECT = "AW: Outlook stÃ¼rzt ab"
RAW_BODY = (
    "Hello team,\r\n\r\nOutlook   crashes when I open the shared mailbox.\r\nIt started after the update.\r\n\r\n"
    "Kind regards,\r\nAnna\r\n\r\nOn Mon, 1 Dec 2026, IT wrote:\r\n> Please restart your laptop.\r\n"
)


def test_the_kb_query_is_normalised_exactly_as_training_reads_a_ticket(tmp_path):
    from training.mapping import load_export, parse_mapping
    from triage.kb import kb_query

    path = tmp_path / "export.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows([["subject", "body", "team"], [RAW_SUBJECT, RAW_BODY, "mail"]])
    mapping = parse_mapping({"text": {"subject": "subject", "body": "body"}, "labels": {"team": "team"}})
    trained_on = load_export(path, mapping).texts[0]
    query, cut = kb_query(RAW_SUBJECT, RAW_BODY)
    assert query == trained_on and not cut
    assert "stürzt" in query and "restart your laptop" not in query and "anna" not in query


def test_suggest_reuses_the_callers_vector_unless_the_window_cuts(kb):
    from triage.kb import QUERY_WORDS, query_window, suggest

    calls = []

    class Recording(HashingEncoder):
        def encode(self, texts, **kw):
            calls.append(list(texts))
            return super().encode(texts, **kw)

    enc = Recording(dim=512)
    short = "forgot password portal"
    assert suggest(kb, enc, short, vector=enc.encode([short])[0]) == ask(kb, enc, short)
    assert calls == [[short], [short]]  # the caller's encode and ask's: suggest encoded nothing
    calls.clear()
    long = "Reset your password with the portal. " * 15 + "Printer toner payslip. " * 100
    hits = suggest(kb, enc, long, vector=enc.encode([long])[0])
    window = calls[1][0]
    assert len(calls) == 2 and window == query_window(long)[0] and len(window.split()) <= QUERY_WORDS
    assert hits == ask(kb, enc, window)  # the window's own vector, not the whole text's
    assert suggest(kb, enc, "   ") == []
