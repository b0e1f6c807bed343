"""Saved conversations: every answer kept server-side, per user or per browser, in the shared
database (`advisor.db`: SQLite by default, PostgreSQL with `ADVISOR_DB_URL`).

A conversation belongs to one *owner*: `user:<name>` when the web page has a login,
`browser:<hash of the browser's cookie>` when it has none, `slack:<team>/<user>` for a Slack
thread. Every read or change takes the owner and finds nothing that is not theirs: a forged or
stale id and another owner's id get the same "not found", so no one can learn whether somebody
else's conversation exists.

Each turn is one answer with its id, which is also its share link: `turn(id)` reads it without
an owner (whoever has the link may read that one answer). Deleting a conversation deletes its
turns, and with them their share links. `ADVISOR_RETENTION_DAYS` deletes conversations not
touched for that long (`purge`): when the store opens, then at most every `purge_seconds` as
it is used.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from advisor.db import _jsonable, aware, conversations, exc_line, open_database, turns
from advisor.errors import AdvisorError

log = logging.getLogger(__name__)

TITLE_CHARS = 80  # a new conversation is titled with its first question, cut here
MAX_TITLE_CHARS = 200

NO_CONVERSATION = "There is no such conversation here: it was deleted, or it is not one of yours."
NO_ANSWER = (
    "This answer is not here: it was deleted with its conversation (or removed as older than the "
    "retention period), or the link is wrong."
)


class NotFoundError(AdvisorError):
    """A conversation or answer that does not exist, or is not the asker's (the same message)."""


class EmptyConversationError(AdvisorError):
    """A conversation with no answers to export."""


@dataclass(frozen=True)
class Owner:
    """Whose conversations: the key stored with them, and the user's name where known."""

    key: str
    name: str | None = None

    @classmethod
    def user(cls, name: str) -> Owner:
        return cls(f"user:{name}"[:160], name)

    @classmethod
    def browser(cls, token: str) -> Owner:
        """A browser without a login, by its cookie; only a hash of the cookie is stored."""
        return cls("browser:" + hashlib.sha256(token.encode("utf-8")).hexdigest()[:40])

    @classmethod
    def slack(cls, team: str, user: str) -> Owner:
        return cls(f"slack:{team}/{user}"[:160], user)


@dataclass(frozen=True)
class Turn:
    """One question and its answer (the `Answer.to_record()` JSON) in a conversation."""

    id: str
    conversation_id: str
    position: int
    created_at: datetime
    question: str
    refused: bool
    generation: str
    record: dict[str, Any]

    def to_record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "position": self.position,
            "created_at": self.created_at.isoformat(),
            "question": self.question,
            "refused": self.refused,
            "generation": self.generation,
            "answer": self.record,
        }


@dataclass(frozen=True)
class ConversationSummary:
    """A conversation as listed: no turns, only how many."""

    id: str
    owner: str
    user: str | None
    channel: str
    title: str
    created_at: datetime
    updated_at: datetime
    turns: int

    def to_record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "user": self.user,
            "channel": self.channel,
            "title": self.title,
            "created": self.created_at.isoformat(),
            "updated": self.updated_at.isoformat(),
            "turns": self.turns,
        }


@dataclass(frozen=True)
class Conversation:
    """A conversation with its turns in order."""

    summary: ConversationSummary
    turns: list[Turn] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.summary.id

    @property
    def title(self) -> str:
        return self.summary.title

    def to_record(self) -> dict[str, Any]:
        return {**self.summary.to_record(), "answers": [t.to_record() for t in self.turns]}


def cited(record: dict[str, Any]) -> list[dict[str, str]]:
    """What an answer cites, one entry per citation: its report (file and title) and case study."""
    return [
        {
            "source": str(c.get("source") or ""),
            "title": str(c.get("title") or ""),
            "case_study": str(c.get("case_study") or ""),
        }
        for c in record.get("citations") or ()
        if isinstance(c, dict)
    ]


def new_id() -> str:
    """A random id (128 bits, URL-safe, 22 characters): conversation ids and share links cannot
    be guessed. None starts with "-", which a command line would read as an option."""
    while True:
        value = secrets.token_urlsafe(16)
        if not value.startswith("-"):
            return value


_ID = re.compile(r"[A-Za-z0-9_-]{1,40}")


def valid_id(value: str | None) -> bool:
    """Whether a conversation or share id could be one of ours (random URL-safe, or a Slack
    thread's): anything else is not looked up (PostgreSQL refuses a NUL in a query)."""
    return bool(value) and _ID.fullmatch(value) is not None


def _no_nul(text: str) -> str:
    return text.replace("\x00", "")


