from __future__ import annotations

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
