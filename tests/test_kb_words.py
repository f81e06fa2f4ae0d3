"""The KB's lexical index reads words in every script, and ASCII exactly as before.

A French, German, Russian, Chinese or Japanese knowledge base used to give the lexical index
few or no terms (its pattern kept ASCII letters only), so hybrid scoring and lexical matches
failed for a non-English desk. These tests pin the words read, the ASCII terms unchanged, the
rebuild of an index saved with the old pattern, and suggestions through the real HTTP app.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from service_fixtures import app_config, auth
from sklearn.feature_extraction.text import TfidfVectorizer

from triage.articles import Article
from triage.encoder import HashingEncoder
from triage.kb import KBConfig, KnowledgeBase

# Four desks' articles: the same three problems (printer, network, password) in each language.
ARTICLES = [
    Article("fr-printer", "L'imprimante ne répond plus", "Vérifiez le câble, redémarrez l'imprimante et videz la file d'impression. " * 3, "Imprimante hors ligne", (), "Appareils"),
    Article("fr-network", "Le réseau sans fil se déconnecte", "Oubliez le réseau, reconnectez-vous et mettez à jour le pilote Wi-Fi. " * 3, "Coupures du réseau", (), "Réseau"),
    Article("fr-password", "Réinitialiser le mot de passe", "Ouvrez le portail et choisissez « mot de passe oublié ». Le nouveau doit être différent. " * 3, "Mot de passe oublié", (), "Identité"),
    Article("de-printer", "Drucker zeigt eine Störung", "Prüfen Sie das Kabel, starten Sie den Drucker neu und löschen Sie die Warteschlange. " * 3, "Druckerstörung beheben", (), "Geräte"),
    Article("de-network", "WLAN-Verbindung bricht ständig ab", "Netzwerk vergessen, erneut verbinden und den Treiber aktualisieren. Häufige Abbrüche prüfen. " * 3, "Netzwerkprobleme", (), "Netzwerk"),
    Article("de-password", "Kennwort zurücksetzen", "Öffnen Sie das Portal und wählen Sie „Kennwort vergessen“. Das neue Kennwort muss sich unterscheiden. " * 3, "Kennwort vergessen", (), "Identität"),
    Article("ru-printer", "Принтер не печатает", "Проверьте кабель, перезапустите принтер и очистите очередь печати. " * 3, "Принтер не в сети", (), "Устройства"),
    Article("ru-network", "Сеть постоянно отключается", "Забудьте сеть, подключитесь заново и обновите драйвер адаптера. " * 3, "Обрывы сети", (), "Сеть"),
    Article("ru-password", "Сброс пароля", "Откройте портал и выберите «забыли пароль». Новый пароль должен отличаться. " * 3, "Забыли пароль", (), "Учётные записи"),
    Article("zh-printer", "打印机无法打印", "检查电缆，重新启动打印机并清除打印队列。" * 3, "打印机脱机", (), "设备"),
    Article("zh-network", "无线网络经常断开", "忘记网络后重新连接，并更新网卡驱动程序。" * 3, "网络断开", (), "网络"),
    Article("zh-password", "重置密码", "打开门户，选择忘记密码。新密码必须不同。" * 3, "忘记密码", (), "账户"),
]  # fmt: skip

# A query per desk, in its own language, using words the ASCII-only pattern could not read.
QUERIES = {
    "fr-network": "le réseau se déconnecte sans arrêt",
    "de-printer": "Störung am Drucker, er druckt nicht",
    "ru-printer": "принтер не печатает, очередь печати стоит",
    "ru-password": "забыл пароль от портала",
    "zh-network": "无线网络老是断开",
    "zh-password": "我忘记密码了",
}

OLD_PATTERN = r"(?u)\b[a-zA-Z][a-zA-Z]+\b"  # the lexical index's pattern before 2026-12-07


def old_analyzer():
    return TfidfVectorizer(stop_words="english", lowercase=True, token_pattern=OLD_PATTERN).build_analyzer()


def new_analyzer():
    from triage.kb import _vectorizer

    return _vectorizer().build_analyzer()


# ASCII text made of the pieces that decide a term's edges: letters, digits, "_", "'", "-",
# spaces, punctuation and stop words.
_ASCII = st.lists(
    st.one_of(
        st.text(st.characters(max_codepoint=127, exclude_categories=("Cs",)), max_size=12),
        st.sampled_from(["the", "and", "Word", "x86", "foo_bar", "e-mail", "don't", "VPN", "a", "\n"]),
    ),
    max_size=12,
).map(" ".join)


@given(_ASCII)
def test_ascii_text_reads_exactly_the_old_terms(text):
    """An English KB's vocabulary, and so its lexical scores, do not move."""
    assert new_analyzer()(text) == old_analyzer()(text)


