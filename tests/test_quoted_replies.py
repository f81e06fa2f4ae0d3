"""Quoted history in replies as non-English clients write it: cut before the models read
the reply (triage/text.py), so an answer in German is not classified by our own notice."""

from __future__ import annotations

import pytest

from triage.mail.parsing import parse_message
from triage.text import normalise


@pytest.mark.parametrize(
    "reply",
    [
        # Outlook's header block, German, Spanish, French (a space before the colon), Italian,
        # Dutch, Swedish
        "Von: Help Desk <desk@desk.example>\nGesendet: Montag, 7. Dezember 2026 09:00\nAn: Ann\nBetreff: VPN",
        "De: Help Desk <desk@desk.example>\nEnviado: lunes, 7 de diciembre de 2026 9:00\nPara: Ann\nAsunto: VPN",
        "De : Help Desk\nEnvoyé : lundi 7 décembre 2026 09:00\nÀ : Ann\nObjet : VPN",
        "Da: Help Desk\nInviato: lunedì 7 dicembre 2026 09:00\nA: Ann\nOggetto: VPN",
        "Van: Help Desk\nVerzonden: maandag 7 december 2026 09:00\nAan: Ann\nOnderwerp: VPN",
        "Från: Help Desk\nSkickat: den 7 december 2026 09:00\nTill: Ann\nÄmne: VPN",
        # clients' "On ... wrote:" lines
        "El lun, 7 dic 2026 a las 9:00, Help Desk (<desk@desk.example>) escribió:",
        "Il giorno lun 7 dic 2026 alle ore 09:00 Help Desk <desk@desk.example> ha scritto:",
        "Op ma 7 dec. 2026 om 09:00 schreef Help Desk <desk@desk.example>:",
        "Em seg., 7 de dez. de 2026 às 09:00, Help Desk <desk@desk.example> escreveu:",
        "-----Ursprüngliche Nachricht-----",
        "-----Message d'origine-----",
    ],
)
def test_a_localised_reply_header_cuts_the_quoted_message(reply):
    text = f"The printer still jams.\n\n{reply}\n\nWe received your request about the VPN."
    assert normalise(text) == "The printer still jams."
    raw = (
        "From: ann@acme.example\r\nSubject: AW: VPN\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + text
    ).encode()
    assert parse_message(raw)["model_body"] == "The printer still jams."


@pytest.mark.parametrize(
    "text",
    [
        "El servidor escribió un log: ver abajo\nDe: sistema\nlinea",
        "Bug list:\nA: printer\nB: scanner\nDe: nada",
        "Steps\nVon: Berlin\nnach: Paris",
    ],
)
def test_text_that_only_resembles_a_reply_header_is_kept(text):
    assert normalise(text) == text
