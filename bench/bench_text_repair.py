"""CPU of text normalisation per text, by script: ``triage.text`` beside ftfy's full pass.

``repair_encoding`` hands a text to ftfy only when ftfy could change it (plain ASCII and,
since round 8, any text with no character an ftfy fix rewrites, already NFC and not
flagged by ftfy's mojibake detector). The reference in the same run is ftfy's own pass over
the same texts (what ``repair_encoding`` cost before). Texts are invented here, one set per
script, plus mojibake made the way mailers make it (UTF-8 read as Windows-1252), which must
still take ftfy's path. Each figure is the minimum over ``--repeat`` runs of CPU time
(``time.process_time``), so a shared machine's load inflates it less.

    .venv/bin/python bench/bench_text_repair.py [--repeat 7] [--number 2000]
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

import ftfy

from triage import text as text_module

SETS = {
    "ascii": "The VPN is down for the whole Lyon office since this morning, nobody can work.",
    "french": "Mon imprimante ne fonctionne plus depuis la mise à jour d'hier, merci de m'aider.",
    "german": "Der Drucker im 3. Stock druckt nicht mehr, Fehlermeldung: Papierstau. Grüße, Jürgen",
    "polish": "Drukarka na trzecim piętrze nie działa od wczoraj, proszę o szybką pomoc.",
    "russian": "VPN не работает с утра, не могу подключиться к серверу. Помогите пожалуйста.",
    "greek": "Ο εκτυπωτής στον τρίτο όροφο δεν λειτουργεί από χθες, παρακαλώ βοηθήστε.",
    "chinese": "打印机无法打印，显示卡纸错误。请帮忙处理，谢谢。",
}
SETS["mojibake"] = SETS["french"].encode("utf-8").decode("cp1252", errors="replace")


def _cpu_ms(fn: Callable[[str], object], text: str, number: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(number):
            fn(text)
        best = min(best, time.process_time() - start)
    return best / number * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--number", type=int, default=2000)
    args = parser.parse_args()
    ftfy_pass = lambda t: ftfy.fix_text(t, normalization="NFC")  # noqa: E731 - the reference
    print(f"{'script':<10} {'repair ms':>10} {'ftfy ms':>9} {'ratio':>6} {'model_text ms':>14}  path")
    for name, text in SETS.items():
        text = text * 3  # a ticket body's length (~250 characters)
        ours = _cpu_ms(text_module.repair_encoding, text, args.number, args.repeat)
        ref = _cpu_ms(ftfy_pass, text, args.number, args.repeat)
        whole = _cpu_ms(lambda t: text_module.model_text("Printer", t), text, args.number, args.repeat)
        if text_module._NOTHING_TO_REPAIR.fullmatch(text):
            path = "plain ASCII"
        elif text_module._is_its_own_repair(text):
            path = "shortcut"
        else:
            path = "ftfy"
        print(f"{name:<10} {ours:>10.4f} {ref:>9.4f} {ref / ours:>6.1f} {whole:>14.4f}  {path}")


if __name__ == "__main__":
    main()