def title_from(question: str) -> str:
    """A conversation's first title: its first question on one line, cut at a word."""
    text = " ".join(question.split()) or "Untitled conversation"
    if len(text) <= TITLE_CHARS:
        return text
    cut = text[:TITLE_CHARS].rsplit(" ", 1)[0] or text[:TITLE_CHARS]
    return cut + "…"


class ConversationStore:
    """Conversations and their answers in the shared database."""

    def __init__(
        self, engine: Engine, retention_days: float | None = None, purge_seconds: float = 3600.0
    ) -> None:
        self.engine = engine
        self.retention = timedelta(days=retention_days) if retention_days else None
        self.purge_seconds = purge_seconds
        self._next_purge = 0.0
        self._purge_lock = threading.Lock()
        self.purged = 0  # conversations this store's purges deleted, the one as it opened included
        self._maybe_purge()

    def _maybe_purge(self) -> None:
        """Purge when the retention period is set and the last purge is `purge_seconds` old."""
        if self.retention is None:
            return
        with self._purge_lock:
            if time.monotonic() < self._next_purge:
                return
            self._next_purge = time.monotonic() + self.purge_seconds
        try:
            self.purge()
        except Exception as exc:  # noqa: BLE001 - a busy database: the next call tries again
            log.warning("could not delete conversations older than the retention period: %s", exc_line(exc))
            self._next_purge = 0.0

    @classmethod
    def open(cls, url: str, retention_days: float | None = None) -> ConversationStore:
        return cls(open_database(url), retention_days)

    @classmethod
    def from_settings(cls, settings) -> ConversationStore:
        return cls.open(settings.database_url, settings.retention_days)

    # ---- writing ------------------------------------------------------------------------
    def add_turn(
        self,
        owner: Owner,
        record: dict[str, Any],
        *,
        conversation_id: str | None = None,
        create_as: str | None = None,
        channel: str = "web",
        generation: str = "",
        now: datetime | None = None,
    ) -> Turn:
        """Keep an answer in a conversation of the owner's and return the stored turn.

        With no `conversation_id` a new conversation is started, titled with the question (its
        id is `create_as` when given: a Slack thread's). An id that is not the owner's raises
        NotFoundError, unless it is `create_as`, which is then created."""
        now = now or datetime.now(UTC)
        for attempt in (1, 2):
            try:
                return self._add(owner, record, conversation_id, create_as, channel, generation, now)
            except IntegrityError:  # another process created the same thread's conversation first
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _add(self, owner, record, conversation_id, create_as, channel, generation, now) -> Turn:
        question = _no_nul(str(record.get("question", "")))
        self._maybe_purge()
        with self.engine.begin() as conn:
            wanted = conversation_id or create_as
            found = False
            if wanted and valid_id(wanted):
                # the update comes first: it takes SQLite's write lock (PostgreSQL's row lock), so
                # two answers added to one conversation at once are numbered one after the other
                found = (
                    conn.execute(
                        update(conversations)
                        .where(conversations.c.id == wanted, conversations.c.owner == owner.key)
                        .values(updated_at=now)
                    ).rowcount
                    == 1
                )
            if not found:
                if conversation_id and conversation_id != create_as:
                    raise NotFoundError(NO_CONVERSATION)
                wanted = create_as or new_id()
                conn.execute(
                    insert(conversations).values(
                        id=wanted,
                        owner=owner.key,
                        user_name=owner.name,
                        channel=channel,
                        title=title_from(question),
                        created_at=now,
                        updated_at=now,
                    )
                )
            position = conn.execute(
                select(func.coalesce(func.max(turns.c.position) + 1, 0)).where(
                    turns.c.conversation_id == wanted
                )
            ).scalar_one()
            row = {
                "id": new_id(),
                "conversation_id": wanted,
                "position": int(position),
                "created_at": now,
                "question": question,
                "refused": bool(record.get("refused")),
                "generation": generation,
                "record": _jsonable(record),
            }
            conn.execute(insert(turns).values(**row, cited=cited(record)))
        return Turn(**row)

    def rename(self, conversation_id: str, owner: Owner, title: str) -> ConversationSummary:
        title = " ".join(_no_nul(title or "").split())[:MAX_TITLE_CHARS]
        if not title:
            raise AdvisorError("A conversation needs a title: type one before renaming.")
        with self.engine.begin() as conn:
            done = conn.execute(
                update(conversations)
                .where(conversations.c.id == conversation_id, conversations.c.owner == owner.key)
                .values(title=title)
            )
            if done.rowcount != 1:
                raise NotFoundError(NO_CONVERSATION)
        return self.get(conversation_id, owner).summary

    def delete(self, conversation_id: str, owner: Owner) -> None:
        """Delete the conversation and its answers (their share links stop working)."""
        with self.engine.begin() as conn:
            mine = conn.execute(
                select(conversations.c.id).where(
                    conversations.c.id == conversation_id, conversations.c.owner == owner.key
                )
            ).first()
            if mine is None:
                raise NotFoundError(NO_CONVERSATION)
            conn.execute(delete(turns).where(turns.c.conversation_id == conversation_id))
            conn.execute(delete(conversations).where(conversations.c.id == conversation_id))

    def purge(self, now: datetime | None = None) -> int:
        """Delete the conversations untouched for longer than the retention period; how many."""
        if self.retention is None:
            return 0
        with self.engine.begin() as conn:
            gone = self._delete_older(conn, (now or datetime.now(UTC)) - self.retention)
        self.purged += gone
        return gone

    def _delete_older(self, conn, cutoff: datetime) -> int:
        old = select(conversations.c.id).where(conversations.c.updated_at < cutoff)
        conn.execute(delete(turns).where(turns.c.conversation_id.in_(old)))
        gone = conn.execute(delete(conversations).where(conversations.c.updated_at < cutoff)).rowcount
        if gone:
            log.info("deleted %d conversations older than the retention period", gone)
        return int(gone or 0)

    # ---- reading ------------------------------------------------------------------------
    def list(self, owner: Owner | None = None, limit: int | None = None) -> list[ConversationSummary]:
        """The owner's conversations (every one when owner is None), the latest first."""
        self._maybe_purge()
        counts = (
            select(turns.c.conversation_id, func.count().label("n"))
            .group_by(turns.c.conversation_id)
            .subquery()
        )
        query = (
            select(conversations, func.coalesce(counts.c.n, 0))
            .outerjoin(counts, counts.c.conversation_id == conversations.c.id)
            .order_by(conversations.c.updated_at.desc(), conversations.c.id)
        )
        if owner is not None:
            query = query.where(conversations.c.owner == owner.key)
        if limit:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return [self._summary(row) for row in conn.execute(query)]

    def get(self, conversation_id: str, owner: Owner | None = None) -> Conversation:
        """A conversation with its turns; NotFoundError when there is none that is the owner's
        (owner None: any owner's, for the maintainers' CLI)."""
        self._maybe_purge()
        found = self._find(conversation_id, owner)
        if not found:
            raise NotFoundError(NO_CONVERSATION)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(turns)
                .where(turns.c.conversation_id == conversation_id)
                .order_by(turns.c.position, turns.c.created_at, turns.c.id)
            ).all()
        return Conversation(found[0], [self._turn(r) for r in rows])

    def exists(self, conversation_id: str, owner: Owner) -> bool:
        """Whether the owner has this conversation (its row only: no answers are read)."""
        return bool(self._find(conversation_id, owner))

    def turn(self, turn_id: str) -> tuple[Turn, ConversationSummary]:
        """An answer by its share id, with its conversation; NotFoundError when it is gone."""
        self._maybe_purge()
        if not valid_id(turn_id):
            raise NotFoundError(NO_ANSWER)
        with self.engine.connect() as conn:
            row = conn.execute(select(turns).where(turns.c.id == turn_id)).first()
        if row is None:
            raise NotFoundError(NO_ANSWER)
        turn = self._turn(row)
        summary = next(iter(self._find(turn.conversation_id, None)), None)
        if summary is None:  # deleted between the two reads
            raise NotFoundError(NO_ANSWER)
        return turn, summary

    def _find(self, conversation_id: str, owner: Owner | None) -> list[ConversationSummary]:
        if not valid_id(conversation_id):
            return []
        counts = select(func.count()).select_from(turns).where(turns.c.conversation_id == conversations.c.id)
        query = select(conversations, counts.scalar_subquery()).where(conversations.c.id == conversation_id)
        if owner is not None:
            query = query.where(conversations.c.owner == owner.key)
        with self.engine.connect() as conn:
            return [self._summary(row) for row in conn.execute(query)]

    @staticmethod
    def _summary(row) -> ConversationSummary:
        m = row._mapping
        return ConversationSummary(
            id=m["id"],
            owner=m["owner"],
            user=m["user_name"],
            channel=m["channel"],
            title=m["title"],
            created_at=aware(m["created_at"]),
            updated_at=aware(m["updated_at"]),
            turns=int(row[-1] or 0),
        )

    @staticmethod
    def _turn(row) -> Turn:
        m = row._mapping
        return Turn(
            id=m["id"],
            conversation_id=m["conversation_id"],
            position=int(m["position"]),
            created_at=aware(m["created_at"]),
            question=m["question"],
            refused=bool(m["refused"]),
            generation=m["generation"] or "",
            record=dict(m["record"]),
        )
