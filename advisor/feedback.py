"""Feedback store: thumbs up/down (and a comment) on answers, from the web page and Slack.

One table in the shared database (`advisor.db`, `ADVISOR_DB_URL`): SQLite in the data directory
by default (WAL mode and a busy timeout, so a web process and a Slack process writing at once
lose nothing), or a shared PostgreSQL for several replicas. Exported as CSV or JSONL, through a
read-only connection.

Feedback that cannot be written (the database locked past its busy timeout, or down) is not
lost: `submit` keeps it in an outbox (in memory, and in a JSONL file when one is given, so it
survives a restart) and a background thread retries until it is stored.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import logging
import threading
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
    String,
    Table,
    Text,
    insert,
    inspect,
    select,
)
from sqlalchemy.exc import DBAPIError, OperationalError

from advisor.db import DatabaseError, create_schema, make_engine, metadata, shown_url
from advisor.errors import AdvisorError

log = logging.getLogger(__name__)

Verdict = Literal["up", "down"]
VERDICTS = ("up", "down")
EXPORT_FORMATS = ("csv", "jsonl")
RETRY_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)  # seconds between outbox retries; the last repeats
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
    """Durable feedback behind a database URL, with an outbox for writes the database refuses."""

    def __init__(self, database_url: str, outbox: Path | None = None, read_only: bool = False) -> None:
        self.url = database_url
        self.read_only = read_only
        self.engine = make_engine(database_url, read_only=read_only)
        if not read_only:
            create_schema(self.engine)
        self.outbox = Outbox(self._insert, outbox)
        if not read_only:
            self.outbox.start_if_pending()  # kept before a restart: store it now

    @classmethod
    def from_settings(cls, settings) -> FeedbackStore:
        """The store the front ends share, its outbox file in the data directory."""
        return cls(settings.database_url, outbox=settings.data_dir / "feedback-outbox.jsonl")

    def record(
        self,
        channel: str,
        question: str,
        answer_record: dict[str, Any],
        verdict: str,
        comment: str = "",
        meta: dict[str, Any] | None = None,
    ) -> int:
        """Store one verdict on an answer (`Answer.to_record()`); returns its id. Raises when
        the database refuses; `submit` keeps the row instead."""
        return self._insert(self._row(channel, question, answer_record, verdict, comment, meta))

    def submit(
        self,
        channel: str,
        question: str,
        answer_record: dict[str, Any],
        verdict: str,
        comment: str = "",
        meta: dict[str, Any] | None = None,
    ) -> int | None:
        """Store one verdict; its id, or None when the database refused it just now and the row
        was kept in the outbox, to be stored by the retry thread."""
        row = self._row(channel, question, answer_record, verdict, comment, meta)
        if self.outbox.pending():  # keep the order: earlier kept rows go first
            self.outbox.keep(row)
            return None
        try:
            return self._insert(row)
        except (OperationalError, DBAPIError, DatabaseError) as exc:
            log.warning("feedback kept for a retry: the database refused it (%s)", _reason(exc))
            self.outbox.keep(row)
            return None

    @staticmethod
    def _row(channel, question, answer_record, verdict, comment, meta) -> dict[str, Any]:
        if verdict not in VERDICTS:
            raise AdvisorError(f"Feedback verdict must be 'up' or 'down', not {verdict!r}")
        return {
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

    def _insert(self, row: dict[str, Any]) -> int:
        if self.read_only:
            raise AdvisorError("This feedback store was opened read-only.")
        with self.engine.begin() as conn:
            result = conn.execute(insert(feedback_table).values(**row))
            return int(result.inserted_primary_key[0])

    def list(self, limit: int | None = None) -> list[Feedback]:
        """Stored feedback, oldest first."""
        query = select(feedback_table).order_by(feedback_table.c.id)
        if limit:
            query = query.limit(limit)
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(query).mappings().all()
        except DBAPIError as exc:
            if not inspect(self.engine).has_table("feedback"):  # a read-only look at a database never written
                return []
            raise DatabaseError(
                f"Could not read feedback from {shown_url(self.url)}: {_reason(exc)}"
            ) from None
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


def _as_utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def iter_verdicts(items: Iterable[Feedback]) -> dict[str, int]:
    """How many up and down verdicts there are."""
    counts = {v: 0 for v in VERDICTS}
    for item in items:
        counts[item.verdict] = counts.get(item.verdict, 0) + 1
    return counts


def _reason(exc: Exception) -> str:
    """A database error in one line: the driver's message, not SQLAlchemy's statement dump."""
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:300]


class Outbox:
    """Feedback rows the database refused, kept in order and retried in a background thread.

    With a file, rows are appended as JSON lines under an exclusive lock, so a restart (or
    another process sharing the data folder) loses none; the retry thread stores them in order
    and rewrites the file with whatever is still refused.
    """

    def __init__(self, insert_row, path: Path | None = None) -> None:
        self.insert_row = insert_row
        self.path = path
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()

    def pending(self) -> int:
        """How many rows wait to be stored (this process's, and the file's)."""
        with self._lock:
            return len(self._rows) + (len(self._read_file()) if self.path else 0)

    def keep(self, row: dict[str, Any]) -> None:
        with self._lock:
            if self.path is not None:
                try:
                    self._append_file(row)
                except OSError as exc:
                    log.warning(
                        "cannot write the feedback outbox %s (%s): keeping it in memory", self.path, exc
                    )
                    self._rows.append(row)
            else:
                self._rows.append(row)
        self._start()

    def start_if_pending(self) -> None:
        if self.pending():
            self._start()

    def flush(self) -> int:
        """Store what waits, in order, until the database refuses one; returns how many are left."""
        with self._lock:
            while self._rows:
                try:
                    self.insert_row(self._rows[0])
                except Exception as exc:  # noqa: BLE001 - still refused: retried later
                    log.info("feedback outbox: still refused (%s)", _reason(exc))
                    break
                self._rows.pop(0)
            left = len(self._rows)
            if self.path is not None and self.path.exists():
                left += self._flush_file()
            return left

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._retry, name="feedback-outbox", daemon=True)
            self._thread.start()

    def _retry(self) -> None:
        attempt = 0
        while True:
            self._wake.wait(RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)])
            self._wake.clear()
            if self.flush() == 0:
                log.info("feedback outbox: every kept row is stored")
                return
            attempt += 1

    def retry_now(self) -> None:
        """Wake the retry thread (tests, and operators after fixing the database)."""
        self._wake.set()

    # ---- the file, under an exclusive lock -------------------------------------------------
    def _append_file(self, row: dict[str, Any]) -> None:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.write(json.dumps(_to_json(row), ensure_ascii=False) + "\n")

    def _read_file(self) -> list[dict[str, Any]]:
        if self.path is None or not self.path.exists():
            return []
        try:
            with self.path.open(encoding="utf-8") as f:
                return [json.loads(line) for line in f if line.strip()]
        except (OSError, ValueError) as exc:
            log.warning("cannot read the feedback outbox %s: %s", self.path, exc)
            return []

    def _flush_file(self) -> int:
        assert self.path is not None
        with self.path.open("r+", encoding="utf-8") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            rows = [json.loads(line) for line in f if line.strip()]
            stored = 0
            for row in rows:
                try:
                    self.insert_row(_from_json(row))
                except Exception as exc:  # noqa: BLE001 - still refused: keep it and the rest
                    log.info("feedback outbox: still refused (%s)", _reason(exc))
                    break
                stored += 1
            f.seek(0)
            f.truncate()
            f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows[stored:])
            return len(rows) - stored


def _to_json(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "created_at": row["created_at"].isoformat()}


def _from_json(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "created_at": datetime.fromisoformat(row["created_at"])}
