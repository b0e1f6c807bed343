"""`advisor feedback ...`: export the verdicts people left on answers (web page and Slack), and
turn the thumbs-down and refused questions into question-set rows to complete (`to-eval`)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import typer

from advisor.config import PROJECT_ROOT

KNOWN_SETS = [PROJECT_ROOT / "eval_sets" / "dev.jsonl", PROJECT_ROOT / "eval_sets" / "test.jsonl"]

feedback_app = typer.Typer(help="Feedback people left on answers (web page and Slack).", no_args_is_help=True)


@feedback_app.command("export")
def feedback_export(
    fmt: str = typer.Option("csv", "--format", "-f", help="csv or jsonl"),
    out: Path | None = typer.Option(None, "--out", "-o", help="File to write (default: stdout)."),
) -> None:
    """Export every stored verdict and comment, with the answer and its citations."""
    from advisor.cli.common import err, user_errors
    from advisor.config import Settings

    with user_errors():
        from advisor.feedback import FeedbackStore, iter_verdicts, write_feedback

        items = FeedbackStore(Settings().database_url, read_only=True).list()
        buffer = io.StringIO()  # written whole, so a failed export leaves an earlier file as it was
        count = write_feedback(buffer, items, fmt)
        if out is None:
            sys.stdout.write(buffer.getvalue())
        else:
            out.write_text(buffer.getvalue(), encoding="utf-8", newline="")
        counts = iter_verdicts(items)
        err.print(f"{count} feedback rows exported ({counts['up']} up, {counts['down']} down).")


@feedback_app.command("to-eval")
def feedback_to_eval(
    out: Path = typer.Option(..., "--out", "-o", help="The JSONL file to write (dev-split rows)."),
    exclude: list[Path] = typer.Option(
        KNOWN_SETS,
        "--exclude",
        help="A question set whose questions are left out; repeat for several (default: dev and test).",
        show_default=False,
    ),
) -> None:
    """Write the thumbs-down questions (with their comments) and the refused questions as dev rows
    for a person to complete: each question once, no reference yet (`advisor eval --set` runs them)."""
    from advisor.cli.common import err, user_errors, write_whole
    from advisor.config import Settings
    from advisor.errors import AdvisorError

    with user_errors():
        from advisor.db import make_engine, shown_url
        from advisor.insights import eval_rows, set_questions

        url = Settings().database_url
        found = eval_rows(make_engine(url, read_only=True), known=set_questions(exclude))
        if not found.rows:
            also = f" ({found.known} already in a question set)" if found.known else ""
            raise AdvisorError(
                f"No thumbs-down or refused questions are stored in {shown_url(url)}{also}: nothing to write."
            )
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in found.rows)
        write_whole(out, text.encode("utf-8"))  # no half-written set
        err.print(
            f"{len(found.rows)} rows written to {out}: {found.count('thumbs_down')} thumbs-down, "
            f"{found.count('refused')} refused"
            + (f"; {found.known} questions left out, already in a question set." if found.known else "."),
            highlight=False,
            soft_wrap=True,
        )


def register(app: typer.Typer) -> None:
    """Add the `feedback` command group to the `advisor` CLI."""
    app.add_typer(feedback_app, name="feedback")
