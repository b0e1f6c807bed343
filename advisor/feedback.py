"""Feedback store: thumbs up/down (and a comment) on answers, from the web page and Slack.

One table behind a SQLAlchemy URL (`ADVISOR_DB_URL`): SQLite in the data directory by
default (WAL mode and a busy timeout, so a web process and a Slack process writing at once
lose nothing), or a shared PostgreSQL for several replicas. Exported as CSV or JSONL.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TextIO

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    insert,
    select,
)

from advisor.errors import AdvisorError

Verdict = Literal["up", "down"]
VERDICTS = ("up", "down")
EXPORT_FORMATS = ("csv", "jsonl")
_SQLITE_BUSY_MS = 30_000

metadata = MetaData()
feedback_table = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("channel", String(32), nullable=False),
    Column("question", Text, nullable=False),
    Column("query", Text, nullable=False, default=""),
    Column("answer", Text, nullable=False),
    Column("citations", JSON, nullable=False),
    Column("verdict", String(8), nullable=False),
    Column("comment", Text, nullable=False, default=""),
    Column("meta", JSON, nullable=False),
)


@dataclass(frozen=True)
class Feedback:
    """One stored verdict on one answer."""

    id: int
    created_at: datetime
    channel: str
    question: str
    query: str
    answer: str
    citations: list[dict[str, Any]]
    verdict: str
    comment: str
    meta: dict[str, Any]

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        record["created_at"] = self.created_at.isoformat()
        return record


class FeedbackStore:
    """Durable feedback behind a database URL."""

    def __init__(self, database_url: str) -> None:
        if database_url.startswith("sqlite:///"):
            Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine = create_engine(database_url, future=True, pool_pre_ping=True)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        metadata.create_all(self.engine)

    def record(
        self,
        channel: str,
        question: str,
        answer_record: dict[str, Any],
        verdict: str,
        comment: str = "",
        meta: dict[str, Any] | None = None,
    ) -> int:
        """Store one verdict on an answer (`Answer.to_record()`); returns its id."""
        if verdict not in VERDICTS:
            raise AdvisorError(f"Feedback verdict must be 'up' or 'down', not {verdict!r}")
        row = {
            "created_at": datetime.now(UTC),
            "channel": channel,
            "question": question,
            "query": str(answer_record.get("query") or question),
            "answer": str(answer_record.get("answer", "")),
            "citations": list(answer_record.get("citations", [])),
            "verdict": verdict,
            "comment": (comment or "").strip()[:5000],
            "meta": dict(meta or {}),
        }
        with self.engine.begin() as conn:
            result = conn.execute(insert(feedback_table).values(**row))
            return int(result.inserted_primary_key[0])

    def list(self, limit: int | None = None) -> list[Feedback]:
        """Stored feedback, oldest first."""
        query = select(feedback_table).order_by(feedback_table.c.id)
        if limit:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            Feedback(**{**row, "created_at": _as_utc(row["created_at"])})  # sqlite drops the tz
            for row in rows
        ]

    def export(self, out: TextIO, fmt: str = "csv") -> int:
        """Write all feedback to a text stream as CSV or JSONL; returns the row count."""
        if fmt not in EXPORT_FORMATS:
            raise AdvisorError(f"Unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")
        items = self.list()
        records = [f.to_record() for f in items]
        if fmt == "jsonl":
            out.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
        else:
            writer = csv.DictWriter(out, fieldnames=list(Feedback.__dataclass_fields__))
            writer.writeheader()
            for record in records:
                writer.writerow(
                    {
                        k: json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else v
                        for k, v in record.items()
                    }
                )
        return len(records)

    def export_text(self, fmt: str = "csv") -> str:
        """All feedback as one CSV or JSONL string."""
        buffer = io.StringIO()
        self.export(buffer, fmt)
        return buffer.getvalue()


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _as_utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def iter_verdicts(items: Iterable[Feedback]) -> dict[str, int]:
    """How many up and down verdicts there are."""
    counts = {v: 0 for v in VERDICTS}
    for item in items:
        counts[item.verdict] = counts.get(item.verdict, 0) + 1
    return counts
