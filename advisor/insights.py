"""What people asked and how the answers fared: figures for maintainers, and rows for the eval set.

Read from the shared database (`advisor.db`): the `turns` of saved conversations are the questions
asked, on every channel (each turn one answer, a refusal included); the `feedback` table holds the
verdicts. `compute_insights` sums up a window of days for the web page's Insights tab
(`advisor.web.insights`); `eval_rows` turns the thumbs-down questions and the refused ones into
question-set rows for a person to complete (`advisor feedback to-eval`).

A thumbs-down belongs to the turn its `meta["answer_id"]` names; without that link, to the latest
turn asked before it with the same question (case and white space folded).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, inspect, select
from sqlalchemy.exc import DBAPIError

from advisor.db import DatabaseError, aware, conversations, exc_line, shown_url, turns
from advisor.db import feedback as feedback_table
from advisor.errors import AdvisorError
from advisor.feedback import Feedback
from advisor.text import normalise_space

TODO = "write the reference answer, sources and kind, then move to eval_sets/dev.jsonl"


def question_key(question: str) -> str:
    """A question as grouped and de-duplicated: case and white space folded."""
    return normalise_space(question).casefold()


@dataclass(frozen=True)
class Asked:
    """One question asked and answered (a turn), as the insights read it."""

    id: str
    created_at: datetime
    channel: str
    question: str
    refused: bool
    record: dict[str, Any]  # {"citations": what it cites}; the whole answer when read for the refused only


@dataclass(frozen=True)
class DayCount:
    """Questions asked on one day (UTC), and how many of them were refused."""

    day: date
    questions: int
    refused: int


@dataclass(frozen=True)
class ThumbsDown:
    """A thumbs-down, with the answer it was on and the turn that answer was, where known."""

    feedback_id: int
    created_at: datetime
    channel: str
    question: str
    comment: str
    answer: str
    turn_id: str | None


@dataclass(frozen=True)
class Gap:
    """A question the advisor refused (the content gap), however often it was asked."""

    question: str  # its latest wording
    times: int
    last_asked: datetime
    turn_id: str  # the latest turn that asked it
    answer: str  # what the latest refusal said


@dataclass(frozen=True)
class Cited:
    """A report or a case study, and how often answers cited it."""

    name: str  # the report's title or the case study's name
    source: str  # the report's file ("" for a case study)
    citations: int  # citations of it, summed over answers
    answers: int  # answers citing it at least once


@dataclass(frozen=True)
class Insights:
    """The figures of a window of days, from `start` (midnight UTC) to `end`.

    `questions` counts every turn in the window: every question the advisor answered, on every
    channel, a refusal included. `answers_with_thumbs_down` counts the turns in the window that
    got at least one thumbs-down; `thumbs_down_share` divides it by `questions` (every answer
    given, refusals included), so several thumbs-down on one answer count once, and a thumbs-down
    that matches no turn of the window (`unmatched_thumbs_down`) counts in neither.
    """

    start: datetime
    end: datetime
    per_day: tuple[DayCount, ...]
    questions: int
    refused: int
    answers_with_thumbs_down: int
    thumbs_down: tuple[ThumbsDown, ...]  # the latest first
    gaps: tuple[Gap, ...]  # the most asked first
    reports: tuple[Cited, ...]  # the most cited first
    cases: tuple[Cited, ...]

    @property
    def answered(self) -> int:
        """Questions answered with something other than a refusal."""
        return self.questions - self.refused

    @property
    def refused_share(self) -> float:
        """Refused turns / turns (0.0 when nothing was asked)."""
        return self.refused / self.questions if self.questions else 0.0

    @property
    def thumbs_down_share(self) -> float:
        """Turns that got a thumbs-down / turns (0.0 when nothing was asked)."""
        return self.answers_with_thumbs_down / self.questions if self.questions else 0.0

    @property
    def unmatched_thumbs_down(self) -> int:
        """Thumbs-down of the window matched to no turn of the window (not in the share)."""
        return sum(1 for t in self.thumbs_down if t.turn_id is None)


def compute_insights(
    engine: Engine, *, days: int = 30, now: datetime | None = None, top: int = 10
) -> Insights:
    """The insights of the last `days` days (today, UTC, the last of them) up to `now`; the
    most-cited lists keep `top` entries. A database without the tables reads as empty."""
    if days < 1 or top < 1:
        raise AdvisorError(f"Insights need at least one day and one entry; got days={days}, top={top}.")
    end = (now or datetime.now(UTC)).astimezone(UTC)
    start = datetime.combine(end.date() - timedelta(days=days - 1), time(), UTC)
    asked = list(read_turns(engine, since=start, until=end))
    downs = read_thumbs_down(engine, since=start, until=end)

    per_day = {start.date() + timedelta(days=n): [0, 0] for n in range(days)}
    for turn in asked:
        counts = per_day[turn.created_at.date()]
        counts[0] += 1
        counts[1] += turn.refused
    matched = link_thumbs_down(downs, asked)
    return Insights(
        start=start,
        end=end,
        per_day=tuple(DayCount(day, n, r) for day, (n, r) in per_day.items()),
        questions=len(asked),
        refused=sum(t.refused for t in asked),
        answers_with_thumbs_down=len({t.turn_id for t in matched if t.turn_id}),
        thumbs_down=tuple(sorted(matched, key=lambda t: (t.created_at, t.feedback_id), reverse=True)),
        gaps=tuple(content_gaps(asked)),
        reports=tuple(most_cited(asked, "source", top)),
        cases=tuple(most_cited(asked, "case_study", top)),
    )


# ---- reading ---------------------------------------------------------------------------------
def read_turns(
    engine: Engine,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    refused_only: bool = False,
) -> Iterator[Asked]:
    """The turns asked in [since, until], oldest first, with their conversation's channel."""
    if not _has_tables(engine, "turns", "conversations"):
        return
    query = (
        select(
            turns.c.id,
            turns.c.created_at,
            conversations.c.channel,
            turns.c.question,
            turns.c.refused,
            turns.c.cited,
            # the whole answer (passages and all: KBs each) only for the refused ones, whose words
            # the eval rows carry; the figures need only what each answer cites
            *([turns.c.record] if refused_only else []),
        )
        .join(conversations, conversations.c.id == turns.c.conversation_id)
        .order_by(turns.c.created_at, turns.c.id)
    )
    if since is not None:
        query = query.where(turns.c.created_at >= since)
    if until is not None:
        query = query.where(turns.c.created_at <= until)
    if refused_only:
        query = query.where(turns.c.refused.is_(True))
    for row in _read(engine, query, "questions"):
        yield Asked(
            id=row.id,
            created_at=aware(row.created_at),
            channel=row.channel,
            question=row.question,
            refused=bool(row.refused),
            record=dict(row.record or {}) if refused_only else {"citations": list(row.cited or [])},
        )


