"""The real encoder on the demo knowledge base (slow: loads MiniLM once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from triage.kb import KBConfig, KnowledgeBase, load_articles

pytestmark = pytest.mark.slow
DEMO_KB = Path(__file__).resolve().parents[1] / "data" / "demo" / "kb"


@pytest.fixture(scope="module")
def encoder():
    from triage.encoder import load_encoder

    return load_encoder("minilm")


@pytest.fixture(scope="module")
def kb(encoder):
    assert list(DEMO_KB.glob("*.md")), f"the demo knowledge base (committed) is missing at {DEMO_KB}"
    return KnowledgeBase.build(load_articles(DEMO_KB), encoder, KBConfig())


def ask(kb, encoder, text):
    return kb.search(text, encoder.encode([text])[0])


def test_password_question_finds_the_password_article(kb, encoder):
    hits = ask(kb, encoder, "I forgot my password and cannot log in, how do I reset it?")
    assert hits, "a password question must get a suggestion"
    top = kb.articles[[a.id for a in kb.articles].index(hits[0].article_id)]
    assert "password" in (top.title + " " + " ".join(top.tags)).lower()


def test_off_topic_query_returns_nothing(kb, encoder):
    assert ask(kb, encoder, "what is the recipe for a good banana bread with walnuts") == []
