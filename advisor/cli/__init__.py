"""The `advisor` command: argument parsing and rendering only; the work is in `Advisor`.

- `common.py`: the consoles, user-facing errors, progress lines, opening the advisor;
- `questions.py`: `ingest`, `ask`, `chat`, `sources`, and how an answer is printed;
- `feedback.py`: `advisor feedback export`;
- `history.py`: `advisor history list|show|export|purge`, the saved conversations.
Feature commands live with their feature: `advisor cases` (advisor/cases/cli.py), `advisor guidance`
(advisor/guidance/cli.py), `advisor eval`
and `advisor calibrate` (advisor/evaluation/), `advisor slack` (advisor/slack/cli.py).
"""

from __future__ import annotations

import gc

import typer

from advisor.cases.cli import register as register_cases
from advisor.cli.feedback import register as register_feedback
from advisor.cli.history import register as register_history
from advisor.cli.questions import answer_live, render_answer
from advisor.cli.questions import register as register_questions
from advisor.evaluation.calibrate import register as register_calibrate
from advisor.evaluation.cli import register as register_eval
from advisor.guidance.cli import register as register_guidance
from advisor.slack.cli import register as register_slack

__all__ = ["answer_live", "app", "main", "render_answer"]

app = typer.Typer(
    help="Spread Advisor: cited advice on scaling innovation in the NHS, from public reports.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for register in (
    register_questions,
    register_feedback,
    register_history,
    register_eval,
    register_calibrate,
    register_cases,
    register_guidance,
    register_slack,
):
    register(app)


def main() -> None:
    """Console-script entry point.

    The objects made by the imports, and at the end all of them, are frozen out of the cyclic
    garbage collector: its passes over them cost ~0.3 s of a cold `advisor ask`, and Python's
    own passes at exit another ~0.4 s, to free memory the process returns when it ends anyway.
    Objects still go when their last reference does; `advisor chat` keeps collecting what it
    makes after the imports.
    """
    gc.freeze()
    try:
        app()
    finally:
        gc.freeze()


if __name__ == "__main__":
    main()
