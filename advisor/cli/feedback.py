"""`advisor feedback ...`: export the verdicts people left on answers (web page and Slack)."""

from __future__ import annotations

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
        from advisor.feedback import FeedbackStore, iter_verdicts

        store = FeedbackStore(Settings().database_url, read_only=True)
        if out is None:
            count = store.export(sys.stdout, fmt)
        else:
            with out.open("w", encoding="utf-8", newline="") as f:
                count = store.export(f, fmt)
        counts = iter_verdicts(store.list())
        err.print(f"{count} feedback rows exported ({counts['up']} up, {counts['down']} down).")


def register(app: typer.Typer) -> None:
    """Add the `feedback` command group to the `advisor` CLI."""
    app.add_typer(feedback_app, name="feedback")
