"""`advisor history ...`: the saved conversations (web page and Slack), for whoever runs the advisor:
list them, show one, export one as a brief to take away, and purge the old ones.

Listing, showing and exporting open the database read-only; only `purge` writes.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any

import typer

from advisor.errors import AdvisorError

history_app = typer.Typer(
    help="Saved conversations (web page and Slack): list, show, export a brief, purge.",
    no_args_is_help=True,
)

NOTHING_STORED = "No conversations stored yet."


class BriefFormat(str, Enum):
    md = "md"
    docx = "docx"


@history_app.command("list")
def history_list(as_json: bool = typer.Option(False, "--json", help="Print a JSON list.")) -> None:
    """Every stored conversation, the latest first: id, user, channel, title, created, answers."""
    from advisor.cli.common import console, err, user_errors

    with user_errors(json_output=as_json):
        with _reading() as store:
            items = store.list() if store is not None else []
        if as_json:
            _print_json([s.to_record() for s in items])
        if not items:
            err.print(NOTHING_STORED)
        elif not as_json:
            console.print(_table(items))


@history_app.command("show")
def history_show(
    conversation_id: str = typer.Argument(
        ..., metavar="ID", help="The conversation's id (see `advisor history list`)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the conversation as JSON."),
) -> None:
    """A conversation's questions and answers, with their citations."""
    from advisor.cli.common import console, user_errors

    with user_errors(json_output=as_json):
        conversation = _conversation(conversation_id)
        if as_json:
            _print_json(conversation.to_record())
            return
        from rich.markdown import Markdown

        from advisor.brief import brief_markdown, report_urls
        from advisor.config import Settings

        console.print(_header(conversation), highlight=False)
        if not conversation.turns:
            console.print("No answers yet.")
            return
        console.print(Markdown(brief_markdown(conversation, report_urls(Settings().corpus_dir))))


@history_app.command("export")
def history_export(
    conversation_id: str = typer.Argument(
        ..., metavar="ID", help="The conversation's id (see `advisor history list`)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="File to write the brief to.", dir_okay=False),
    fmt: BriefFormat | None = typer.Option(
        None, "--format", "-f", help="md or docx (default: from the file's name, else md)."
    ),
) -> None:
    """Write a conversation as a brief to take away: its answers and one list of references."""
    from advisor.cli.common import err, user_errors, write_whole

    with user_errors():
        from advisor.brief import brief_docx, brief_markdown, report_urls
        from advisor.config import Settings

        fmt = fmt or (BriefFormat.docx if out.suffix.lower() == ".docx" else BriefFormat.md)
        conversation = _conversation(conversation_id)
        urls = report_urls(Settings().corpus_dir)
        if fmt is BriefFormat.docx:
            data = brief_docx(conversation, urls)
        else:
            data = brief_markdown(conversation, urls).encode("utf-8")
        write_whole(out, data)
        answers = len(conversation.turns)
        err.print(f"Wrote the brief of {answers} answer{'s' * (answers != 1)} to {out}.", highlight=False)


@history_app.command("purge")
def history_purge() -> None:
    """Delete the conversations untouched for longer than ADVISOR_RETENTION_DAYS."""
    from advisor.cli.common import console, user_errors

    with user_errors():
        from advisor.config import Settings
        from advisor.db import open_database, sqlite_path
        from advisor.history import ConversationStore

        settings = Settings()
        days = settings.retention_days
        if days is None:
            console.print(
                "Retention is off (ADVISOR_RETENTION_DAYS is unset): conversations are kept until deleted."
            )
            return
        path = sqlite_path(settings.database_url)
        if path is not None and not path.exists():
            console.print(f"{NOTHING_STORED} Nothing to purge.")
            return
        with _database_errors(settings.database_url, "purge conversations in"):
            store = ConversationStore(open_database(settings.database_url), days)  # purges as it opens
            store.purge()
        gone = store.purged
        console.print(
            f"Deleted {gone} conversation{'s' * (gone != 1)} untouched for more than {days:g} days.",
            highlight=False,
        )


# ---- reading the store -------------------------------------------------------------------
@contextmanager
def _reading() -> Iterator[Any]:
    """The conversation store opened read-only; None when nothing has been stored yet."""
    from sqlalchemy import inspect

    from advisor.config import Settings
    from advisor.db import make_engine, sqlite_path
    from advisor.history import ConversationStore

    url = Settings().database_url
    path = sqlite_path(url)
    if path is not None and not path.exists():
        yield None
        return
    with _database_errors(url, "read conversations from"):
        engine = make_engine(url, read_only=True)
        try:
            stored = inspect(engine).has_table("conversations")
            yield ConversationStore(engine) if stored else None
        finally:
            engine.dispose()


@contextmanager
def _database_errors(url: str, doing: str) -> Iterator[None]:
    """A database that cannot be reached or read, as one line naming it (never the SQL)."""
    from sqlalchemy.exc import SQLAlchemyError

    from advisor.db import DatabaseError, exc_line, shown_url

    try:
        yield
    except SQLAlchemyError as exc:
        raise DatabaseError(f"Could not {doing} {shown_url(url)}: {exc_line(exc)}") from None


def _conversation(conversation_id: str):
    """Any owner's conversation with its answers; an AdvisorError when there is none."""
    with _reading() as store:
        if store is None:
            raise AdvisorError(
                f"No conversations stored yet, so there is no conversation {conversation_id!r}."
            )
        return store.get(conversation_id)


# ---- rendering ---------------------------------------------------------------------------
def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")


def _when(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _table(items):
    from rich.table import Column, Table
    from rich.text import Text

    ids = Column("id", no_wrap=True, min_width=max(len(s.id) for s in items))  # copied whole into show
    created = Column("created", no_wrap=True)
    table = Table(ids, "user", "channel", "title", created, "answers", title="Saved conversations")
    for s in items:
        # people's words are text, never Rich markup: "[/bold]" in a title must not break the list
        table.add_row(
            *(Text(v) for v in (s.id, s.user or "", s.channel, s.title, _when(s.created_at), str(s.turns)))
        )
    return table


def _header(conversation) -> str:
    from rich.markup import escape

    s = conversation.summary
    who = f"user {escape(s.user or 'unknown')}; channel {escape(s.channel)}"
    when = f"started {_when(s.created_at)}; last answer {_when(s.updated_at)}"
    lines = [f"[bold]{escape(s.title)}[/]", f"id {s.id}; {who}; {when}; {s.turns} answers"]
    lines += [
        f"  {t.position + 1}. answer {t.id} ({_when(t.created_at)}, index {escape(t.generation or 'unknown')})"
        for t in conversation.turns
    ]
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    """Add the `history` command group to the `advisor` CLI."""
    app.add_typer(history_app, name="history")
