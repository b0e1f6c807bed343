"""A run's summary and the gate: means by kind and report, refusals, guards, pairs, thresholds.

`summarise` turns per-question metric values into summary.json's figures; `paired` and
`compare_cases` set the advisor beside the baseline and passage retrieval on the same rows;
`check_thresholds` is the regression gate over a thresholds file (`thresholds_for` picks the
set's table).
"""

from __future__ import annotations

import statistics
import typing as t
from pathlib import Path

from advisor.errors import AdvisorError
from advisor.evaluation.cases import CASE_KINDS, CASE_METRICS
from advisor.evaluation.datasets import EvalItem

# Metrics that hold by construction for some answerers: reported as guards, not as results.
GUARDS = {
    "citation_faithfulness": "true by construction for the extractive answerer and the catalogue: every "
    "sentence is a verbatim quote of the passage it cites; kept as a guard against a broken citation map",
}
GUARDED_BACKENDS = {"extractive"}  # answers that quote (every route of the extractive answerer)
PAIRED = ("semantic_similarity", "rouge_score(mode=fmeasure)")  # compared with the baseline on the same rows


def summarise(items: list[EvalItem], records: dict[str, dict], values: dict, skipped: dict) -> dict:
    """Means per metric, by kind and by report, refusal figures and skipped counts."""
    names = sorted({m for v in values.values() for m in v})

    def mean(ids: list[str], metric: str) -> float | None:
        xs = [values[i].get(metric) for i in ids]
        xs = [x for x in xs if x is not None]
        return round(statistics.fmean(xs), 4) if xs else None

    ids = [item.id for item in items]
    by_kind = {}
    for kind in sorted({item.kind or "unlabelled" for item in items}):
        group = [i.id for i in items if (i.kind or "unlabelled") == kind]
        by_kind[kind] = {"n": len(group), **{m: mean(group, m) for m in names}}
    by_report = {}
    for source in sorted({s for item in items for s in item.sources}):
        group = [i.id for i in items if source in i.sources]
        by_report[source] = {"n": len(group), **{m: mean(group, m) for m in names}}
    out_of_scope = [i for i in items if i.kind == "out_of_scope"]
    in_scope = [i for i in items if i.kind and i.kind != "out_of_scope"]
    refusal = _refusal(records, out_of_scope, in_scope)
    for kind, row in by_kind.items():
        group = [i for i in items if (i.kind or "unlabelled") == kind]
        row["refused"] = sum(bool(records[i.id]["refused"]) for i in group)
        row["answered"] = len(group) - row["refused"]
        routes = [records[i.id].get("route", "passages") for i in group]
        row["routes"] = {r: routes.count(r) for r in sorted(set(routes))}
    confusion = {
        "in_scope": {
            "answered": refusal["in_scope"] - refusal["false_refusals"],
            "refused": refusal["false_refusals"],
        },
        "out_of_scope": {
            "answered": refusal["out_of_scope"] - refusal["refused_out_of_scope"],
            "refused": refusal["refused_out_of_scope"],
        },
    }
    curve = coverage_curve(items, records)
    latencies = [records[i]["timings_ms"]["total"] for i in ids if records[i].get("timings_ms")]
    backends = {records[i].get("backend", "extractive") for i in ids if not records[i].get("refused")}
    return {
        "n": len(items),
        "metrics": {m: mean(ids, m) for m in names},
        "skipped": skipped,
        "refusal": refusal,
        "confusion": confusion,
        "by_kind": by_kind,
        "by_report": by_report,
        "guards": {m: GUARDS[m] for m in GUARDS if m in names and backends <= GUARDED_BACKENDS},
        **({"coverage_curve": curve} if curve else {}),
        "latency_ms_p50": round(statistics.median(latencies), 1) if latencies else None,
    }


def _refusal(records: dict[str, dict], out_of_scope: list[EvalItem], in_scope: list[EvalItem]) -> dict:
    """Out-of-scope rows refused, in-scope rows refused (false refusals), their rates, and by sort."""
    refusal = {
        "out_of_scope": len(out_of_scope),
        "refused_out_of_scope": sum(records[i.id]["refused"] for i in out_of_scope),
        "in_scope": len(in_scope),
        "false_refusals": sum(records[i.id]["refused"] for i in in_scope),
    }
    refusal["refusal_accuracy_out_of_scope"] = (
        round(refusal["refused_out_of_scope"] / len(out_of_scope), 4) if out_of_scope else None
    )
    refusal["false_refusal_rate"] = round(refusal["false_refusals"] / len(in_scope), 4) if in_scope else None
    by_sort = {}
    for sort in sorted({i.sort or "unlabelled" for i in out_of_scope}):
        group = [i for i in out_of_scope if (i.sort or "unlabelled") == sort]
        refused = sum(bool(records[i.id]["refused"]) for i in group)
        by_sort[sort] = {
            "n": len(group),
            "refused": refused,
            "answered": len(group) - refused,
            "refused_rate": round(refused / len(group), 4),
        }
    refusal["by_sort"] = by_sort
    return refusal


