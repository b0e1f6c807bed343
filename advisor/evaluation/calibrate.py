"""`advisor calibrate`: fit the coverage decision on the dev split and write its model file.

Every row of the set is searched as the advisor would (condense, retrieve), its coverage features
are measured (`ExtractiveAnswerer.features`), and a logistic regression learns which questions
are out of scope (`advisor.coverage.fit`). The model, its threshold, its coefficients and its dev
precision / recall curve go to `advisor/models/coverage.json`. Fit on dev only: the test split is
never read here.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from advisor.coverage import MODEL_FILE, fit


def collect(advisor, items) -> tuple[list[dict], list[int]]:
    """(features, label) for every labelled row: 1 when the row is out of scope."""
    extractive = advisor.extractive
    rows, labels = [], []
    for item in items:
        if not item.kind:
            continue
        query, vector, passages = advisor.search(item.user_input)
        rows.append(extractive.features(item.user_input, query, vector, passages))
        labels.append(int(item.kind == "out_of_scope"))
    return rows, labels


def calibrate_command(
    set_file: Path = typer.Option(Path("eval_sets/dev.jsonl"), "--set", help="The split to fit on (dev)."),
    out: Path = typer.Option(MODEL_FILE, "--out", help="Where the model goes."),
    max_false_refusal: float = typer.Option(
        None,
        "--max-false-refusal",
        help="Cap the share of in-scope rows refused (default: fewest wrong decisions).",
    ),
) -> None:
    """Fit the coverage decision (refuse or answer) on the dev split."""
    from advisor.cli.common import console, user_errors
    from advisor.cli.common import open_advisor as _advisor
    from advisor.config import Settings
    from advisor.evaluation.datasets import load_eval_set

    with user_errors():
        if Path(set_file).name.startswith("test"):
            raise typer.BadParameter("the test split is for reporting only; fit on dev", param_hint="--set")
        settings = Settings()
        loaded = load_eval_set(set_file, settings.corpus_dir)
        advisor = _advisor(settings, quiet=True)
        rows, labels = collect(advisor, loaded.items)
        model = fit(rows, labels, max_false_refusal)
        model["fitted_on"] = str(set_file)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(model, indent=2) + "\n", encoding="utf-8")
        console.print(
            f"fit on {len(rows)} rows of {set_file} ({model['rows']['out_of_scope']} out of scope): "
            f"threshold {model['threshold']:.3f}; on dev {model['dev']['out_of_scope_refused']} "
            "out-of-scope refused, "
            f"{model['dev']['false_refusals']} false refusals. Wrote {out}"
        )


def register(app: typer.Typer) -> None:
    """Add `advisor calibrate` to the main command."""
    app.command("calibrate")(calibrate_command)
