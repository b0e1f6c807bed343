"""The shared database: one SQLAlchemy URL (`ADVISOR_DB_URL`) for every process and replica.

SQLite in the data directory by default, for one machine; PostgreSQL (`postgresql+psycopg://...`)
when several replicas must share one truth. It holds:
- `feedback`: the verdicts people leave on answers (`advisor.feedback`);
- `seen_keys`: the Slack events, commands and button clicks already taken, so an event Slack
  redelivers to another replica is answered once (`SharedDeduper`);
- `answers`: recent answer records by id, so a feedback button clicked on one replica stores the
  full answer another replica gave (`SharedAnswers`);
- `conversations` and `turns`: saved conversations, per user or browser, each turn one answer
  whose id is its share link (`advisor.history`).

Schema creation is idempotent and safe when processes start together: on PostgreSQL it runs
under an advisory lock, on SQLite inside an immediate (write-locked) transaction, with the busy
timeout set before anything else, so a second process waits for the first instead of failing
with "table already exists" or "database is locked".
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    delete,
    event,
    insert,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from advisor.errors import AdvisorError

log = logging.getLogger(__name__)

SQLITE_BUSY_MS = 30_000
PG_CONNECT_TIMEOUT = 5  # seconds to reach PostgreSQL before a write is kept for a retry
_SCHEMA_LOCK = 0x5350524541  # "SPREA": the advisory lock schema creation takes on PostgreSQL

metadata = MetaData()

feedback = Table(
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

seen_keys = Table(
    "seen_keys",
    metadata,
    Column("key", String(255), primary_key=True),
    Column("seen_at", DateTime(timezone=True), nullable=False, index=True),
)

answers = Table(
    "answers",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("record", JSON, nullable=False),
)

conversations = Table(
    "conversations",
    metadata,
    Column("id", String(40), primary_key=True),
    Column(
        "owner", String(160), nullable=False, index=True
    ),  # user:<name>, browser:<hash>, slack:<team>/<user>
    Column("user_name", String(255), nullable=True),  # the login or Slack user, where known
    Column("channel", String(16), nullable=False),
    Column("title", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, index=True),
)

turns = Table(
    "turns",
    metadata,
    Column("id", String(40), primary_key=True),  # the answer's share link
    Column(
        "conversation_id",
        String(40),
        ForeignKey("conversations.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("position", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("question", Text, nullable=False),
    Column("refused", Boolean, nullable=False, default=False),
    Column("generation", String(160), nullable=False, default=""),
    Column("record", JSON, nullable=False),
    # what the answer cites ({source, title, case_study} each), for the insights to count without
    # reading every answer's passages
    Column("cited", JSON, nullable=False, default=list),
    UniqueConstraint("conversation_id", "position", name="turns_position"),
)


class DatabaseError(AdvisorError):
    """The database could not be opened or read; the message names the URL (without password)."""


def shown_url(url: str) -> str:
    """The URL with any password masked, for messages and logs."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL at all: say so without echoing it
        return "<unparsable database URL>"


