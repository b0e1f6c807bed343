"""`advisor calibrate`: fit the coverage decision (or, with `--what cases`, the reading of
questions across cases) on the dev split and write its model file.

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
from advisor.errors import AdvisorError


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


CASE_KINDS = {"aggregate": "list", "cases_like_mine": "like", "advice": "advice"}
CONDITION_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
CONDITION_LIMITS = (1, 2)


def fit_case_questions(advisor, items) -> dict:
    """Fit the reading of questions across cases on labelled dev rows.

    1. "Does it ask for cases?": every labelled row trains it: `aggregate` asks for a list,
       `cases_like_mine` for cases like the asker's, any other kind for something else.
    2. "Which values?": the rows that name the value they ask about (`target`) train the
       condition model over every value's features.
    3. The condition threshold and the most conditions are chosen by the mean case F1 of all
       the rows asking for cases (so partly on the rows the condition model was fit on)."""
    import numpy as np

    from advisor.cases.reading import CaseQuestionModel, fit, fit_conditions, word_shares

    catalogue = advisor.case_catalogue.current
    if catalogue is None:
        raise AdvisorError(f"the case-study catalogue did not load: {advisor.case_catalogue.error}")
    rows = [i for i in items if i.kind]
    asked = _question_features(advisor, rows)
    labels = [CASE_KINDS.get(i.kind, "other") for i in rows]
    doc, _ = fit(asked, labels)
    shares = word_shares([i.user_input for i in rows])
    reader = catalogue.reader
    targeted = [(i, _targets(i)) for i in rows if i.kind == "aggregate" and _targets(i)]
    candidates = [reader.candidates(i.user_input, shares) for i, _ in targeted]
    conditions = fit_conditions(candidates, [t for _, t in targeted])
    conditions["word_share"] = shares
    listed = [i for i in rows if i.kind == "aggregate" and i.expected_cases]
    grid = []
    for limit in CONDITION_LIMITS:
        for threshold in CONDITION_THRESHOLDS:
            doc["conditions"] = {**conditions, "threshold": threshold, "max_conditions": limit}
            trial = reader.with_model(CaseQuestionModel.load_document(doc))
            f1s = [_case_f1(catalogue, trial, item) for item in listed]
            grid.append(
                {
                    "threshold": threshold,
                    "max_conditions": limit,
                    "mean_case_f1": round(float(np.mean(f1s)), 4),
                }
            )
    # the most conservative setting within one row's worth of the best (fewer conditions, then a
    # higher threshold): differences smaller than that are noise on 70 rows
    top = max(g["mean_case_f1"] for g in grid)
    near = [g for g in grid if g["mean_case_f1"] >= top - 1 / max(len(listed), 1)]
    best = min(near, key=lambda g: (g["max_conditions"], -g["threshold"]))
    doc["conditions"] = {
        **conditions,
        "threshold": best["threshold"],
        "max_conditions": best["max_conditions"],
        "grid": grid,
    }
    doc["rows"] = {label: labels.count(label) for label in ("other", "list", "like", "advice")}
    final = reader.with_model(CaseQuestionModel.load_document(doc))
    doc["read_as_every_case"] = [
        i.id for i in rows if final.reading(i.user_input).reason == "asks for every case"
    ]
    return doc


def _question_features(advisor, rows):
    """The question model's features of each row (`advisor.cases.reading.question_features`)."""
    import numpy as np

    from advisor.cases.reading import question_features
    from advisor.question import asking_text

    asked = [asking_text(i.user_input) or i.user_input for i in rows]
    vectors = advisor.embedder.encode(asked)
    return np.stack([question_features(a, v) for a, v in zip(asked, vectors)])


def _targets(item) -> set[tuple[str, str]]:
    """The (field, value) pairs a row says it asks about; combined ones are joined by "+"."""
    target = item.target
    if not target or not target.get("field"):
        return set()
    return set(zip(str(target["field"]).split("+"), str(target.get("value", "")).split("+")))


def _case_f1(catalogue, reader, item) -> float:
    """F1 of the cases a reading selects against the row's expected cases (0 when not read)."""
    query = reader.read(item.user_input)
    if query is None or query.kind not in ("list", "count"):
        return 0.0
    got = {c.name for c in catalogue.matching(query)}
    want = set(item.expected_cases)
    hit = len(got & want)
    return 0.0 if not hit else 2 * hit / (len(got) + len(want))


ROUTE_THRESHOLDS = tuple(round(0.05 * i, 2) for i in range(2, 20))
ROUTE_MAX_OTHER = 0.05  # share of other in-scope rows, and of out-of-scope rows, the map may take
ROUTE_MAX_LOSS = 0.02  # evidence hit the advice rows may lose against passages only


