from __future__ import annotations

import triage.text as text_module
from triage.text import model_text, normalise, repair_encoding, strip_quoted, strip_signature


def test_mojibake_is_repaired():
    assert repair_encoding("CafÃ© donâ€™t work") == "Café don't work"


def test_quoted_reply_history_is_cut():
    text = "Printer on floor 3 jams again\n\nOn Mon, 3 Jan 2022 at 09:12, Bob <b@x.com> wrote:\n> old problem\n> more"
    assert normalise(text) == "Printer on floor 3 jams again"


def test_outlook_header_block_is_cut():
    text = (
        "VPN still down for me\n\nFrom: Service Desk <sd@example.com>\nSent: Monday, 3 January 2022 09:12\n"
        "To: Alice\nSubject: RE: VPN\n\nPlease restart your laptop"
    )
    assert normalise(text) == "VPN still down for me"


def test_original_message_marker_is_cut():
    assert strip_quoted("new text\n-----Original Message-----\nold text") == "new text"


def test_inline_angle_quotes_are_dropped_but_own_text_kept():
    assert strip_quoted("> quoted line\nmy answer") == "my answer"


def test_signature_is_cut():
    assert (
        strip_signature("Outlook crashes on start\n--\nJane Doe\nFinance | ACME")
        == "Outlook crashes on start"
    )
    assert normalise("Screen flickers\n\nSent from my iPhone") == "Screen flickers"
    assert normalise("Cannot log in to ERP\n\nKind regards,\nJane") == "Cannot log in to ERP"


def test_a_long_tail_after_thanks_is_not_a_signature():
    body = "Thanks,\n" + "\n".join(
        ["this line is part of the actual problem description, not a signature"] * 3
    )
    assert strip_signature(body) == body


def test_whitespace_is_normalised():
    assert normalise("  a\t\tb \u00a0c\r\n\r\n\r\n\r\nd  ") == "a b c\n\nd"


def test_model_text_is_one_lowercase_line():
    assert (
        model_text("Outlook DOWN", "It says:\n  error 0x80040115") == "outlook down it says: error 0x80040115"
    )
    assert model_text(None, None) == ""


def test_normalise_is_idempotent():
    text = "Hi,\n\nMy laptop won't boot.\n\nOn Tue, Bob wrote:\n> ok"
    once = normalise(text)
    assert normalise(once) == once


def _ftfy_repair(text: str) -> str:
    """The repair without the plain-ASCII shortcut: ftfy's answer, control characters dropped."""
    import ftfy

    from triage.text import _CONTROL

    return _CONTROL.sub(" ", ftfy.fix_text(text, normalization="NFC"))


def test_plain_ascii_shortcut_gives_ftfys_answer():
    """Printable ASCII with tabs and newlines and no "&" skips ftfy: it must be a text ftfy
    leaves alone. Random texts over that alphabet (HTML-entity look-alikes without "&", "<>",
    quotes, backslashes) and every demo ticket, which ftfy would have repaired the same."""
    import random
    import string

    from service_fixtures import _rows

    alphabet = "".join(c for c in string.printable if c not in "&\r\x0b\x0c") + "\t\n"
    rng = random.Random(15)
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 300))) for _ in range(2000)]
    texts += ["amp; lt; #39; quot;", "<b>bold</b> x", "a\\x1b[31mred", "Cafe\\u00e9", "\t\n\n  \t"]
    texts += [f"{r['title']}\n{r['description']}" for r in _rows()]
    for text in texts:
        assert repair_encoding(text) == _ftfy_repair(text), repr(text)


def test_text_outside_the_shortcut_still_goes_through_ftfy():
    """An HTML entity, a carriage return, a terminal escape, a control character, mojibake:
    each is something only ftfy (or the control-character pass) changes."""
    for text, repaired in (
        ("caf&eacute; &amp; tea", "café & tea"),
        ("line one\r\nline two", "line one\nline two"),
        ("red \x1b[31malert\x1b[0m", "red alert"),
        ("bell\x07 here", "bell here"),
        ("CafÃ© crÃ¨me", "Café crème"),
    ):
        assert repair_encoding(text) == repaired == _ftfy_repair(text)


# Letters of the scripts desks write in, the mojibake they turn into, and characters one of
# ftfy's fixes rewrites (curly quotes, ligatures, full-width forms, C1 and other controls,
# line breaks, "&", combining marks that NFC composes): each side of the non-ASCII shortcut.
_WORLD = (
    "aeiouAEIOU .,;:!?'-\n\t0123456789"
    "éèêëàâäçîïôöùûüÿñßÉÀÇÑÖÜøåæœ"  # Western European
    "ąćęłńóśźżčďěňřšťůžőű"  # Central European
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГД"  # Cyrillic
    "αβγδεζηθικλμνξοπρστυφχψωΑΒΓΔ"  # Greek
    "打印机无法显示错误请帮忙谢。、「」"  # CJK
    "ÃÂâ€™œ\u0153\u0178Ð°Ñ\u0081Ã©Ã¨Ã\xa0Ãƒ"  # mojibake pieces
    "\u2018\u2019\u201c\u201d\u02bc\ufb01\ufb02\u0133\uff21\uff0c\u3000\u0080\u0085\u0092\x9d"
    "\r\u2028\x1b\x00\x07\x0c\x7f&\u0301\u0308\u00a0\u200b\ufeff"
)


def test_non_ascii_shortcut_gives_ftfys_answer():
    """Text ftfy hands back unchanged skips it; anything else still goes through it. Random
    texts over the world's letters, their mojibake and ftfy's triggers, mojibake made the way
    mailers make it, and the Big List of Naughty Strings: each as ftfy itself repairs it."""
    import random

    from test_naughty_strings import NAUGHTY

    rng = random.Random(8)
    texts = ["".join(rng.choice(_WORLD) for _ in range(rng.randint(1, 120))) for _ in range(4000)]
    clean = [
        "Mon imprimante ne fonctionne plus depuis la mise à jour, merci",
        "Der Drucker im 3. Stock druckt nicht mehr. Grüße, Jürgen",
        "VPN не работает с утра, не могу подключиться",
        "Ο εκτυπωτής δεν λειτουργεί",
        "Drukarka nie działa, proszę o pomoc",
    ]
    for text in clean:
        for codec in ("cp1252", "latin-1", "cp1251", "mac_roman", "cp437"):
            texts.append(text.encode("utf-8").decode(codec, errors="replace"))
    texts += clean + NAUGHTY
    shortcut = 0
    for text in texts:
        assert repair_encoding(text) == _ftfy_repair(text), repr(text)
        shortcut += text_module._is_its_own_repair(text)
    assert all(text_module._is_its_own_repair(t) for t in clean)  # the shortcut is taken
    assert 0 < shortcut < len(texts)  # ... and the random texts exercise both sides