def sqlite_path(url: str) -> Path | None:
    """The file behind a `sqlite:///path` URL, None for other databases and in-memory SQLite."""
    if not url.startswith("sqlite:///"):
        return None
    path = url.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def make_engine(url: str, *, read_only: bool = False) -> Engine:
    """An engine for the URL. SQLite gets its busy timeout before WAL (so a second process
    waits for the first), read-only opens the file with `mode=ro` (and `immutable=1` when its
    folder cannot be written, where SQLite could not even create its lock files)."""
    path = sqlite_path(url)
    if path is None:
        options: dict[str, Any] = {}
        if url.startswith("postgresql"):
            options["connect_args"] = {"connect_timeout": PG_CONNECT_TIMEOUT}  # not the OS's minutes
        engine = create_engine(url, future=True, pool_pre_ping=True, **options)
        return engine.execution_options(postgresql_readonly=True) if read_only else engine
    if read_only:
        if not path.exists():
            raise DatabaseError(f"There is no feedback database at {path} yet: nothing has been stored.")
        flags = "mode=ro" if os.access(path.parent, os.W_OK) else "mode=ro&immutable=1"
        engine = create_engine(f"sqlite:///file:{path}?{flags}&uri=true", future=True)
        event.listen(engine, "connect", _sqlite_busy_only)
        return engine
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatabaseError(f"Cannot create the folder for the database {path}: {exc.strerror}.") from None
    engine = create_engine(url, future=True, pool_pre_ping=True)
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_busy_only(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
    cursor.close()


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")  # first: WAL below needs the write lock
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")  # a deleted conversation takes its turns
    cursor.close()


def create_schema(engine: Engine, attempts: int = 5) -> None:
    """Create the tables that are missing, safely when several processes start at once."""
    for attempt in range(1, attempts + 1):
        try:
            if engine.dialect.name == "postgresql":
                with engine.begin() as conn:
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
                    metadata.create_all(conn, checkfirst=True)
            elif engine.dialect.name == "sqlite":
                _create_sqlite(engine)
            else:
                metadata.create_all(engine, checkfirst=True)
            return
        except OperationalError as exc:  # e.g. a lock still held past the busy timeout
            if attempt == attempts:
                raise DatabaseError(
                    f"Could not create the tables in {shown_url(str(engine.url))}: {exc.orig}"
                ) from None
            log.warning("creating the tables failed (%s); trying again", exc.orig)
            time.sleep(0.2 * attempt)


def _create_sqlite(engine: Engine) -> None:
    """Check and create under SQLite's write lock (BEGIN IMMEDIATE), so no second process can
    create a table between this one's check and its CREATE."""
    with engine.connect() as conn:
        dbapi = conn.connection.driver_connection
        previous = dbapi.isolation_level
        dbapi.isolation_level = None  # pysqlite: we issue BEGIN ourselves
        try:
            dbapi.execute("BEGIN IMMEDIATE")
            try:
                metadata.create_all(conn, checkfirst=True)
                dbapi.execute("COMMIT")
            except BaseException:
                dbapi.execute("ROLLBACK")
                raise
        finally:
            dbapi.isolation_level = previous


def open_database(url: str) -> Engine:
    """An engine for the URL with every table created (idempotent)."""
    engine = make_engine(url)
    create_schema(engine)
    return engine


# ------------------------------------------------------------------------------ shared memory
class SharedDeduper:
    """`first_time(*keys)` against the shared database: of several replicas (or retries sent to
    different replicas) exactly one sees True for a key within the TTL. The insert is the
    test: the primary key refuses a second one, whichever process tries it."""

    def __init__(self, engine: Engine, ttl_seconds: float = 3600.0, purge_every: int = 200) -> None:
        from advisor.slack.delivery import EventDeduper

        self.engine = engine
        self.ttl = timedelta(seconds=ttl_seconds)
        self.local = EventDeduper(ttl_seconds)  # while the database cannot be reached
        self._purge = Every(purge_every)

    def first_time(self, *keys: str) -> bool:
        """True (and remember every key) unless one of the keys was seen within the TTL."""
        keys = tuple(dict.fromkeys(k[:255] for k in keys if k))
        if not keys:
            return True
        now = datetime.now(UTC)
        self._maybe_purge(now)
        try:
            with self.engine.begin() as conn:
                conn.execute(  # an expired key may be taken again
                    delete(seen_keys).where(seen_keys.c.key.in_(keys), seen_keys.c.seen_at < now - self.ttl)
                )
                conn.execute(insert(seen_keys), [{"key": k, "seen_at": now} for k in keys])
            return True
        except IntegrityError:
            return False
        except SQLAlchemyError as exc:  # the database is busy or down: Slack waits 3 s for the ack
            log.warning(
                "the shared event keys are unreachable (%s): this replica's memory decides", exc_line(exc)
            )
            return self.local.first_time(*keys)

    def _maybe_purge(self, now: datetime) -> None:
        if self._purge.due():
            try:
                with self.engine.begin() as conn:
                    conn.execute(delete(seen_keys).where(seen_keys.c.seen_at < now - self.ttl))
            except SQLAlchemyError as exc:  # a busy database: the next purge will do
                log.warning("could not purge old Slack event keys: %s", exc_line(exc))


class SharedAnswers:
    """Answer records by id in the shared database (`put`, `get`), for feedback buttons that a
    different replica receives. Records older than `keep_days` are deleted as new ones come."""

    def __init__(self, engine: Engine, keep_days: float = 30.0, purge_every: int = 200) -> None:
        self.engine = engine
        self.keep = timedelta(days=keep_days)
        self._purge = Every(purge_every)

    def put(self, answer_id: str, record: dict[str, Any]) -> None:
        now = datetime.now(UTC)
        try:
            with self.engine.begin() as conn:
                if self._purge.due():
                    conn.execute(delete(answers).where(answers.c.created_at < now - self.keep))
                conn.execute(insert(answers).values(id=answer_id, created_at=now, record=_jsonable(record)))
        except Exception as exc:  # noqa: BLE001 - a lost record only makes later feedback partial
            log.warning(
                "could not keep an answer for its feedback buttons: %s", exc_line(exc)
            )  # no id: a share link

    def get(self, answer_id: str) -> dict[str, Any] | None:
        try:
            with self.engine.connect() as conn:
                row = conn.execute(select(answers.c.record).where(answers.c.id == answer_id)).first()
        except Exception as exc:  # noqa: BLE001 - the feedback is then stored from the message itself
            log.warning("could not read an answer for its feedback button: %s", exc_line(exc))
            return None
        return dict(row[0]) if row else None


class Every:
    """True on the first call and then on every n-th: how often old rows are purged."""

    def __init__(self, n: int) -> None:
        self.n = max(1, n)
        self._calls = 0
        self._lock = threading.Lock()

    def due(self) -> bool:
        with self._lock:
            self._calls += 1
            return (self._calls - 1) % self.n == 0


def exc_line(exc: BaseException) -> str:
    """A database error in one line: the driver's message, never SQLAlchemy's statement and
    parameters (they hold people's questions and answers)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def aware(value: datetime) -> datetime:
    """A datetime read back from the database in UTC: SQLite gives back naive ones (stored in UTC)."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _jsonable(record: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(record, default=str))