def fit_guidance_route(advisor, items) -> dict:
    """Fit "does the guidance map answer this question?" on labelled dev rows.

    Every row's match against the map is measured, and, for rows with reference quotes, whether
    the map's answer (forced) and the top passages hold one (evidence hit). A row is a positive
    when it is an advice question and the map's answer holds its evidence at least as often as
    the passages do; every other row is a negative. The chance that a row asks for advice comes
    from question models cross-validated on the same rows (never their own row's fit). The
    threshold is the lowest at which the map takes at most `ROUTE_MAX_OTHER` of the other in-scope rows and of the out-of-scope rows,
    and the advice rows lose at most `ROUTE_MAX_LOSS` evidence hit against passages only."""
    import numpy as np

    from advisor.cases.reading import fit
    from advisor.evaluation.metrics import evidence_hit
    from advisor.guidance.matching import RouteModel, fit_route

    guidance = advisor.guidance
    if guidance is None or guidance.reload() is None:
        raise AdvisorError(
            f"the guidance map did not load: {guidance.guidance.error if guidance else 'none'}"
        )
    labelled = [i for i in items if i.kind]
    # the chance each row asks for advice, from question models fit without that row (5-fold)
    _, held_out = fit(
        _question_features(advisor, labelled), [CASE_KINDS.get(i.kind, "other") for i in labelled]
    )
    rows, labels, kinds, map_hits, passage_hits = [], [], [], [], []
    for item, advice in zip(labelled, held_out[:, 3]):
        vector = advisor.embedder.encode([item.user_input])[0]
        match = guidance.match(vector, float(advice))
        forced = guidance.answer(item.user_input, vector, advisor.index, None, float(advice), force=True)
        _, _, passages = advisor.search(item.user_input, question_vector=vector)
        refs = item.reference_contexts or ()
        map_hit = evidence_hit(refs, [p.chunk.text for p in forced.passages]) if forced and refs else 0.0
        passage_hit = evidence_hit(refs, [p.chunk.text for p in passages[:5]]) if refs else 0.0
        rows.append(match.features)
        kinds.append(item.kind)
        map_hits.append(map_hit)
        passage_hits.append(passage_hit)
        labels.append(int(item.kind == "advice" and map_hit >= passage_hit))
    doc = fit_route(rows, labels)
    doc["threshold"] = 1.0
    model = RouteModel.load_document(doc)
    p = np.array([model.probability(r) for r in rows])
    kinds_a = np.array(kinds)
    advice = kinds_a == "advice"
    oos = kinds_a == "out_of_scope"
    other = ~advice & ~oos & (kinds_a != "multi_doc")
    base = float(np.mean(np.array(passage_hits)[advice]))
    curve = []
    for t in ROUTE_THRESHOLDS:
        routed = p >= t
        mixed = np.where(routed, map_hits, passage_hits)
        curve.append(
            {
                "threshold": t,
                "advice_routed": round(float(routed[advice].mean()), 4),
                "advice_evidence_hit": round(float(mixed[advice].mean()), 4),
                "other_routed": round(float(routed[other].mean()), 4),
                "out_of_scope_routed": round(float(routed[oos].mean()), 4),
            }
        )
    ok = [
        c
        for c in curve
        if c["other_routed"] <= ROUTE_MAX_OTHER
        and c["out_of_scope_routed"] <= ROUTE_MAX_OTHER
        and c["advice_evidence_hit"] >= base - ROUTE_MAX_LOSS
    ]
    doc["threshold"] = min(c["threshold"] for c in ok) if ok else 1.0
    doc["curve"] = curve
    doc["passages_only_advice_evidence_hit"] = round(base, 4)
    doc["rows"] = {
        "advice": int(advice.sum()),
        "out_of_scope": int(oos.sum()),
        "other": int(other.sum()),
        "positive": int(sum(labels)),
    }
    return doc


def _write(doc: dict, target: Path, set_file: Path) -> Path:
    """Write a fitted model's document, noting the split it was fit on."""
    doc["fitted_on"] = str(set_file)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return target


def calibrate_command(
    set_file: Path = typer.Option(Path("eval_sets/dev.jsonl"), "--set", help="The split to fit on (dev)."),
    out: Path = typer.Option(MODEL_FILE, "--out", help="Where the model goes."),
    what: str = typer.Option(
        "coverage",
        "--what",
        help="coverage (refuse or answer), cases (questions across cases) or guidance (the map's route).",
    ),
    max_false_refusal: float = typer.Option(
        None,
        "--max-false-refusal",
        help="Cap the share of in-scope rows refused (default: fewest wrong decisions).",
    ),
) -> None:
    """Fit the coverage decision (refuse or answer), or the reading of questions across cases, on dev."""
    from advisor.cli.common import console, user_errors
    from advisor.cli.common import open_advisor as _advisor
    from advisor.config import Settings
    from advisor.evaluation.datasets import load_eval_set

    with user_errors():
        if Path(set_file).name.startswith("test"):
            raise typer.BadParameter("the test split is for reporting only; fit on dev", param_hint="--set")
        if what not in ("coverage", "cases", "guidance"):
            raise typer.BadParameter(f"{what!r}: choose coverage, cases or guidance", param_hint="--what")
        settings = Settings()
        loaded = load_eval_set(set_file, settings.corpus_dir)
        advisor = _advisor(settings, quiet=True)
        if what == "guidance":
            from advisor.guidance.matching import MODEL_FILE as ROUTE_FILE

            doc = fit_guidance_route(advisor, loaded.items)
            target = _write(doc, ROUTE_FILE if out == MODEL_FILE else out, set_file)
            chosen = next((c for c in doc["curve"] if c["threshold"] == doc["threshold"]), None)
            console.print(
                f"fit on {doc['rows']}: threshold {doc['threshold']}; on dev {chosen}. Wrote {target}"
            )
            return
        if what == "cases":
            from advisor.cases.reading import MODEL_FILE as CASES_FILE

            doc = fit_case_questions(advisor, loaded.items)
            target = _write(doc, CASES_FILE if out == MODEL_FILE else out, set_file)
            cv = doc["cross_validated"]
            console.print(
                f"fit on {sum(doc['rows'].values())} rows of {set_file} {doc['rows']}: cross-validated "
                f"accuracy {cv['accuracy']:.3f}, list recall {cv['classes']['list']['recall']:.3f}; "
                f"condition threshold {doc['conditions']['threshold']}, at most "
                f"{doc['conditions']['max_conditions']} conditions. "
                f"Wrote {target}"
            )
            return
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
