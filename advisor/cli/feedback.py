"""`advisor feedback ...`: export the verdicts people left on answers (web page and Slack)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import typer

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


def register(app: typer.Typer) -> None:
    """Add the `feedback` command group to the `advisor` CLI."""
    app.add_typer(feedback_app, name="feedback")
