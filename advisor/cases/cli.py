"""`advisor cases`: print the case-study catalogue, or the cases most like a description."""

from __future__ import annotations

import json

import typer


def cases(
    like: str | None = typer.Option(
        None, "--like", help="Describe your innovation and setting; rank similar cases."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    k: int = typer.Option(5, "-k", min=1, max=50, help="How many similar cases to show with --like."),
    tag: list[str] = typer.Option(
        [],
        "--tag",
        "-t",
        help="Only cases with this tag, as FIELD=VALUE (e.g. setting='primary care'); repeatable.",
    ),
) -> None:
    """List the catalogued case studies with their cited evidence, or rank those like yours."""
    from advisor.cli.common import console, err, user_errors
    from advisor.config import Settings, force_offline

    with user_errors(json_output=as_json):
        from advisor.advisor import clean_question
        from advisor.cases import CaseCatalogue
        from advisor.errors import CatalogueError

        force_offline()
        settings = Settings()
        picked: dict[str, list[str]] = {}
        for item in tag:
            field, sep, value = item.partition("=")
            if not sep or not value.strip():
                raise CatalogueError(f"--tag must look like FIELD=VALUE, got {item!r}")
            picked.setdefault(field.strip(), []).append(value.strip())
        if like is not None and like.strip():  # read as a question is (not UTF-8, too long...)
            like = clean_question(like, settings.max_question_chars)
        embedder = None
        if like is not None:
            from advisor.embedding import make_embeddings

            embedder = make_embeddings(settings)
        catalogue = CaseCatalogue.load(settings.corpus_dir, embedder, cache_dir=settings.data_dir)
        pool = catalogue.filter(**picked)
        if like is None:
            if as_json:
                print(json.dumps([c.to_record() for c in pool], indent=2, ensure_ascii=False))
                return
            _print_table(console, pool, len(catalogue))
            return
        if not like.strip() and not picked:
            raise CatalogueError("--like needs a description of your innovation and setting")
        matches = catalogue.like(like, k=k, tags=picked or None)
        if as_json:
            print(json.dumps([m.to_record() for m in matches], indent=2, ensure_ascii=False))
        else:
            _print_matches(console, matches)
        if not matches:
            err.print(
                "No similar case: nothing in the description matches the innovation type, setting, "
                "organisation or spread of any catalogued case study.",
                highlight=False,
            )


def _print_table(console, pool, total: int) -> None:
    from rich.table import Table

    table = Table("case study", "report", "type", "setting", "spread through", show_lines=False)
    for case in pool:
        tags = case.tags
        table.add_row(
            case.name,
            case.report,
            ", ".join(tags["innovation_type"]),
            ", ".join(tags["setting"]) or "-",
            ", ".join(tags["mechanism"]) or "-",
        )
    console.print(table)
    console.print(
        f"{len(pool)} of {total} case studies. `advisor cases --json` prints every value with its quote."
    )


def _print_matches(console, matches) -> None:
    for n, m in enumerate(matches, start=1):
        case = m.case
        console.print(f"[bold]{n}. {case.name}[/] ({case.report}) score {m.score:.2f}", highlight=False)
        console.print(f"   {case.description}", highlight=False)
        if m.reasons:
            console.print("   why: " + "; ".join(m.reasons), highlight=False)
        if m.differences:
            console.print("   differs: " + "; ".join(m.differences), highlight=False)
        for e in m.citations:
            console.print(
                f"   - {e.field} = {e.value}: “{e.quote}” ({case.source}, line {e.line})", highlight=False
            )


def register(app: typer.Typer) -> None:
    """Add the `cases` command to the `advisor` CLI."""
    app.command("cases")(cases)
