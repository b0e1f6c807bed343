"""`advisor guidance`: print the guidance map, or the themes for an audience, stage or theme."""

from __future__ import annotations

import json

import typer

from advisor.guidance.model import AUDIENCES, STAGES


def guidance(
    as_json: bool = typer.Option(False, "--json", help="Print JSON (a list of themes) instead of text."),
    theme: str | None = typer.Option(None, "--theme", "-t", help="Only this theme (its id or title)."),
    audience: str | None = typer.Option(
        None, "--for", help=f"Only the points for this audience: {', '.join(AUDIENCES)}."
    ),
    stage: str | None = typer.Option(
        None, "--stage", help=f"Only the points for this stage: {', '.join(STAGES)}."
    ),
) -> None:
    """What the reports advise, by theme: each theme's statement and its quoted points."""
    from advisor.cli.common import console, user_errors
    from advisor.config import Settings
    from advisor.errors import AdvisorError
    from advisor.guidance.holder import Guidance

    with user_errors(json_output=as_json):
        holder = Guidance(Settings().corpus_dir)
        served = holder.reload()
        if served is None:
            raise AdvisorError(holder.error or f"there is no guidance map at {holder.path}")
        themes = served.filtered(audience=audience, stage=stage, theme=theme)
    if as_json:
        print(json.dumps([t.to_json() for t in themes], indent=2, ensure_ascii=False))
        return
    for t in themes:
        _print_theme(console, t)
    points = sum(len(t.points) for t in themes)
    wanted = [f"for {audience}" if audience else "", f"at stage {stage}" if stage else ""]
    which = " ".join(w for w in wanted if w)
    console.print(
        f"{len(themes)} of {len(served.themes)} themes, {points} points{' ' + which if which else ''}. "
        "`advisor guidance --json` prints them as JSON.",
        highlight=False,
    )


def _print_theme(console, theme) -> None:
    console.print(f"[bold]{_escape(theme.title)}[/] ({theme.id})", highlight=False)
    console.print(f"  {_escape(theme.statement)}", highlight=False)
    console.print(f"  for: {', '.join(theme.audiences)}; stages: {', '.join(theme.stages)}", highlight=False)
    for p in theme.points:
        console.print(f"  - {_escape(p.point)}", highlight=False)
        console.print(
            f"    “{_escape(p.quote)}” ({p.source}, {_escape(p.section)}, line {p.line})", highlight=False
        )
    if theme.cases:
        console.print(f"  cases: {_escape(', '.join(theme.cases))}", highlight=False)
    console.print("")


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def register(app: typer.Typer) -> None:
    """Add the `guidance` command to the `advisor` CLI."""
    app.command("guidance")(guidance)
