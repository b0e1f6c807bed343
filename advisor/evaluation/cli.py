"""`advisor eval`: answer a question set, score it with ragas, report, and optionally gate on thresholds."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from advisor.config import PROJECT_ROOT, Settings, force_offline
from advisor.errors import AdvisorError

DEFAULT_THRESHOLDS = PROJECT_ROOT / "eval_sets" / "thresholds.toml"
# the runs compared on questions across case studies, as the console names them
CASE_RUNS = {
    "advisor": "advisor (catalogue)",
    "passages": "passage retrieval (top-k case studies)",
    "baseline": "baseline (top-k case studies)",
}


def eval_command(
    set_file: Path = typer.Option(..., "--set", help="A JSONL question set (eval_sets/*.jsonl)."),
    out: Path = typer.Option(
        Path("eval_runs/latest"), "--out", help="Output folder (a re-run with it resumes)."
    ),
    judge: bool = typer.Option(
        False, "--judge", help="Also ragas' LLM metrics with a judge LLM (ADVISOR_JUDGE_*)."
    ),
    baseline: bool = typer.Option(
        False, "--baseline", help="Also the LangChain-tutorial baseline, side by side."
    ),
    check: bool = typer.Option(
        False, "--check", help="Exit 1 when the summary is below the thresholds file."
    ),
    lenient: bool = typer.Option(False, "--lenient", help="Skip malformed lines with a counted warning."),
    k: int = typer.Option(5, "-k", min=1, max=50, help="Passages per question."),
    thresholds: Path = typer.Option(DEFAULT_THRESHOLDS, "--thresholds", help="The regression gate (TOML)."),
) -> None:
    """Evaluate the advisor on a question set with ragas metrics; optionally gate on thresholds."""
    import tomllib

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from advisor import evaluation as ev
    from advisor.cli.common import console, err, user_errors
    from advisor.cli.common import open_advisor as _advisor
    from advisor.evaluation.report import case_runs, fmt, write_reports

    with user_errors():
        force_offline()
        settings = Settings()
        # everything that can be wrong with the inputs fails here, before any model loads
        loaded = ev.load_eval_set(set_file, settings.corpus_dir, lenient=lenient)
        for warning in loaded.warnings:
            err.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
        if loaded.warnings:
            err.print(f"[yellow]{len(loaded.warnings)} line(s) skipped[/] (--lenient)", highlight=False)
        judge_llm = ev.judge_llm_from_settings(settings) if judge else None
        gate = None
        if check:
            if not thresholds.exists():
                raise AdvisorError(f"--check needs a thresholds file; {thresholds} does not exist")
            gate = ev.thresholds_for(tomllib.loads(thresholds.read_text(encoding="utf-8")), set_file)
        advisor = _advisor(settings, quiet=True)
        items = loaded.items
        out.mkdir(parents=True, exist_ok=True)

        def answered(name: str, answer, questions: list[ev.EvalItem]) -> dict[str, dict]:
            bar = Progress(
                TextColumn(name), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
            )
            with bar:
                task = bar.add_task(name, total=len(questions))
                return ev.answer_all(
                    questions, answer, out, f"{name}.{ev.RECORDS}", progress=lambda _item: bar.advance(task)
                )

        def run(name: str, answer, named_by: str = "answer", prepare=None) -> tuple[dict, dict, list[dict]]:
            records = answered(name, answer, items)
            if prepare is not None:
                records = prepare(records)
            judge_metrics = ev.build_judge_metrics(judge_llm, advisor.embedder) if judge_llm else ()
            values, skipped = ev.score(
                items,
                records,
                advisor.embedder,
                k,
                judge_metrics,
                loaded.case_names,
                named_by,
                settings.corpus_dir,
            )
            ev.write_results(
                out, items, records, values, ev.RESULTS if name == "advisor" else f"{name}.{ev.RESULTS}"
            )
            summary = ev.summarise(items, records, values, skipped)
            summary["skipped_lines"] = len(loaded.warnings)
            results = [
                {**records[i.id], "kind": i.kind, "sort": i.sort, "metrics": values[i.id]} for i in items
            ]
            return summary, values, results

        summary, values, results = run("advisor", lambda q: advisor.ask(q, k=k).to_record())
        report = {"set": str(set_file), "k": k, "advisor": summary}
        passage_summary = base_summary = None
        across = [i for i in items if i.expected_cases and i.kind in ev.CASE_KINDS]
        if across and loaded.case_names is not None:
            # the same advisor with its catalogue off: the cases it names are its top-k passages' case studies
            records = answered(
                "passages", lambda q: advisor.ask(q, k=k, use_catalogue=False).to_record(), across
            )
            case_values, skipped = ev.score_cases(across, records, loaded.case_names, k)
            ev.write_results(out, across, records, case_values, f"passages.{ev.RESULTS}")
            passage_summary = ev.summarise(across, records, case_values, skipped)
            report["passages"] = passage_summary
        if baseline:
            from advisor.evaluation.baseline import CaseLocator, TutorialBaseline

            err.print("baseline: indexing the raw reports the tutorial way (once per data folder)")
            tutorial = TutorialBaseline(
                settings.corpus_dir, settings.data_dir / "baseline", advisor.embedder, k=k
            )
            locator = CaseLocator(settings.corpus_dir)
            base_summary, base_values, _ = run(
                "baseline", tutorial.ask, named_by="passages", prepare=locator.annotate
            )
            report["baseline"] = base_summary
            report["paired"] = ev.paired(values, base_values)
        report["cases"] = ev.compare_cases(
            {"advisor": summary, "passages": passage_summary, "baseline": base_summary}
        )
        (out / ev.SUMMARY).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        write_reports(out, summary, results, base_summary, report["cases"], report.get("paired"))
        print_summary(console, summary, base_summary, report.get("paired"))
        for kind, row in report["cases"].items():
            runs = case_runs({kind: row})
            cases = Table(f"{kind} (n={row['n']})", *(CASE_RUNS[r] for r in runs))
            for metric in ev.CASE_METRICS:
                if metric in row:
                    cases.add_row(metric, *(fmt(row[metric].get(r)) for r in runs))
            console.print(cases)
        console.print(
            f"wrote {out / ev.RESULTS}, {out / ev.SUMMARY}, {out / 'report.md'}, {out / 'report.html'}"
        )
        if gate is not None:
            failures = ev.check_thresholds(summary, gate)
            for failure in failures:
                err.print(f"[bold red]below threshold:[/] {failure}", highlight=False, soft_wrap=True)
            if failures:
                raise typer.Exit(1)
            console.print("All thresholds met.")


def print_summary(console, summary: dict, base_summary: dict | None, paired: dict | None) -> None:
    """The run's figures on the console: metrics (guards labelled), answer-level metrics by kind, refusals."""
    from rich.table import Table

    from advisor.evaluation.report import ANSWER_LEVEL, fmt, metric_label

    table = Table("metric", "advisor", *(["baseline"] if base_summary else []), "rows skipped")
    for name, value in summary["metrics"].items():
        row = [metric_label(name, summary), fmt(value)]
        if base_summary:
            row.append(fmt(base_summary["metrics"].get(name)))
        table.add_row(*row, str(summary["skipped"].get(name, 0)))
    for name, pair in (paired or {}).items():
        table.add_row(f"{name}, same {pair['n']} rows", fmt(pair["advisor"]), fmt(pair["baseline"]), "")
    console.print(table)
    by_kind = Table("kind", "n", "answered", "refused", "evidence@k", "exact@k", *ANSWER_LEVEL)
    for kind, row in summary["by_kind"].items():
        by_kind.add_row(
            kind,
            str(row["n"]),
            str(row["answered"]),
            str(row["refused"]),
            fmt(row.get("evidence_recall_at_k")),
            fmt(row.get("evidence_recall_exact")),
            *(fmt(row.get(m)) for m in ANSWER_LEVEL),
        )
    console.print(by_kind)
    confusion = Table("", "answered", "refused")
    for side, row in summary["confusion"].items():
        confusion.add_row(side.replace("_", " "), str(row["answered"]), str(row["refused"]))
    for sort, row in summary["refusal"]["by_sort"].items():
        confusion.add_row(f"  out of scope: {sort}", str(row["answered"]), str(row["refused"]))
    console.print(confusion)


def register(app: typer.Typer) -> None:
    """Add `advisor eval` to the main command."""
    app.command("eval")(eval_command)
