"""``POST /v1/classify?kb=0``: no KB suggestions, and a TF-IDF-only bundle never encodes."""

from __future__ import annotations

import pytest

from service_fixtures import TICKET, _write_bundle_directly, app_config, auth
from test_service import assert_error


class Counting:
    """Wraps the served encoder's inner model and counts the texts it embeds."""

    def __init__(self, inner) -> None:
        self.inner, self.texts = inner, []
        self.name, self.dim = inner.name, inner.dim

    def reference(self):
        return self.inner.reference()

    def encode(self, texts, **kwargs):
        self.texts.extend(texts)
        return self.inner.encode(texts, **kwargs)


@pytest.fixture()
def tfidf_client(service_env, tmp_path):
    from service import create_app
    from service.store import close

    models = tmp_path / "models"
    _write_bundle_directly(models)  # TF-IDF heads only (the manifest still names an encoder)
    app = create_app(app_config(service_env, TRIAGE_MODELS_DIR=str(models)))
    loaded = app.extensions["triage.state"].snapshot()
    assert not loaded.triager.needs_vectors
    counting = Counting(loaded.encoder.inner)
    loaded.encoder.inner = counting
    yield app.test_client(), counting
    close(app)


def test_kb_0_answers_without_suggestions(client):
    r = client.post("/v1/classify?kb=0", json=TICKET, headers=auth())
    assert r.status_code == 200, r.get_json()
    result = r.get_json()["result"]
    assert result["kb"] == [] and {"type", "team"} <= set(result["fields"])
    assert result["sla"]["policy"]


def test_kb_must_be_0_or_1(client):
    body = assert_error(client.post("/v1/classify?kb=maybe", json=TICKET, headers=auth()), 422)
    assert body["errors"][0]["field"] == "kb" and "maybe" in body["errors"][0]["got"]


def test_a_tfidf_only_bundle_asked_for_no_kb_never_encodes(tfidf_client):
    client, counting = tfidf_client
    fast = client.post("/v1/classify?kb=0", json=dict(TICKET, body="printer on fire"), headers=auth())
    assert fast.status_code == 200 and counting.texts == []
    usual = client.post("/v1/classify", json=dict(TICKET, body="printer still on fire"), headers=auth())
    assert usual.status_code == 200 and len(counting.texts) == 1
    assert fast.get_json()["result"]["fields"].keys() == usual.get_json()["result"]["fields"].keys()


LONG = " ".join(f"Sentence {i}: the VPN drops and the printer queue stalls again." for i in range(20))


def test_a_long_text_is_embedded_once_for_its_kb_window(tfidf_client):
    """No head reads vectors and the KB reads a long text by its first sentences only: the
    whole text is not embedded (its vector would go unread), the window is, once; the
    suggestions are those ``kb.suggest`` gives the text."""
    from triage.kb import query_window
    from triage.text import model_text

    client, counting = tfidf_client
    text = model_text(TICKET["subject"], LONG)
    window, cut = query_window(text)
    assert cut
    r = client.post("/v1/classify", json=dict(TICKET, body=LONG), headers=auth())
    assert r.status_code == 200, r.get_json()
    assert counting.texts == [window]
    assert r.get_json()["result"]["kb"], "the window found no article: the test reads nothing"


def test_a_batch_is_embedded_whole_when_the_kb_reads_one_text_whole(tfidf_client):
    """A batch's texts are quantised together: with one short text among long ones, every
    text is embedded in one call as before (the long ones' windows after); with only long
    texts, only their windows."""
    from triage.kb import query_window
    from triage.text import model_text

    client, counting = tfidf_client
    short, long = dict(TICKET, id="a"), dict(TICKET, id="b", body=LONG)
    texts = [model_text(t["subject"], t["body"]) for t in (short, long)]
    r = client.post("/v1/classify", json={"tickets": [short, long]}, headers=auth())
    assert r.status_code == 200, r.get_json()
    assert counting.texts == [*texts, query_window(texts[1])[0]]
    counting.texts.clear()  # (new subjects: the served encoder remembers the windows above)
    longs = [dict(long, id=f"c{i}", subject=subject) for i, subject in enumerate(("Printer", "Queue"))]
    r = client.post("/v1/classify", json={"tickets": longs}, headers=auth())
    assert r.status_code == 200, r.get_json()
    windows = [query_window(model_text(t["subject"], t["body"]))[0] for t in longs]
    assert counting.texts == windows
