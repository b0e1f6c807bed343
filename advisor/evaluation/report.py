"""Human reports of an evaluation run: report.md and a self-contained report.html (inline SVG)."""

from __future__ import annotations

import html
import json
from pathlib import Path

ANSWER_LEVEL = ["key_fact_recall", "cited_evidence_hit", "filler_share"]  # does the answer carry it
HEADLINE = [
    *ANSWER_LEVEL,
    "evidence_recall_at_k",
    "evidence_recall_exact",
    "non_llm_context_recall",
    "non_llm_context_precision_with_reference",
    "citation_faithfulness",
    "refusal_accuracy",
    "semantic_similarity",
    "rouge_score(mode=fmeasure)",
]


def fmt(value) -> str:
    """A metric as shown in reports and on the console: three decimals, "-" when not measured."""
    return "-" if value is None else f"{value:.3f}"


def metric_label(name: str, summary: dict) -> str:
    """A metric's name as reported: a guard (true by construction for this answerer) says so."""
    return f"{name} (guard: true by construction)" if name in summary.get("guards", {}) else name


def _confusion_md(summary: dict) -> list[str]:
    """The answered / refused table: in scope, out of scope, and out of scope by sort."""
    lines = ["| questions | answered | refused |", "|---|---|---|"]
    for side, row in summary.get("confusion", {}).items():
        lines.append(f"| {side.replace('_', ' ')} | {row['answered']} | {row['refused']} |")
    for sort, row in summary["refusal"].get("by_sort", {}).items():
        lines.append(f"| out of scope: {sort} | {row['answered']} | {row['refused']} |")
    return lines


def _bars(rows: list[tuple[str, float | None]], width: int = 420) -> str:
    """A horizontal bar chart of values in [0, 1] as inline SVG."""
    height = 22 * len(rows) + 10
    parts = [f"<svg width='{width + 300}' height='{height}' role='img'>"]
    for i, (label, value) in enumerate(rows):
        y = 5 + 22 * i
        v = value or 0.0
        parts.append(f"<text x='0' y='{y + 14}' font-size='12'>{html.escape(label[:38])}</text>")
        parts.append(f"<rect x='250' y='{y}' width='{width}' height='16' fill='#eef2ff'/>")
        parts.append(f"<rect x='250' y='{y}' width='{width * v:.1f}' height='16' fill='#4f46e5'/>")
        parts.append(f"<text x='{width + 255}' y='{y + 13}' font-size='12'>{fmt(value)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def _paired_bars(
    rows: list[tuple[str, float | None, float | None]],
    width: int = 360,
    legend: tuple[str, str] = ("advisor", "baseline"),
) -> str:
    """Two runs side by side per label (advisor dark, baseline light by default), values in [0, 1], inline SVG."""
    height = 40 * len(rows) + 30
    parts = [
        f"<svg width='{width + 300}' height='{height}' role='img'>",
        f"<rect x='250' y='2' width='12' height='10' fill='#4f46e5'/><text x='266' y='11' font-size='11'>{html.escape(legend[0])}</text>",
        (
            f"<rect x='{266 + 7 * len(legend[0]) + 12}' y='2' width='12' height='10' fill='#f59e0b'/>"
            f"<text x='{266 + 7 * len(legend[0]) + 28}' y='11' font-size='11'>{html.escape(legend[1])}</text>"
        ),
    ]
    for i, (label, ours, theirs) in enumerate(rows):
        y = 22 + 40 * i
        parts.append(f"<text x='0' y='{y + 20}' font-size='12'>{html.escape(label[:38])}</text>")
        for j, (value, colour) in enumerate(((ours, "#4f46e5"), (theirs, "#f59e0b"))):
            yy = y + 17 * j
            parts.append(f"<rect x='250' y='{yy}' width='{width}' height='14' fill='#f3f4f6'/>")
            parts.append(
                f"<rect x='250' y='{yy}' width='{width * (value or 0.0):.1f}' height='14' fill='{colour}'/>"
            )
            parts.append(f"<text x='{width + 255}' y='{yy + 12}' font-size='11'>{fmt(value)}</text>")
    parts.append("</svg>")
    return "".join(parts)


def _refusal_line(refusal: dict) -> str:
    return (
        f"Refused {refusal['refused_out_of_scope']} of {refusal['out_of_scope']} out-of-scope questions "
        f"(accuracy {fmt(refusal['refusal_accuracy_out_of_scope'])}); false refusals "
        f"{refusal['false_refusals']} of {refusal['in_scope']} in-scope (rate {fmt(refusal['false_refusal_rate'])})."
    )


def _histogram(values: list[float], bins: int = 10, width: int = 300, height: int = 80) -> str:
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, max(0, int(v * bins)))] += 1
    top = max(counts) or 1
    bar = width / bins
    parts = [f"<svg width='{width}' height='{height + 16}' role='img'>"]
    for i, c in enumerate(counts):
        h = height * c / top
        parts.append(
            f"<rect x='{i * bar:.1f}' y='{height - h:.1f}' width='{bar - 2:.1f}' height='{h:.1f}' fill='#0ea5e9'/>"
        )
    parts.append(f"<text x='0' y='{height + 13}' font-size='10'>0</text>")
    parts.append(f"<text x='{width - 10}' y='{height + 13}' font-size='10'>1</text></svg>")
    return "".join(parts)


