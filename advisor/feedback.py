"""Feedback store: thumbs up/down (and a comment) on answers, from the web page and Slack.

One table in the shared database (`advisor.db`, `ADVISOR_DB_URL`): SQLite in the data directory
by default (WAL mode and a busy timeout, so a web process and a Slack process writing at once
lose nothing), or a shared PostgreSQL for several replicas. Exported as CSV or JSONL, through a
read-only connection (SQLite's `mode=ro`, PostgreSQL's read-only transactions).

Feedback the database refuses for being busy (locked past its busy timeout, down, unreachable)
is not lost: `submit` keeps it in an `Outbox` (a JSONL file when one is given, so it survives a
restart; memory otherwise) and a background thread retries until it is stored. A row the
database refuses for itself raises `DatabaseError` and is never retried.
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
    insert,
    inspect,
    select,
)
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from advisor.db import DatabaseError, create_schema, exc_line, make_engine, shown_url
from advisor.db import feedback as feedback_table
from advisor.errors import AdvisorError

log = logging.getLogger(__name__)

Verdict = Literal["up", "down"]
VERDICTS = ("up", "down")
EXPORT_FORMATS = ("csv", "jsonl")
RETRY_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)  # seconds between outbox retries; the last repeats


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
        except (OperationalError, InterfaceError) as exc:  # locked, down, unreachable: it will pass
            log.warning("feedback kept for a retry: the database refused it (%s)", exc_line(exc))
            self.outbox.keep(row)
            return None
        except DBAPIError as exc:  # the row itself is refused: retrying would not help
            log.error("feedback refused by the database (%s): %r", exc_line(exc), row["question"][:200])
            raise DatabaseError(f"The feedback could not be stored: {exc_line(exc)}") from None

    @staticmethod
    def _row(channel, question, answer_record, verdict, comment, meta) -> dict[str, Any]:
        if verdict not in VERDICTS:
            raise AdvisorError(f"Feedback verdict must be 'up' or 'down', not {verdict!r}")
        return {
            "created_at": datetime.now(UTC),
            "channel": channel,
            "question": question.replace("\x00", ""),
            "query": str(answer_record.get("query") or question).replace("\x00", ""),
            "answer": str(answer_record.get("answer", "")).replace("\x00", ""),
            "citations": list(answer_record.get("citations", [])),
            "verdict": verdict,
            "comment": (comment or "").replace("\x00", "").strip()[:5000],  # PostgreSQL refuses NUL
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
            try:
                if not inspect(self.engine).has_table("feedback"):  # a look at a database never written
                    return []
            except DBAPIError:
                pass
            raise DatabaseError(
                f"Could not read feedback from {shown_url(self.url)}: {exc_line(exc)}"
            ) from None
        return [
            Feedback(**{**row, "created_at": _as_utc(row["created_at"])})  # sqlite drops the tz
            for row in rows
        ]

    def export(self, out: TextIO, fmt: str = "csv") -> int:
        """Write all feedback to a text stream as CSV or JSONL; returns the row count."""
        return write_feedback(out, self.list(), fmt)

    def export_text(self, fmt: str = "csv") -> str:
        """All feedback as one CSV or JSONL string."""
        buffer = io.StringIO()
        self.export(buffer, fmt)
        return buffer.getvalue()


def _as_utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def write_feedback(out: TextIO, items: list[Feedback], fmt: str = "csv") -> int:
    """Feedback rows to a text stream as CSV or JSONL; returns the row count."""
    if fmt not in EXPORT_FORMATS:
        raise AdvisorError(f"Unknown export format {fmt!r}; use one of {', '.join(EXPORT_FORMATS)}")
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


def iter_verdicts(items: Iterable[Feedback]) -> dict[str, int]:
    """How many up and down verdicts there are."""
    counts = {v: 0 for v in VERDICTS}
    for item in items:
        counts[item.verdict] = counts.get(item.verdict, 0) + 1
    return counts


class Outbox:
    """Feedback rows the database refused, kept and retried by a background thread.

    With a file, each row is appended as a JSON line under an exclusive lock, so a restart (or
    another process sharing the data folder) loses none; without one, or while another process
    holds the file to store its rows, the row waits in this process's memory. The retry thread
    stores rows in order and rewrites the file after each one, so a restart mid-way stores none
    twice (a commit whose reply is lost still can). A row the database refuses for itself, not
    for being busy, and a line that is not JSON, are set aside in `<outbox>.rejected.jsonl` and
    logged, so they never hold up the rows behind them.
    """

    def __init__(self, insert_row, path: Path | None = None) -> None:
        self.insert_row = insert_row
        self.path = path
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()  # guards _rows and _thread
        self._flushing = threading.Lock()  # one flush at a time in this process
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()

    @property
    def rejected_path(self) -> Path | None:
        return None if self.path is None else self.path.with_name(self.path.stem + ".rejected.jsonl")

    def pending(self) -> int:
        """How many rows wait to be stored (this process's, and the file's)."""
        with self._lock:
            waiting = len(self._rows)
        if self.path is not None:
            try:
                with self.path.open(encoding="utf-8") as f:
                    fcntl.flock(f, fcntl.LOCK_SH)  # not halfway through a flush's rewrite of the file
                    waiting += sum(1 for line in f if line.strip())
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("cannot read the feedback outbox %s: %s", self.path, exc)
        return waiting

    def keep(self, row: dict[str, Any]) -> None:
        with self._lock:
            if not (self.path is not None and self._append_file(row)):
                self._rows.append(row)
        self._start()

    def start_if_pending(self) -> None:
        if self.pending():
            self._start()

    def retry_now(self) -> None:
        """Wake the retry thread (tests, and operators after fixing the database)."""
        self._wake.set()

    def flush(self) -> int:
        """Store what waits, in order, until the database is busy again; how many are left."""
        with self._flushing:
            while True:
                with self._lock:
                    row = self._rows[0] if self._rows else None
                if row is None or self._store(row) == "busy":
                    break
                with self._lock:
                    self._rows.pop(0)
            if self.path is not None and self.path.exists():
                self._flush_file()
            return self.pending()

    def _store(self, row: dict[str, Any]) -> str:
        """ "stored", "busy" (retry later) or "rejected" (set aside)."""
        try:
            self.insert_row(row)
            return "stored"
        except (OperationalError, InterfaceError, DatabaseError) as exc:
            log.info("feedback outbox: the database is still busy (%s)", exc_line(exc))
            return "busy"
        except Exception as exc:  # noqa: BLE001 - the row itself is refused: set aside, logged
            log.error("feedback outbox: a row was refused (%s); set aside", exc_line(exc))
            self._reject(_to_json(row) if isinstance(row.get("created_at"), datetime) else row)
            return "rejected"

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._retry, name="feedback-outbox", daemon=True)
            self._thread.start()

    def _retry(self) -> None:
        attempt = 0
        while True:
            self._wake.wait(RETRY_DELAYS[min(attempt, len(RETRY_DELAYS) - 1)])
            self._wake.clear()
            try:
                left = self.flush()
            except Exception:  # the thread must outlive any surprise; logged
                log.exception("feedback outbox: the retry failed")
                left = 1
            with self._lock:  # decided under the lock: a row kept meanwhile finds no thread and starts one
                if left == 0 and not self._rows:
                    self._thread = None
                    log.info("feedback outbox: every kept row is stored")
                    return
            attempt += 1

    # ---- the files ------------------------------------------------------------------------
    def _append_file(self, row: dict[str, Any]) -> bool:
        """Append under the file's lock; False (the caller keeps it in memory) when the file
        cannot be written or another process is storing its rows right now."""
        assert self.path is not None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                f.write(json.dumps(_to_json(row), ensure_ascii=False) + "\n")
            return True
        except BlockingIOError:
            return False
        except OSError as exc:
            log.warning("cannot write the feedback outbox %s (%s): keeping it in memory", self.path, exc)
            return False

    def _flush_file(self) -> None:
        assert self.path is not None
        with self.path.open("r+", encoding="utf-8") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            lines = [line for line in f if line.strip()]
            while lines:
                try:
                    row = _from_json(json.loads(lines[0]))
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    log.error("feedback outbox: a line is not a feedback row (%s); set aside", exc)
                    self._reject_line(lines[0])
                else:
                    if self._store(row) == "busy":
                        break
                lines.pop(0)
                f.seek(0)  # rewritten after each row: a restart from here stores none twice
                f.truncate()
                f.writelines(lines)
                f.flush()

    def _reject(self, row: dict[str, Any]) -> None:
        self._reject_line(json.dumps(row, ensure_ascii=False, default=str) + "\n")

    def _reject_line(self, line: str) -> None:
        target = self.rejected_path
        if target is None:
            log.error("feedback outbox: rejected row dropped (no outbox file): %s", line[:300])
            return
        try:
            with target.open("a", encoding="utf-8") as f:
                f.write(line if line.endswith("\n") else line + "\n")
        except OSError as exc:
            log.error("cannot set a rejected feedback row aside in %s (%s): %s", target, exc, line[:300])


def _to_json(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "created_at": row["created_at"].isoformat()}


def _from_json(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "created_at": datetime.fromisoformat(row["created_at"])}