def coverage_curve(items: list[EvalItem], records: dict[str, dict], steps: int = 10) -> list[dict]:
    """Precision / recall of the coverage decision over this run's labelled rows, at several thresholds.

    Each record's `analysis.coverage.not_covered_probability` (the calibrated model's) is read;
    a refusal at a threshold is probability >= threshold, and out-of-scope rows are the positives.
    Rows answered from the catalogue, or refused before the model ran, carry no probability and
    are left out. Empty when no row carries one.
    """
    scored = [
        (float(p), i.kind == "out_of_scope")
        for i in items
        if i.kind and (p := _not_covered_probability(records[i.id])) is not None
    ]
    if not scored or not any(y for _, y in scored):
        return []
    curve = []
    for threshold in [round(x / steps, 2) for x in range(1, steps)]:
        refused = [(p >= threshold, y) for p, y in scored]
        tp = sum(r and y for r, y in refused)
        false_refusals = sum(r and not y for r, y in refused)
        curve.append(
            {
                "threshold": threshold,
                "precision": round(tp / max(sum(r for r, _ in refused), 1), 3),
                "recall": round(tp / sum(y for _, y in scored), 3),
                "false_refusal_rate": round(false_refusals / max(sum(not y for _, y in scored), 1), 3),
            }
        )
    return curve


def _not_covered_probability(record: dict) -> float | None:
    return ((record.get("analysis") or {}).get("coverage") or {}).get("not_covered_probability")


def paired(values: dict[str, dict], base_values: dict[str, dict], metrics: t.Sequence[str] = PAIRED) -> dict:
    """Advisor and baseline means over the rows both were scored on: {metric: {n, advisor, baseline}}.

    The advisor's refusals have no answer to score, the baseline never refuses: comparing each
    run's own mean would compare different questions.
    """
    out = {}
    for metric in metrics:
        both = [
            (v[metric], base_values[i][metric])
            for i, v in values.items()
            if v.get(metric) is not None and base_values.get(i, {}).get(metric) is not None
        ]
        out[metric] = {
            "n": len(both),
            "advisor": round(statistics.fmean(a for a, _ in both), 4) if both else None,
            "baseline": round(statistics.fmean(b for _, b in both), 4) if both else None,
        }
    return out


def compare_cases(summaries: dict[str, dict | None]) -> dict:
    """Case metrics by kind side by side: {kind: {"n": n, metric: {run: value}}} for the runs given."""
    out: dict[str, dict] = {}
    for run, summary in summaries.items():
        if not summary:
            continue
        for kind in CASE_KINDS:
            row = summary.get("by_kind", {}).get(kind)
            if not row:
                continue
            entry = out.setdefault(kind, {"n": row["n"]})
            for metric in CASE_METRICS:
                if row.get(metric) is not None:  # hit@3 and recall@5 are measured for cases like mine only
                    entry.setdefault(metric, {})[run] = row[metric]
    return out


def check_thresholds(summary: dict, thresholds: dict) -> list[str]:
    """The gate: every threshold the summary falls below, as readable lines.

    `[min]` and `[max]` are thresholds (a few points under the measured value); `[guard.min]` and
    `[guard.max]` are checks that hold by construction and fail only when something is broken.
    """
    failures = []
    for label, table in (("threshold", thresholds), ("guard", thresholds.get("guard", {}))):
        for name, minimum in table.get("min", {}).items():
            value = _lookup(summary, name)
            if value is None or value < minimum:
                failures.append(f"{name} = {value} is below the {label} {minimum}")
        for name, maximum in table.get("max", {}).items():
            value = _lookup(summary, name)
            if value is None or value > maximum:
                failures.append(f"{name} = {value} is above the {label} {maximum}")
    return failures


def thresholds_for(gate: dict, set_file: Path) -> dict:
    """The part of a thresholds file for this set: the table named after the set's file, if there is one."""
    table = gate.get(Path(set_file).stem)
    if isinstance(table, dict):
        return table
    if "min" in gate or "max" in gate or "guard" in gate:
        return gate  # a file for one set only
    raise AdvisorError(
        f"the thresholds file has no table for {Path(set_file).stem!r} "
        f"(it has {', '.join(sorted(gate)) or 'none'})"
    )


def _lookup(summary: dict, dotted: str) -> t.Any:
    node: t.Any = summary
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node
