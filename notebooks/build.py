"""Writes the three notebooks from the cells below (``python notebooks/build.py``).

Why generate them: a notebook edited in a browser picks up outputs, execution counts and
kernel metadata that make diffs unreadable. The cells live here as plain text; the
``.ipynb`` files are written without outputs and committed; ``tests/test_notebooks.py``
executes them. Every computation is a call into ``training.analysis`` (or the pipeline),
so the notebooks hold no feature code of their own.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

INPUTS_MD = """**Inputs** come from the environment, so the same notebook runs on any export:
`TRIAGE_NOTEBOOK_DATA` and `TRIAGE_NOTEBOOK_MAPPING` (default: the demo corpus
`data/demo/tickets.csv` with `data/demo/mapping.yaml`), `TRIAGE_NOTEBOOK_ENCODER`
(`minilm` default, `hashing` for a fast run without weights, `none` for TF-IDF only),
`TRIAGE_NOTEBOOK_HEADS` (comma-separated, default all heads of the mapping)."""

SETUP = """%matplotlib inline
import os

import pandas as pd
from IPython.display import display

from training import analysis

pd.set_option("display.max_colwidth", 160)
inputs = analysis.notebook_inputs(os.environ)
inputs"""

NOTEBOOKS = {
    "01_data_overview.ipynb": [
        new_markdown_cell(
            "# 01 · Data overview\n\nWhat an export holds once read through its column "
            "mapping: rows kept and dropped, labels per head, class balance, text "
            "lengths and the split the trainer will use.\n\n" + INPUTS_MD
        ),
        new_code_cell(SETUP),
        new_code_cell("ds = analysis.load_dataset(inputs)\nanalysis.row_counts(ds)"),
        new_markdown_cell(
            "## Labels per head\nRows that lack one label still train the other "
            "heads. A large *largest class share* means accuracy flatters the "
            "model: read macro-F1."
        ),
        new_code_cell("analysis.label_table(ds)"),
        new_code_cell("for head in ds.labels:\n    display(analysis.class_counts(ds, head).to_frame().T)"),
        new_markdown_cell(
            "## Text the models read\nAfter normalisation (encoding repair, quoted "
            "history and signatures removed, lower case)."
        ),
        new_code_cell(
            "lengths = analysis.text_lengths(ds)\n"
            "display(lengths.describe().to_frame().T)\n"
            "ax = lengths.clip(upper=lengths.quantile(0.99)).plot.hist(bins=40)\n"
            "ax.set_xlabel('words per ticket'); ax.set_title('Text length');"
        ),
        new_code_cell("pd.DataFrame({'text': ds.texts[:5]})"),
        new_markdown_cell(
            "## Split\nBy a hash of the ticket text: the same ticket is on the same "
            "side in every export and every run."
        ),
        new_code_cell("analysis.split_table(ds)"),
    ],
    "02_model_comparison.ipynb": [
        new_markdown_cell(
            "# 02 · Model comparison\n\nTrains every candidate (TF-IDF, sentence "
            "embeddings, both) on the same split, with the same-run TF-IDF + "
            "LinearSVC reference, then shows calibration and coverage on the "
            "holdout. No bundle is written.\n\n" + INPUTS_MD
        ),
        new_code_cell(SETUP),
        new_code_cell(
            "from training.evaluation import render_text_summary\n"
            "from training.pipeline import train\n\n"
            "result = train(inputs.data, inputs.mapping, None, **inputs.train_kwargs())\n"
            "report = result.report\n"
            "print(render_text_summary(report))"
        ),
        new_markdown_cell(
            "## Candidates\nThe winner is chosen on the calibration split; the "
            "holdout column is shown for honesty, never used to choose."
        ),
        new_code_cell("analysis.comparison_table(report)"),
        new_code_cell("analysis.head_summary(report)"),
        new_markdown_cell(
            "## Calibration and coverage\nA point on the diagonal means the "
            "confidence can be read as a probability; the red point is what the "
            "per-class apply thresholds achieve."
        ),
        new_code_cell(
            "from training.report_page import precision_coverage_figure, reliability_figure\n\n"
            "for head, h in report['heads'].items():\n"
            "    display(reliability_figure(head, h['metrics'], h['thresholds']))\n"
            "    display(precision_coverage_figure(head, h['metrics']))"
        ),
        new_code_cell(
            "for head in report['heads']:\n"
            "    print(head)\n"
            "    display(analysis.per_class_table(report, head))"
        ),
    ],
    "03_error_analysis.ipynb": [
        new_markdown_cell(
            "# 03 · Error analysis\n\nWhere one head goes wrong on the holdout, as "
            "the service would predict: confused class pairs, confident mistakes "
            "(often label noise), and what each decision would have cost.\n\n"
            + INPUTS_MD
            + "\n`TRIAGE_NOTEBOOK_BUNDLE` analyses an existing bundle "
            "instead of training one; `TRIAGE_NOTEBOOK_HEAD` picks the head."
        ),
        new_code_cell(SETUP),
        new_code_cell(
            "import json, os\n\n"
            "bundle = analysis.bundle_for_analysis(inputs)\n"
            "manifest = json.loads((bundle / 'manifest.json').read_text())\n"
            "heads = list(manifest['heads'])\n"
            "head = os.environ.get('TRIAGE_NOTEBOOK_HEAD') or "
            "('team' if 'team' in heads else heads[0])\n"
            "print(bundle, heads, '→ analysing', head)"
        ),
        new_code_cell(
            "frame = analysis.holdout_predictions(bundle, inputs, head)\nanalysis.decision_table(frame)"
        ),
        new_markdown_cell("## Per class\nLowest recall first, with the class it is most often mistaken for."),
        new_code_cell("analysis.class_errors(frame)"),
        new_code_cell("analysis.confusion_pairs(frame)"),
        new_code_cell(
            "from training.report_page import confusion_figure\n\n"
            "report = json.loads((bundle / 'report' / 'report.json').read_text())\n"
            "display(confusion_figure(head, report['heads'][head]['metrics']))"
        ),
        new_markdown_cell(
            "## Confident mistakes\nWrong with high probability: check the label "
            "first (exports are noisy), then the terms the model relied on."
        ),
        new_code_cell("analysis.confident_errors(frame)"),
        new_code_cell("frame[(frame.decision == 'apply') & ~frame.correct].head(10)"),
    ],
}


def build() -> list[Path]:
    paths = []
    for name, cells in NOTEBOOKS.items():
        for i, cell in enumerate(cells):
            cell["id"] = f"{name[:2]}-{i:02d}"  # stable ids: rebuilding gives no diff
        nb = new_notebook(
            cells=cells,
            metadata={
                "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                "language_info": {"name": "python"},
            },
        )
        path = HERE / name
        nbformat.write(nb, path)
        paths.append(path)
    return paths


if __name__ == "__main__":
    for p in build():
        print(p)