def test_words_in_every_script_are_terms():
    analyse = new_analyzer()
    assert analyse("Réseau indisponible") == ["réseau", "indisponible"]
    assert analyse("Störung beim Drucken") == ["störung", "beim", "drucken"]
    assert analyse("Принтер не печатает") == ["принтер", "не", "печатает"]
    assert analyse("打印机无法打印") == list("打印机无法打印")  # each ideograph a term
    assert analyse("プリンターが動かない") == list("プリンターが動かない")  # each kana a term
    assert analyse("नमस्ते दुनिया") == ["नमस्ते", "दुनिया"]  # a vowel sign continues the word
    assert analyse("Windows中文") == ["windows", "中", "文"]  # an ideograph ends a Latin word
    # decomposed accents, full-width Latin and ligatures read as the words a query types
    assert analyse("re\u0301seau ＷＩＮＤＯＷＳ ﬁle") == ["réseau", "windows", "file"]
    # as before: runs holding a digit or "_" are no word, one letter is no word
    assert analyse("x86 win10 foo_bar 2fa e-mail") == ["mail"]
    assert analyse("Ошибка 0x80070005 ошибка") == ["ошибка", "ошибка"]


@pytest.fixture(scope="module")
def kb():
    return KnowledgeBase.build(ARTICLES, HashingEncoder(dim=256), KBConfig(lexical_weight=1.0))


@pytest.mark.parametrize("expected", QUERIES)
def test_lexical_scores_rank_the_article_in_the_query_s_language_first(kb, expected):
    lexical = kb.lexical_scores(QUERIES[expected])
    ids = [kb.articles[i].id for i in (-lexical).argsort(kind="stable")]
    assert ids[0] == expected and lexical.max() > 0.1, list(zip(ids, sorted(lexical, reverse=True)))


def test_the_old_pattern_read_nothing_of_these_queries():
    """Why the tests above can fail: the Russian and Chinese queries had no term at all."""
    assert old_analyzer()(QUERIES["ru-printer"]) == [] and old_analyzer()(QUERIES["zh-network"]) == []


def _as_saved_before(path) -> None:
    """Make a saved index look like one from before the words of every script."""
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    del meta["lexical_words"]
    meta_path.write_text(json.dumps(meta), encoding="utf-8")


@pytest.mark.parametrize(
    "articles, rebuilt",
    [
        (ARTICLES, True),  # the old index lost their words: rebuilt once
        (  # English with curly quotes and a dash: the same terms, kept (and marked current)
            [
                Article("a", "Printer “offline”", "Restart the printer — then clear the queue.", "", (), ""),
                Article("b", "VPN drops", "Reinstall the VPN client.", "", (), ""),
            ],
            False,
        ),
    ],
)
def test_an_index_saved_with_the_old_pattern_is_rebuilt_only_when_it_lost_words(
    tmp_path, monkeypatch, articles, rebuilt
):
    encoder = HashingEncoder(dim=64)
    base = tmp_path / "kb"
    KnowledgeBase.load_or_build(articles, encoder, base)
    _as_saved_before(base)
    builds = []
    real_build = KnowledgeBase.build.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(
        KnowledgeBase,
        "build",
        classmethod(lambda cls, *a, **kw: builds.append(1) or real_build(cls, *a, **kw)),
    )
    kb = KnowledgeBase.load_or_build(articles, encoder, base)
    assert bool(builds) is rebuilt
    assert (
        json.loads(base.with_suffix(".json").read_text(encoding="utf-8"))["lexical_words"] == kb.lexical_words
    )
    KnowledgeBase.load_or_build(articles, encoder, base)
    assert len(builds) == int(rebuilt)  # the check runs once


def test_suggest_over_http_ranks_the_article_in_the_query_s_language_first(service_env, tmp_path):
    """Through the real app, hybrid scoring: the lexical part now counts for every desk.

    Two indexes of the same articles, semantic only and fused: the fused score of the right
    article is higher by its lexical match, which the old pattern made zero for Russian and
    Chinese (and tiny for French and German words with accents).
    """
    from service import create_app
    from service.store import close

    probe = create_app(app_config(service_env))
    encoder = probe.extensions["triage.state"].current.encoder
    close(probe)
    encoder = getattr(encoder, "inner", encoder)
    top = {}
    for weight in (0.0, 0.5):
        path = tmp_path / f"kb-{weight}"
        KnowledgeBase.build(ARTICLES, encoder, KBConfig(lexical_weight=weight)).save(path)
        app = create_app(app_config(service_env, TRIAGE_KB_PATH=str(path), TRIAGE_KB_THRESHOLD="-1"))
        try:
            client = app.test_client()
            for expected, query in QUERIES.items():
                r = client.get("/v1/kb/suggest", query_string={"q": query, "k": 3}, headers=auth())
                assert r.status_code == 200, r.get_json()
                top[weight, expected] = {s["article_id"]: s["score"] for s in r.get_json()["suggestions"]}
        finally:
            close(app)
    for expected in QUERIES:
        fused, semantic = top[0.5, expected], top[0.0, expected]
        assert next(iter(fused)) == expected, (expected, fused)
        assert fused[expected] - semantic.get(expected, -1.0) > 0.05, (expected, fused, semantic)


def test_every_combining_mark_continues_a_word():
    """The mark classes are built from a partial scan of Unicode: it must miss none."""
    import re
    import sys
    import unicodedata

    from triage.kb import _marks

    mark = re.compile(_marks())
    missed = [
        hex(c)
        for c in range(sys.maxunicode + 1)
        if unicodedata.category(chr(c)).startswith("M") and not mark.fullmatch(chr(c))
    ]
    assert missed == []
