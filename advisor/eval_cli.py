"""`advisor eval`: answer a question set, score it with ragas, report, and optionally gate on thresholds."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from advisor.config import PROJECT_ROOT, Settings
from advisor.errors import AdvisorError

DEFAULT_THRESHOLDS = PROJECT_ROOT / "eval_sets" / "thresholds.toml"


def eval_command(
    set_file: Path = typer.Option(..., "--set", help="A JSONL question set (eval_sets/*.jsonl)."),
    out: Path = typer.Option(Path("eval_runs/latest"), "--out", help="Output folder (a re-run with it resumes)."),
    judge: bool = typer.Option(False, "--judge", help="Also ragas' LLM metrics with a judge LLM (ADVISOR_JUDGE_*)."),
    baseline: bool = typer.Option(False, "--baseline", help="Also the LangChain-tutorial baseline, side by side."),
    check: bool = typer.Option(False, "--check", help="Exit 1 when the summary is below the thresholds file."),
    lenient: bool = typer.Option(False, "--lenient", help="Skip malformed lines with a counted warning."),
    k: int = typer.Option(5, "-k", min=1, max=50, help="Passages per question."),
    thresholds: Path = typer.Option(DEFAULT_THRESHOLDS, "--thresholds", help="The regression gate (TOML)."),
) -> None:
    """Evaluate the advisor on a question set with ragas metrics; optionally gate on thresholds."""
    import tomllib

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from advisor import evaluation as ev
    from advisor.cli import _advisor, console, err, user_errors
    from advisor.eval_report import write_reports

    with user_errors():
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
            gate = tomllib.loads(thresholds.read_text(encoding="utf-8"))
        advisor = _advisor(settings, quiet=True)
        items = loaded.items
        out.mkdir(parents=True, exist_ok=True)

        def run(name: str, answer) -> tuple[dict, list[dict]]:
            bar = Progress(
                TextColumn(name), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
            )
            with bar:
                task = bar.add_task(name, total=len(items))
                records = ev.answer_all(
                    items, answer, out, f"{name}.{ev.RECORDS}", progress=lambda _item: bar.advance(task)
                )
            judge_metrics = ev.build_judge_metrics(judge_llm, advisor.embedder) if judge_llm else ()
            values, skipped = ev.score(items, records, advisor.embedder, k, judge_metrics)
            ev.write_results(out, items, records, values, ev.RESULTS if name == "advisor" else f"{name}.{ev.RESULTS}")
            summary = ev.summarise(items, records, values, skipped)
            summary["skipped_lines"] = len(loaded.warnings)
            results = [{**records[i.id], "kind": i.kind, "metrics": values[i.id]} for i in items]
            return summary, results

        summary, results = run("advisor", lambda q: advisor.ask(q, k=k).to_record())
        report = {"set": str(set_file), "k": k, "advisor": summary}
        base_summary = None
        if baseline:
            from advisor.baseline import TutorialBaseline

            err.print("baseline: indexing the raw reports the tutorial way (once per data folder)")
            tutorial = TutorialBaseline(settings.corpus_dir, settings.data_dir / "baseline", advisor.embedder, k=k)
            base_summary, _ = run("baseline", tutorial.ask)
            report["baseline"] = base_summary
        (out / ev.SUMMARY).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        write_reports(out, summary, results, base_summary)

        table = Table("metric", "advisor", *(["baseline"] if base_summary else []), "rows skipped")
        for name, value in summary["metrics"].items():
            row = [name, "-" if value is None else f"{value:.3f}"]
            if base_summary:
                b = base_summary["metrics"].get(name)
                row.append("-" if b is None else f"{b:.3f}")
            table.add_row(*row, str(summary["skipped"].get(name, 0)))
        console.print(table)
        console.print(f"refusal: {summary['refusal']}")
        console.print(f"wrote {out / ev.RESULTS}, {out / ev.SUMMARY}, {out / 'report.md'}, {out / 'report.html'}")
        if gate is not None:
            failures = ev.check_thresholds(summary, gate)
            for failure in failures:
                err.print(f"[bold red]below threshold:[/] {failure}", highlight=False, soft_wrap=True)
            if failures:
                raise typer.Exit(1)
            console.print("All thresholds met.")


def register(app: typer.Typer) -> None:
    """Add `advisor eval` to the main command."""
    app.command("eval")(eval_command)