def worst(results: list[dict], n: int = 8) -> list[dict]:
    """The questions with the lowest evidence recall (then semantic similarity)."""

    def key(row):
        m = row.get("metrics", {})
        return (
            m.get("evidence_recall_at_k") if m.get("evidence_recall_at_k") is not None else 2,
            m.get("refusal_accuracy", 1),
            m.get("semantic_similarity") or 0,
        )

    return sorted(results, key=key)[:n]


CASE_RUN_LABELS = {"advisor": "advisor (catalogue)", "passages": "passage retrieval", "baseline": "baseline"}
CASE_NOTE = (
    "Questions across case studies (`expected_cases`). The advisor counts a case when a sentence "
    "naming it carries a citation; passage retrieval is the same advisor with the catalogue switched "
    "off and the baseline is the tutorial RAG, both counting the case studies of their top-k passages. "
    "Recall: share of expected cases named; precision: share of named cases expected; hit@3 and "
    "recall@5 (cases like mine) look at the first cases named."
)


def _case_rows(cases: dict) -> list[tuple[str, str, int, dict]]:
    """(kind, metric, n, {run: value}) for every case metric measured."""
    return [
        (kind, metric, row["n"], row[metric])
        for kind, row in cases.items()
        for metric in row
        if metric != "n"
    ]


def case_runs(cases: dict) -> list[str]:
    """The runs (advisor, passages, baseline, in that order) with a case metric measured in `cases`."""
    return [r for r in CASE_RUN_LABELS if any(r in values for *_, values in _case_rows(cases))]


