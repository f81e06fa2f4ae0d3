"""Exports in languages written without spaces between words (Chinese, Japanese).

Under scikit-learn's default token pattern a whole Chinese sentence is one term, unique per
ticket: such an export was refused ("no word that two rows share") or, past that check,
crashed in the word TF-IDF ("After pruning, no terms remain"). The exports are made here.
"""

from __future__ import annotations

import csv
import random
import re
from pathlib import Path

import yaml
from hypothesis import given
from hypothesis import strategies as st

from training.mapping import parse_mapping
from training.mapping_draft import draft_mapping
from triage.classifiers import WORD_PATTERN
from triage_cli import main

ISSUES = {
    "网络": ["无线网络", "共享文件夹", "网络连接"],
    "账户": ["密码", "账户锁定", "认证令牌"],
    "硬件": ["笔记本屏幕", "打印机", "扩展坞"],
}
WHEN = ["昨天下午", "今天早上", "从上周开始", "刚才", "开会的时候", "在家办公时"]
WHAT = ["出现问题", "不能用了", "一直报错", "非常慢", "完全没反应", "需要帮助"]
DIGITS = "零一二三四五六七八九"


def _chinese_export(path: Path, n: int = 600) -> Path:
    """One unpunctuated sentence per ticket, none repeated: no \\w\\w+ run is shared."""
    rng = random.Random(5)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["描述", "处理组"])
        for i in range(n):
            team = list(ISSUES)[i % 3]
            number = "".join(DIGITS[int(d)] for d in f"{i:03d}")
            w.writerow(
                [f"{rng.choice(WHEN)}我的{rng.choice(ISSUES[team])}{rng.choice(WHAT)}第{number}次了", team]
            )
    return path


def test_a_chinese_export_of_unique_sentences_trains(tmp_path, capsys):
    data = _chinese_export(tmp_path / "工单.csv")
    mapping = tmp_path / "m.yaml"
    mapping.write_text(draft_mapping(data), encoding="utf-8")
    assert (
        parse_mapping(yaml.safe_load(mapping.read_text(encoding="utf-8"))).labels["team"].column == "处理组"
    )
    argv = ["train", "--data", str(data), "--mapping", str(mapping), "--out", str(tmp_path / "models")]
    assert main([*argv, "--encoder", "none", "--no-tracking"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    reference = next(line for line in out.splitlines() if "candidates" in line)
    assert float(re.search(r"reference [\d.]+/([\d.]+)", reference).group(1)) > 0.9, out


_NO_CJK = st.text(
    st.characters(exclude_categories=("Cs",)).filter(
        lambda c: not re.match(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff]", c)
    )
)


@given(_NO_CJK)
def test_the_word_terms_are_scikit_learn_s_default_on_text_without_ideographs_or_kana(text):
    """Every bundle trained on Latin, Cyrillic, Greek, Arabic or Korean text is unchanged."""
    assert re.findall(WORD_PATTERN, text) == re.findall(r"(?u)\b\w\w+\b", text)