def read_thumbs_down(
    engine: Engine, *, since: datetime | None = None, until: datetime | None = None
) -> list[Feedback]:
    """The thumbs-down verdicts given in [since, until], oldest first."""
    if not _has_tables(engine, "feedback"):
        return []
    query = select(feedback_table).where(feedback_table.c.verdict == "down").order_by(feedback_table.c.id)
    if since is not None:
        query = query.where(feedback_table.c.created_at >= since)
    if until is not None:
        query = query.where(feedback_table.c.created_at <= until)
    return [
        Feedback(**{**row._mapping, "created_at": aware(row.created_at)})
        for row in _read(engine, query, "feedback")
    ]


def _has_tables(engine: Engine, *names: str) -> bool:
    try:
        found = inspect(engine)
        return all(found.has_table(name) for name in names)
    except DBAPIError as exc:
        raise DatabaseError(f"Could not read {shown_url(str(engine.url))}: {exc_line(exc)}") from None


def _read(engine: Engine, query, what: str) -> list:
    try:
        with engine.connect() as conn:
            return conn.execute(query).all()
    except DBAPIError as exc:
        raise DatabaseError(
            f"Could not read the {what} from {shown_url(str(engine.url))}: {exc_line(exc)}"
        ) from None


# ---- summing up ------------------------------------------------------------------------------
def link_thumbs_down(downs: Iterable[Feedback], asked: list[Asked]) -> list[ThumbsDown]:
    """Each thumbs-down with the turn it was on: the one its `meta["answer_id"]` names, else the
    latest turn asked before it with the same question; None when neither is in `asked`."""
    by_id = {t.id: t for t in asked}
    by_question: dict[str, list[Asked]] = {}
    for turn in asked:  # oldest first
        by_question.setdefault(question_key(turn.question), []).append(turn)
    linked = []
    for down in downs:
        turn = by_id.get(str((down.meta or {}).get("answer_id") or ""))
        if turn is None:
            earlier = [
                t for t in by_question.get(question_key(down.question), []) if t.created_at <= down.created_at
            ]
            turn = earlier[-1] if earlier else None
        linked.append(
            ThumbsDown(
                feedback_id=down.id,
                created_at=down.created_at,
                channel=down.channel,
                question=down.question,
                comment=down.comment,
                answer=down.answer,
                turn_id=turn.id if turn else None,
            )
        )
    return linked