def write_reports(
    out_dir: Path,
    summary: dict,
    results: list[dict],
    baseline: dict | None = None,
    cases: dict | None = None,
    paired: dict | None = None,
) -> None:
    """Write report.md and report.html next to summary.json (`cases`: `summary.compare_cases`,
    `paired`: `summary.paired`, advisor and baseline on the same rows)."""
    metrics = summary["metrics"]
    names = [m for m in HEADLINE if m in metrics] + sorted(set(metrics) - set(HEADLINE))
    md = [
        f"# Evaluation report\n\n{summary['n']} questions. {_refusal_line(summary['refusal'])}\n",
        "| metric | advisor | baseline | skipped rows |",
        "|---|---|---|---|",
    ]
    for m in names:
        b = baseline["metrics"].get(m) if baseline else None
        md.append(
            f"| {metric_label(m, summary)} | {fmt(metrics[m])} | {fmt(b)} | {summary['skipped'].get(m, 0)} |"
        )
    for m, pair in (paired or {}).items():
        md.append(f"| {m}, same {pair['n']} rows | {fmt(pair['advisor'])} | {fmt(pair['baseline'])} | |")
    for m, why in summary.get("guards", {}).items():
        md.append(f"\n{m} is a guard, not a result: {why}.")
    md.append("\n## Answered or refused\n")
    md += _confusion_md(summary)
    if summary.get("coverage_curve"):
        md.append("\n### The coverage decision at other thresholds (this run's rows)\n")
        md.append(
            "| threshold | precision (refused that are out of scope) | recall (out of scope refused) | false refusal rate |"
        )
        md.append("|---|---|---|---|")
        md += [
            f"| {c['threshold']} | {c['precision']} | {c['recall']} | {c['false_refusal_rate']} |"
            for c in summary["coverage_curve"]
        ]
    md.append("\n## By kind\n")
    md.append("| kind | n | " + " | ".join(names) + " |")
    md.append("|---|---|" + "---|" * len(names))
    for kind, row in summary["by_kind"].items():
        md.append(f"| {kind} | {row['n']} | " + " | ".join(fmt(row.get(m)) for m in names) + " |")
    if baseline:
        md.append("\n## Advisor vs baseline by kind and report (evidence recall@k)\n")
        md.append("| group | n | advisor | baseline |")
        md.append("|---|---|---|---|")
        for groups, base_groups in (
            (summary["by_kind"], baseline["by_kind"]),
            (summary["by_report"], baseline["by_report"]),
        ):
            for key, row in groups.items():
                b = base_groups.get(key, {}).get("evidence_recall_at_k")
                md.append(f"| {key} | {row['n']} | {fmt(row.get('evidence_recall_at_k'))} | {fmt(b)} |")
    if cases:
        runs = case_runs(cases)
        md.append("\n## Case studies: catalogue vs passage retrieval\n\n" + CASE_NOTE + "\n")
        md.append("| kind | n | metric | " + " | ".join(CASE_RUN_LABELS[r] for r in runs) + " |")
        md.append("|---|---|---|" + "---|" * len(runs))
        for kind, metric, n, values in _case_rows(cases):
            md.append(f"| {kind} | {n} | {metric} | " + " | ".join(fmt(values.get(r)) for r in runs) + " |")
    md.append("\n## By report\n")
    md.append("| report | n | " + " | ".join(names) + " |")
    md.append("|---|---|" + "---|" * len(names))
    for source, row in summary["by_report"].items():
        md.append(f"| {source} | {row['n']} | " + " | ".join(fmt(row.get(m)) for m in names) + " |")
    md.append("\n## Worst questions\n")
    for row in worst(results):
        md.append(
            f"### {row['id']} ({row.get('kind')}): {row['question']}\n\n{row['answer']}\n\n"
            f"metrics: {json.dumps(row.get('metrics', {}))}\n"
        )
        for p in row.get("passages", [])[:2]:
            md.append(f"> [{p['rank']}] {p['source']} - {p.get('section', '')}: {p['text'][:300]}...\n")
    (out_dir / "report.md").write_text("\n".join(md) + "\n", encoding="utf-8")

    rows = [(metric_label(m, summary), metrics[m]) for m in names]
    confusion = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell.strip(' |'))}</td>" for cell in line.split(" | ")) + "</tr>"
        for line in _confusion_md(summary)[2:]
    )
    sections = [
        (
            f"<h1>Evaluation report</h1><p>{summary['n']} questions; latency p50 "
            f"{summary.get('latency_ms_p50')} ms. {html.escape(_refusal_line(summary['refusal']))}</p>"
        ),
        "<h2>Metrics (advisor)</h2>",
        _bars(rows),
        *(
            f"<p>{html.escape(m)} is a guard, not a result: {html.escape(why)}.</p>"
            for m, why in summary.get("guards", {}).items()
        ),
        (
            "<h2>Answered or refused</h2><table border='1' cellpadding='4'>"
            f"<tr><th>questions</th><th>answered</th><th>refused</th></tr>{confusion}</table>"
        ),
    ]
    if baseline:
        sections += [
            "<h2>Advisor vs baseline (LangChain tutorial RAG), same questions</h2>",
            _paired_bars(
                [(m, metrics[m], baseline["metrics"].get(m)) for m in names]
                + [
                    (f"{m}, same {p['n']} rows", p["advisor"], p["baseline"])
                    for m, p in (paired or {}).items()
                ]
            ),
            "<h3>Evidence recall@k by kind and report</h3>",
            _paired_bars(
                [
                    (key, row.get("evidence_recall_at_k"), base.get(key, {}).get("evidence_recall_at_k"))
                    for groups, base in (
                        (summary["by_kind"], baseline["by_kind"]),
                        (summary["by_report"], baseline["by_report"]),
                    )
                    for key, row in groups.items()
                ]
            ),
        ]
    if cases:
        runs = case_runs(cases)
        head = "".join(f"<th>{html.escape(CASE_RUN_LABELS[r])}</th>" for r in runs)
        body = "".join(
            f"<tr><td>{html.escape(kind)}</td><td>{n}</td><td>{html.escape(metric)}</td>"
            + "".join(f"<td>{fmt(values.get(r))}</td>" for r in runs)
            + "</tr>"
            for kind, metric, n, values in _case_rows(cases)
        )
        sections += [
            "<h2>Case studies: catalogue vs passage retrieval</h2>",
            f"<p>{html.escape(CASE_NOTE)}</p>",
            f"<table border='1' cellpadding='4'><tr><th>kind</th><th>n</th><th>metric</th>{head}</tr>{body}</table>",
            _paired_bars(
                [
                    (f"{kind} {metric}", values.get("advisor"), values.get("passages"))
                    for kind, metric, _, values in _case_rows(cases)
                ],
                legend=("advisor (catalogue)", "passage retrieval"),
            ),
        ]
    sections.append("<h2>Distributions</h2>")
    for m in names:
        vals = [r["metrics"][m] for r in results if r.get("metrics", {}).get(m) is not None]
        if vals:
            sections.append(f"<h3>{html.escape(m)}</h3>{_histogram(vals)}")
    for title, groups in (("By kind", summary["by_kind"]), ("By report", summary["by_report"])):
        sections.append(f"<h2>{title}</h2>")
        for key, row in groups.items():
            sections.append(
                f"<h3>{html.escape(key)} (n={row['n']})</h3>" + _bars([(m, row.get(m)) for m in names])
            )
    sections.append("<h2>Worst questions</h2>")
    for row in worst(results):
        passages = "".join(
            f"<li><b>{html.escape(p['source'])}</b>: {html.escape(p['text'][:400])}</li>"
            for p in row.get("passages", [])[:3]
        )
        sections.append(
            f"<h3>{html.escape(row['id'])}: {html.escape(row['question'])}</h3><p>{html.escape(row['answer'])}</p>"
            f"<pre>{html.escape(json.dumps(row.get('metrics', {})))}</pre><ol>{passages}</ol>"
        )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Evaluation report</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;}</style></head><body>"
        + "".join(sections)
        + "</body></html>"
    )
    (out_dir / "report.html").write_text(page, encoding="utf-8")
