"""`advisor ingest | ask | chat | sources`: build the index and ask it questions."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from advisor.cli.common import console, err, open_advisor, print_ingest_summary, progress_bar, user_errors
from advisor.config import Settings
from advisor.errors import AdvisorError
from advisor.types import Answer, Filters


def ingest(
    paths: list[Path] = typer.Argument(None, help="Files or folders (default: the corpus folder)."),
    rebuild: bool = typer.Option(False, "--rebuild", help="Re-chunk and re-embed everything."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Build or refresh the index from the reports."""
    with user_errors():
        from advisor.advisor import build_advisor

        advisor = build_advisor(Settings(), load=False)
        with progress_bar(not quiet) as progress:
            report = advisor.ingest(paths or None, rebuild=rebuild, progress=progress)
        print_ingest_summary(report)


def render_answer(answer: Answer, to: Console = console) -> None:
    """Print an answer with its citations and (for refusals) the closest passages."""
    if answer.query and answer.query != answer.question:
        to.print(f"[dim]Searched for: {answer.query}[/]", highlight=False)
    for note in answer.notes:
        to.print(f"[yellow]Note:[/] {note}", highlight=False)
    to.print(answer.text, highlight=False, soft_wrap=True)
    flagged = [s for s in answer.sentences if s.verdict != "supported"]
    for s in flagged:
        to.print(f"[red]  ({s.verdict})[/] {s.text}", highlight=False)
    if answer.citations:
        to.print("\n[bold]Sources[/]")
        for c in answer.citations:
            r = c.to_record()
            where = " > ".join(x for x in (r["title"], r["section"], r["case_study"]) if x)
            page = f", p. {r['page']}" if r.get("page") else ""
            to.print(f"[{c.marker}] {where}{page}", highlight=False)
    elif answer.refused and answer.passages:
        to.print("\n[bold]Closest passages[/]")
        for p in answer.passages[:3]:
            c = p.chunk
            to.print(f"- {c.title} > {c.section}: {c.text[:200]}...", highlight=False)


def answer_live(
    advisor,
    question: str,
    history: list | None = None,
    filters: Filters | None = None,
    k: int | None = None,
    to: Console = console,
) -> Answer:
    """Ask, showing an LLM's text as it streams (on a terminal), then return the verified answer.

    The streamed text is a draft: the verifier may flag or drop sentences, or replace the reply
    with the quoted answer, so the live view is cleared and `render_answer` prints the result.
    """
    if not (to.is_terminal and getattr(advisor, "llm_answerer", None) is not None):
        return advisor.ask(question, history=history, filters=filters, k=k)
    from rich.live import Live
    from rich.text import Text

    draft: list[str] = []
    with Live(Text(""), console=to, transient=True, refresh_per_second=8) as live:

        def show(delta: str) -> None:
            draft.append(delta)
            live.update(Text("".join(draft), style="dim"))

        return advisor.ask(question, history=history, filters=filters, k=k, on_delta=show)


def ask(
    question: str = typer.Argument(..., help="Your question, in quotes."),
    as_json: bool = typer.Option(False, "--json", help="Print the JSON record."),
    k: int | None = typer.Option(None, "-k", min=1, max=50, help="Passages to retrieve."),
    doc: list[str] = typer.Option(None, "--doc", help="Only this report (corpus file name)."),
    case_study: list[str] = typer.Option(None, "--case-study", help="Only this case study."),
) -> None:
    """Answer one question with cited evidence."""
    with user_errors(json_output=as_json):
        from advisor.advisor import clean_question

        settings = Settings()
        clean_question(question, settings.max_question_chars)  # fail fast, before loading models
        advisor = open_advisor(settings, quiet=as_json)
        filters = Filters(sources=tuple(doc or ()), case_studies=tuple(case_study or ()))
        if as_json:
            answer = advisor.ask(question, filters=filters or None, k=k)
            sys.stdout.write(json.dumps(answer.to_record(), ensure_ascii=False, indent=2) + "\n")
        else:
            render_answer(answer_live(advisor, question, filters=filters or None, k=k))


def chat() -> None:
    """A conversation in the terminal; follow-up questions use what was said before."""
    with user_errors():
        advisor = open_advisor()
    history: list[dict] = []
    console.print("Ask about scaling and spreading innovation in the NHS. Empty line or Ctrl-D to quit.")
    while True:
        try:
            question = console.input("[bold green]you>[/] ")
        except (EOFError, KeyboardInterrupt):
            break
        if not question.strip():
            break
        try:
            answer = answer_live(advisor, question, history=history)
        except AdvisorError as exc:
            err.print(f"[bold red]Error:[/] {exc}", highlight=False)
            continue
        render_answer(answer)
        console.print()
        history += [
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer.text},
        ]


def sources(as_json: bool = typer.Option(False, "--json")) -> None:
    """The indexed reports, their case studies and chunk counts."""
    with user_errors(json_output=as_json):
        advisor = open_advisor(quiet=as_json)
        docs = advisor.sources()
    if as_json:
        sys.stdout.write(json.dumps([vars(d) for d in docs], indent=2) + "\n")
        return
    table = Table("report", "publisher", "year", "chunks", "case studies (chunks)")
    for d in docs:
        cases = "\n".join(f"{name} ({n})" for name, n in sorted(d.case_studies.items()))
        table.add_row(f"{d.title}\n[dim]{d.source}[/]", d.publisher, str(d.year or ""), str(d.chunks), cases)
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add the question commands to the `advisor` CLI."""
    for command in (ingest, ask, chat, sources):
        app.command()(command)