def content_gaps(asked: Iterable[Asked]) -> list[Gap]:
    """The refused questions grouped by their folded text, the most asked (then latest) first."""
    groups: dict[str, list[Asked]] = {}
    for turn in asked:
        if turn.refused:
            groups.setdefault(question_key(turn.question), []).append(turn)
    gaps = []
    for same in groups.values():
        latest = max(same, key=lambda t: (t.created_at, t.id))
        gaps.append(
            Gap(
                question=normalise_space(latest.question),
                times=len(same),
                last_asked=latest.created_at,
                turn_id=latest.id,
                answer=str(latest.record.get("answer", "")),
            )
        )
    return sorted(gaps, key=lambda g: (-g.times, -g.last_asked.timestamp(), g.question))


def most_cited(asked: Iterable[Asked], field: str, top: int) -> list[Cited]:
    """The reports (`field="source"`) or case studies (`"case_study"`) the answers cite most."""
    citations: Counter[str] = Counter()
    answers: Counter[str] = Counter()
    titles: dict[str, str] = {}
    for turn in asked:
        keys = []
        for citation in turn.record.get("citations") or ():
            key = (citation.get(field) or "") if isinstance(citation, dict) else ""
            if not key:
                continue
            keys.append(key)
            if field == "source":
                titles[key] = citation.get("title") or titles.get(key) or key
        citations.update(keys)
        answers.update(set(keys))
    ranked = sorted(citations, key=lambda k: (-citations[k], -answers[k], titles.get(k, k)))
    return [
        Cited(
            name=titles.get(key, key),
            source=key if field == "source" else "",
            citations=citations[key],
            answers=answers[key],
        )
        for key in ranked[:top]
    ]


# ---- rows for the eval set -------------------------------------------------------------------
@dataclass(frozen=True)
class EvalRows:
    """Question-set rows to complete, and how many questions were left out as already known."""

    rows: list[dict[str, Any]]
    known: int  # questions left out because a question set already has them

    def count(self, origin: str) -> int:
        return sum(1 for row in self.rows if row["origin"] == origin)


def eval_rows(engine: Engine, known: Iterable[str] = ()) -> EvalRows:
    """The thumbs-down questions (with their comments) and the refused ones, each question once
    (case and white space folded; a thumbs-down before a refusal), as dev rows with no reference
    yet: `id` is `fb-<feedback id>` or `gap-<turn id>` of the latest. Questions in `known` (the
    existing sets') are left out."""
    known_keys = {question_key(q) for q in known}
    grouped: dict[str, list[Feedback]] = {}
    for down in read_thumbs_down(engine):
        if question_key(down.question):
            grouped.setdefault(question_key(down.question), []).append(down)
    rows: dict[str, dict[str, Any]] = {}
    for key, downs in grouped.items():
        latest = max(downs, key=lambda d: (d.created_at, d.id))
        comments = [d.comment for d in sorted(downs, key=lambda d: (d.created_at, d.id), reverse=True)]
        comments = list(dict.fromkeys(c for c in comments if c))
        rows[key] = _row(
            f"fb-{latest.id}",
            latest.question,
            "thumbs_down",
            latest.answer,
            latest.created_at,
            len(downs),
            comment=comments[0] if comments else "",
            comments=comments,
            channel=latest.channel,
        )
    for gap in content_gaps(read_turns(engine, refused_only=True)):
        key = question_key(gap.question)
        if key and key not in rows:
            rows[key] = _row(
                f"gap-{gap.turn_id}", gap.question, "refused", gap.answer, gap.last_asked, gap.times
            )
    kept = [row for key, row in rows.items() if key not in known_keys]
    return EvalRows(kept, known=len(rows) - len(kept))


def _row(
    row_id: str, question: str, origin: str, answer: str, asked: datetime, times: int, **extra: Any
) -> dict[str, Any]:
    return {
        "id": row_id,
        "user_input": normalise_space(question),
        "reference": "",
        "sources": [],
        "kind": None,
        "origin": origin,
        **extra,
        "answer": answer,
        "asked": asked.date().isoformat(),
        "times": times,
        "todo": TODO,
    }


def set_questions(paths: Iterable[Path]) -> list[str]:
    """The questions (`user_input`) of question-set files; a missing file or bad line is passed over."""
    questions = []
    for path in paths:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError:
            continue
        for line in lines:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and isinstance(row.get("user_input"), str):
                questions.append(row["user_input"])
    return questions
