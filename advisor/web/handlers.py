"""What the page does, as methods taking and returning plain values.

`PageHandlers` holds the advisor, its settings, the feedback store and the index builder. Each
method takes what the page's components hold (strings, lists, the chat history as message
dicts, the answers kept per conversation) and returns what to show: strings, lists and small
named tuples whose fields are the outputs in the order `advisor.web.app` wires them. `KEEP`
stands for an output the page leaves as it is (`gr.skip()` there). Nothing here imports Gradio,
so tests call these methods directly.
"""

from __future__ import annotations

import html
import logging
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy.exc import SQLAlchemyError

from advisor.advisor import Advisor, clean_question
from advisor.cases import CaseCatalogue, CaseStudy
from advisor.condense import message_text
from advisor.config import Settings
from advisor.db import exc_line
from advisor.errors import AdvisorError
from advisor.feedback import FeedbackStore
from advisor.guidance import AUDIENCES, STAGES, Guidance
from advisor.history import ConversationStore, NotFoundError, Owner
from advisor.types import Answer, Filters
from advisor.web.index_builder import IndexBuilder
from advisor.web.render import (
    AUDIENCE_LABELS,
    STAGE_LABELS,
    escape_text,
    render_answer_markdown,
    render_case_card,
    render_case_matches,
    render_conversation_links,
    render_evidence,
    render_guidance,
    render_library,
    render_message,
    searched_line,
    shown_question,
)

if TYPE_CHECKING:
    from gradio import LikeData

log = logging.getLogger(__name__)

UNEXPECTED = "Sorry, something went wrong while answering. Please try again; the problem has been logged."
FEEDBACK_KEPT = "and comment are kept and will be saved when it is free; no need to send them again."
NO_LIKE_INPUT = "Describe your innovation and its setting in a sentence, or pick at least one tag."
NO_THEME = "No theme of the guidance map has points for this audience at this stage."
CASE_FILTERS = ("innovation_type", "setting", "mechanism")  # with the report, the explorer's filters
LIKE_PICKERS = ("innovation_type", "setting", "organisation_type")
ANY = ""  # a filter left at "Any"
NOT_SAVED = (
    "This conversation is not being saved: your browser did not keep this page's cookie, so its "
    "conversations could not be found again."
)
NO_HISTORY = "No saved conversations yet: each question you ask is saved here."
DELETED_MEANWHILE = (
    "The conversation this question was asked in has been deleted (perhaps in another tab): this "
    "answer starts a new conversation, without the earlier questions."
)
UNREADABLE = "Your saved conversations cannot be read just now; please try again in a moment."
_TAGS = re.compile(r"<[^>]+>")


class Keep:
    """An output the page leaves as it is."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP = Keep()


class ChatTurn(NamedTuple):
    """What one step of answering shows."""

    history: list[dict[str, Any]]  # the chat, as Gradio's message dicts
    evidence: str | Keep  # the sources panel
    searched: str | Keep  # "Searched for: ..." under the chat, for a follow-up
    answers: dict[str, Any]  # answer records by chat position, and "latest"
    question: str  # the question box, emptied once the question is sent


class Rated(NamedTuple):
    """What rating an answer shows."""

    status: str | Keep  # the line under the rating buttons
    comment: str | Keep  # the comment box, emptied once the rating is saved


class Cleared(NamedTuple):
    """A new conversation: everything about the last one emptied."""

    history: list[dict[str, Any]]
    evidence: str
    searched: str
    answers: dict[str, Any]
    question: str
    status: str


class Listing(NamedTuple):
    """The saved-conversations picker and the line under it."""

    choices: list[tuple[str, str]]  # (label, conversation id), the latest first
    value: str | None  # the conversation shown
    links: str  # download links for the conversation shown (HTML), or ""
    status: str


class CaseTable(NamedTuple):
    """The explorer's table and the sentence counting it."""

    rows: list[list[str]]
    count: str


@dataclass(frozen=True)
class Explorer:
    """Choices and contents for the case-study tabs, from the catalogue now served."""

    status: str  # why there are no case studies (Markdown), or ""
    reports: list[tuple[str, str]]  # the report filter's (label, value) choices
    tags: dict[str, list[tuple[str, str]]]  # each tag filter's choices
    rows: list[list[str]]
    count: str
    names: list[str]  # the case picker's choices
    card: str  # the card shown before a case is picked
    like: dict[str, list[tuple[str, str]]]  # the "cases like mine" tag pickers' choices


@dataclass(frozen=True)
class GuidanceChoices:
    """The guidance tab's filters, from the map now served."""

    status: str  # why there is no map to show (Markdown), or ""
    audiences: list[tuple[str, str]]  # the audience filter's (label, value) choices
    stages: list[tuple[str, str]]  # the stage filter's choices


# ---- the case-study catalogue as the explorer shows it ---------------------------------
def catalogue_problem(advisor: Advisor) -> str | None:
    """Why there are no case studies to show, in a sentence; None when the catalogue is loaded."""
    loader = advisor.case_catalogue
    if loader.current is not None:
        return None
    if not advisor.ready:
        return "The case studies open when the library of reports is ready; it is being built."
    if loader.error:
        return (
            f"The case-study catalogue could not be loaded, so case studies cannot be shown: {loader.error}. "
            "The chat still answers from the reports."
        )
    return (
        "This library has no case-study catalogue (case_studies.yaml in the corpus), so there are no "
        "case studies to show. The chat still answers from the reports."
    )


def guidance_holder(advisor: Advisor) -> Guidance | None:
    """The advisor's guidance map holder (None when it was built without one)."""
    return advisor.guidance.guidance if advisor.guidance is not None else None


def guidance_problem(advisor: Advisor) -> str | None:
    """Why there are no themes to show, in a sentence; None when a guidance map is served."""
    holder = guidance_holder(advisor)
    if holder is not None and holder.current is not None:
        return None
    if not advisor.ready:
        return "The guidance map opens when the library of reports is ready; it is being built."
    if holder is not None and holder.error:
        return (
            f"The guidance map could not be loaded, so its themes cannot be shown: {holder.error}. "
            "The chat still answers from the reports."
        )
    return (
        "This library has no guidance map (guidance.yaml in the corpus), so there are no themes "
        "to show. The chat still answers from the reports."
    )


def guidance_choices(holder: Guidance) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(audience, stage) filter choices, each labelled with how many themes have points for it."""
    any_ = [("Any", ANY)]
    audiences = [
        (f"{AUDIENCE_LABELS[a].capitalize()} ({len(holder.themes(audience=a))})", a) for a in AUDIENCES
    ]
    stages = [(f"{STAGE_LABELS[s].capitalize()} ({len(holder.themes(stage=s))})", s) for s in STAGES]
    return any_ + audiences, any_ + stages


def tag_choices(catalogue: CaseCatalogue, field_name: str) -> list[tuple[str, str]]:
    """The values of a tag field that some case has, in vocabulary order, labelled with their counts."""
    counts = Counter(v for case in catalogue.cases for v in case.values(field_name))
    return [(f"{v} ({counts[v]})", v) for v in catalogue.vocabulary.values(field_name) if counts[v]]


def report_choices(catalogue: CaseCatalogue) -> list[tuple[str, str]]:
    """The reports that have case studies, labelled with publisher, year, title and count."""
    first: dict[str, CaseStudy] = {}
    counts = Counter(case.source for case in catalogue.cases)
    for case in catalogue.cases:
        first.setdefault(case.source, case)
    return [(f"{c.report}: {c.title} ({counts[s]})", s) for s, c in first.items()]


def filter_cases(catalogue: CaseCatalogue, source: str = ANY, **tags: str) -> list[CaseStudy]:
    """The explorer's filter: the catalogue's own `.filter`, a filter left at "Any" ignored."""
    return catalogue.filter(source=source or None, **{f: v for f, v in tags.items() if v})


def case_rows(cases: list[CaseStudy]) -> list[list[str]]:
    """The explorer's table: one row per case (plain text; the table shows it as text)."""
    return [
        [
            case.name,
            case.report,
            ", ".join(case.values("innovation_type")),
            ", ".join(case.values("setting")) or "-",
        ]
        for case in cases
    ]


def plain_history(history: list[dict[str, Any]], answers: dict[str, Any]) -> list[dict[str, str]]:
    """The chat as plain text for the advisor: user questions unescaped, answers without markup."""
    plain = []
    for i, message in enumerate(history):
        role = message.get("role")
        record = answers.get(str(i)) if role == "assistant" else None
        if record:
            text = record.get("answer", "")
        else:
            text = html.unescape(_TAGS.sub("", message_text(message.get("content"))))
        plain.append({"role": role, "content": text})
    return plain


def said(exc: Exception) -> str:
    """What the page says of a failed change to a saved conversation: the store's own sentence,
    or, for a database that failed, that it cannot be read now (the cause is logged)."""
    if isinstance(exc, AdvisorError):
        return str(exc)
    log.error("a saved conversation could not be changed: %s", exc_line(exc))
    return UNREADABLE


def share_line(share: str) -> str:
    """The line under a saved answer: its read-only link, which anyone signed in can open."""
    if not share:
        return ""
    return f"\n\n<small><a href='shared/{share}' target='_blank'>Link to this answer</a></small>"


def conversation_label(title: str, updated: Any, turns: int) -> str:
    """How a saved conversation reads in the picker."""
    when = updated.strftime("%d %b %Y %H:%M")
    return f"{title} ({turns} answer{'s' if turns != 1 else ''}, {when} UTC)"


# ---- the handlers ----------------------------------------------------------------------
class PageHandlers:
    """The page's handlers around one advisor, its settings and one feedback store."""

    def __init__(
        self,
        advisor: Advisor,
        settings: Settings,
        feedback: FeedbackStore,
        builder: IndexBuilder | None = None,
        conversations: ConversationStore | None = None,
    ) -> None:
        self.advisor = advisor
        self.settings = settings
        self.feedback = feedback
        self.builder = builder or IndexBuilder(advisor)
        self.conversations = conversations  # None: nothing is saved (no history panel)

    # ---- the chat ----
    def filter_choices(self) -> tuple[list[tuple[str, str]], list[str]]:
        """The chat's filters: (title, file name) of each report, and the case study names."""
        if not self.advisor.ready:
            return [], []
        docs = [(d.title, d.source) for d in self.advisor.sources()]
        return docs, self.advisor.case_study_names()

    def ask(
        self,
        message: Any,
        history: list[dict[str, Any]] | None,
        sources: list[str] | None,
        cases: list[str] | None,
        answers: dict[str, Any] | None,
        owner: Owner | None = None,
    ) -> Iterator[ChatTurn]:
        """Answer a question in the conversation: the question at once, the text as it streams, then
        the answer with its evidence; a clear message instead when the question cannot be answered.
        With a conversation store, the answer is saved in the owner's conversation (`answers`
        holds its id under "conversation") and gets its share link."""
        question = message_text(message).strip() if message is not None else ""
        history = list(history or [])
        answers = dict(answers or {})
        gone = self._deleted_meanwhile(owner, answers)
        if gone:  # deleted in another tab: answer without its questions, in a new conversation
            history, answers = [], {}
        earlier = plain_history(history, answers)
        history = history + [{"role": "user", "content": shown_question(question)}]
        if not self.builder.ready_now():  # being built, or damaged (read again: it may be rebuilt)
            history.append({"role": "assistant", "content": escape_text(self.builder.status())})
            yield ChatTurn(history, render_evidence(None), "", answers, "")
            return
        yield ChatTurn(list(history), KEEP, "", answers, "")  # the question shows at once, the box empties
        filters = Filters(sources=tuple(sources or ()), case_studies=tuple(cases or ()))
        streamed = ""
        try:
            for event in self.advisor.stream(question, history=earlier, filters=filters or None):
                if isinstance(event, Answer):
                    answer = event
                    break
                streamed += event
                partial = history + [{"role": "assistant", "content": escape_text(streamed)}]
                yield ChatTurn(partial, KEEP, KEEP, answers, "")
        except AdvisorError as exc:  # a bad question, a missing index, an LLM that is down
            history.append({"role": "assistant", "content": escape_text(str(exc))})
            yield ChatTurn(history, KEEP, "", answers, "")
            return
        except Exception:  # the edge: one user's failure must not take the page down
            log.exception("answering %r failed", question[:200])
            history.append({"role": "assistant", "content": UNEXPECTED})
            yield ChatTurn(history, KEEP, "", answers, "")
            return
        record = answer.to_record()
        share, problem = self._save(owner, record, answers)
        notes = [DELETED_MEANWHILE] if gone else []
        notes += [problem] if problem else []
        bubble = (
            render_answer_markdown(answer) + share_line(share) + "".join(f"\n\n<em>{n}</em>" for n in notes)
        )
        history.append({"role": "assistant", "content": bubble})
        answers[str(len(history) - 1)] = record
        answers["latest"] = record
        yield ChatTurn(history, render_evidence(answer, share), searched_line(answer), answers, "")

    def _deleted_meanwhile(self, owner: Owner | None, answers: dict[str, Any]) -> bool:
        """Whether the conversation shown was saved and has since been deleted (in another tab)."""
        current = answers.get("conversation")
        if not current or self.conversations is None or owner is None:
            return False
        try:
            return not self.conversations.exists(current, owner)  # its row, not its answers: every question
        except Exception:  # noqa: BLE001 - an unreadable database: saving will say so
            return False

    def _save(self, owner: Owner | None, record: dict[str, Any], answers: dict[str, Any]) -> tuple[str, str]:
        """Keep the answer in the owner's conversation: (its share id, "") or ("", why it was not)."""
        if self.conversations is None:
            return "", ""
        if owner is None:
            return "", NOT_SAVED
        generation = self.advisor.index.generation if self.advisor.ready else ""
        current = answers.get("conversation")
        try:
            try:
                turn = self.conversations.add_turn(
                    owner, record, conversation_id=current, generation=generation
                )
            except NotFoundError:  # deleted in another tab: this answer starts a new one
                turn = self.conversations.add_turn(owner, record, generation=generation)
        except Exception as exc:  # noqa: BLE001 - the answer is shown even when it cannot be saved
            log.error("could not save an answer in its conversation: %s", exc_line(exc))
            return "", "This answer could not be saved in your history (the database could not be written)."
        record["answer_id"] = turn.id
        answers["conversation"] = turn.conversation_id
        return turn.id, ""

    def new_conversation(self) -> Cleared:
        return Cleared([], render_evidence(None), "", {}, "", "")

    # ---- saved conversations ----
    def listing(
        self, owner: Owner | None, answers: dict[str, Any] | None = None, status: str = ""
    ) -> Listing:
        """The owner's saved conversations, the one shown (in `answers`) picked, and its links."""
        current = (answers or {}).get("conversation")
        if self.conversations is None:
            return Listing([], None, "", "")
        if owner is None:
            return Listing([], None, "", status or NOT_SAVED)
        try:
            saved = self.conversations.list(owner)
        except Exception as exc:  # noqa: BLE001 - the page works without its history
            log.error("could not list saved conversations: %s", exc_line(exc))
            return Listing([], current, "", UNREADABLE)
        choices = [(conversation_label(c.title, c.updated_at, c.turns), c.id) for c in saved]
        if current not in {c.id for c in saved}:
            current = None
        links = render_conversation_links(current) if current else ""
        return Listing(choices, current, links, status or ("" if saved else NO_HISTORY))

    def open_conversation(self, conversation_id: str | None, owner: Owner | None) -> Cleared:
        """A saved conversation back in the chat: its questions, answers and the last one's evidence."""
        if not conversation_id or self.conversations is None:
            return self.new_conversation()
        if owner is None:
            return Cleared(KEEP, KEEP, KEEP, KEEP, KEEP, NOT_SAVED)
        try:
            conversation = self.conversations.get(conversation_id, owner)
        except NotFoundError as exc:
            return Cleared(KEEP, KEEP, KEEP, KEEP, KEEP, str(exc))
        except SQLAlchemyError as exc:
            log.error("could not open a saved conversation: %s", exc_line(exc))
            return Cleared(KEEP, KEEP, KEEP, KEEP, KEEP, UNREADABLE)
        history: list[dict[str, Any]] = []
        answers: dict[str, Any] = {"conversation": conversation.id}
        last = None
        for turn in conversation.turns:
            record = dict(turn.record, answer_id=turn.id)
            last = Answer.from_record(record)
            history.append({"role": "user", "content": shown_question(turn.question)})
            history.append(
                {"role": "assistant", "content": render_answer_markdown(last) + share_line(turn.id)}
            )
            answers[str(len(history) - 1)] = answers["latest"] = record
        evidence = render_evidence(last, conversation.turns[-1].id) if last else render_evidence(None)
        return Cleared(history, evidence, searched_line(last) if last else "", answers, "", "")

    def latest_conversation(self, owner: Owner | None) -> Cleared:
        """The owner's latest conversation, as the page shows it when loaded (reloaded)."""
        if self.conversations is None or owner is None:
            return Cleared(KEEP, KEEP, KEEP, KEEP, KEEP, "")
        try:
            latest = self.conversations.list(owner, limit=1)
        except Exception:  # noqa: BLE001 - `listing` says so
            latest = []
        return (
            self.open_conversation(latest[0].id, owner)
            if latest
            else Cleared(KEEP, KEEP, KEEP, KEEP, KEEP, "")
        )

    def rename_conversation(
        self, title: str | None, answers: dict[str, Any] | None, owner: Owner | None
    ) -> Listing:
        """Rename the conversation shown."""
        current = (answers or {}).get("conversation")
        if not current or self.conversations is None or owner is None:
            return self.listing(
                owner, answers, "Ask a question first: only a saved conversation can be renamed."
            )
        try:
            renamed = self.conversations.rename(current, owner, title or "")
        except (AdvisorError, SQLAlchemyError) as exc:
            return self.listing(owner, answers, said(exc))
        return self.listing(owner, answers, f"Renamed to “{escape_text(renamed.title)}”.")

    def delete_conversation(
        self, answers: dict[str, Any] | None, owner: Owner | None, confirmed: str | None = None
    ) -> tuple[Cleared, Listing, str]:
        """Delete the conversation shown, with its answers and their share links, in two steps:
        the first press asks (and returns the id to confirm), a second press on the same
        conversation deletes it. Returns what to show and the id awaiting confirmation ("")."""
        unchanged = Cleared(KEEP, KEEP, KEEP, KEEP, KEEP, KEEP)
        current = (answers or {}).get("conversation")
        if not current or self.conversations is None or owner is None:
            return unchanged, self.listing(owner, answers, "There is no saved conversation to delete."), ""
        if confirmed != current:
            try:
                title = self.conversations.get(current, owner).title
            except (AdvisorError, SQLAlchemyError) as exc:
                return unchanged, self.listing(owner, answers, said(exc)), ""
            ask = (
                f"Delete “{escape_text(title)}”, its answers and their share links for good? "
                "Press Delete again to confirm."
            )
            return unchanged, self.listing(owner, answers, ask), current
        try:
            self.conversations.delete(current, owner)
        except (AdvisorError, SQLAlchemyError) as exc:
            return unchanged, self.listing(owner, answers, said(exc)), ""
        done = "Deleted: the conversation, its answers and their share links are gone."
        return self.new_conversation(), self.listing(owner, None, done), ""

    # ---- feedback ----
    def rate_latest(self, verdict: str, comment: str | None, answers: dict[str, Any] | None) -> Rated:
        """Store a rating ("up" or "down") of the latest answer, with the comment."""
        return self._store(verdict, comment, (answers or {}).get("latest"))

    def rate(self, data: LikeData, comment: str | None, answers: dict[str, Any] | None) -> Rated:
        """Store a thumb clicked under a message of the chat, with the comment."""
        if not isinstance(data.liked, bool):  # a thumb clicked off again: nothing to store
            return Rated(KEEP, KEEP)
        index = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
        record = (answers or {}).get(str(index))
        if record is None:
            return Rated("Only answers can be rated; this message is not one.", KEEP)
        return self._store("up" if data.liked else "down", comment, record)

    def _store(self, verdict: str, comment: str | None, record: dict[str, Any] | None) -> Rated:
        if not record:
            return Rated("Ask a question first: feedback is about an answer.", KEEP)
        label = "helpful" if verdict == "up" else "not helpful"
        try:
            meta = {"answer_id": record["answer_id"]} if record.get("answer_id") else None  # its saved turn
            feedback_id = self.feedback.submit(
                "web", record["question"], record, verdict, comment or "", meta
            )
        except AdvisorError as exc:  # the database refused this row itself (logged)
            return Rated(f"Sorry, your rating could not be saved: {exc}", KEEP)
        if feedback_id is None:  # the database is busy: kept, and retried in the background
            return Rated(f"The feedback database is busy: your rating ({label}) {FEEDBACK_KEPT}", "")
        return Rated(f"Thank you: feedback #{feedback_id} saved ({label}).", "")

    # ---- the library ----
    def library(self) -> str:
        return render_library(self.advisor.sources() if self.advisor.ready else None)

    def banner(self) -> str:
        """The line at the top of the page: the build's progress, or nothing once it is ready."""
        return "" if self.advisor.ready else self.builder.banner()

    # ---- case studies: the explorer and "cases like mine" ----
    def explorer(self) -> Explorer:
        """Choices and contents for the case-study tabs, from the catalogue now served."""
        catalogue = self.advisor.case_catalogue.current
        any_ = [("Any", ANY)]
        if catalogue is None:
            return Explorer(
                status=escape_text(catalogue_problem(self.advisor) or ""),
                reports=any_,
                tags={f: any_ for f in CASE_FILTERS},
                rows=[],
                count="",
                names=[],
                card=self._problem(),
                like={f: [] for f in LIKE_PICKERS},
            )
        return Explorer(
            status="",
            reports=any_ + report_choices(catalogue),
            tags={f: any_ + tag_choices(catalogue, f) for f in CASE_FILTERS},
            rows=case_rows(catalogue.cases),
            count=f"All {len(catalogue)} case studies in the catalogue.",
            names=[c.name for c in catalogue.cases],
            card=render_case_card(None, {}),
            like={f: tag_choices(catalogue, f) for f in LIKE_PICKERS},
        )

    def filter_cases(
        self, source: str | None, innovation_type: str | None, setting: str | None, mechanism: str | None
    ) -> CaseTable:
        """The explorer's table for a report and tags ("" is "Any"), and how many cases match."""
        catalogue = self.advisor.case_catalogue.current
        if catalogue is None:
            return CaseTable([], escape_text(catalogue_problem(self.advisor) or ""))
        try:
            cases = filter_cases(
                catalogue,
                source or ANY,
                innovation_type=innovation_type,
                setting=setting,
                mechanism=mechanism,
            )
        except AdvisorError as exc:  # a value the catalogue no longer has (it was reloaded)
            return CaseTable([], escape_text(str(exc)))
        if cases:
            count = f"{len(cases)} of {len(catalogue)} case studies match."
        else:
            count = f"None of the {len(catalogue)} case studies matches all of these filters."
        return CaseTable(case_rows(cases), count)

    def case_card(self, name: str | None) -> str:
        """The card of the case study picked by name; the hint when none is picked."""
        catalogue = self.advisor.case_catalogue.current
        if catalogue is None:
            return self._problem()
        case = catalogue.get(name) if name else None
        return render_case_card(case, catalogue.anchors(self.advisor.index) if case else {})

    def cases_like(
        self,
        text: str | None,
        innovation_types: list[str] | None,
        settings_: list[str] | None,
        organisation_types: list[str] | None,
    ) -> str:
        """The case studies most like a description and/or picked tags, with their quotes."""
        catalogue = self.advisor.case_catalogue.current
        if catalogue is None:
            return self._problem()
        picked = {
            f: list(v) for f, v in zip(LIKE_PICKERS, (innovation_types, settings_, organisation_types)) if v
        }
        text = (text or "").strip()
        try:
            if text:
                text = clean_question(text, self.settings.max_question_chars)
            elif not picked:
                return render_message(NO_LIKE_INPUT, panel="evidence like-results")
            matches = catalogue.like(text, k=5, tags=picked or None)
        except AdvisorError as exc:
            return render_message(str(exc), panel="evidence like-results")
        return render_case_matches(matches, catalogue.anchors(self.advisor.index))

    def _problem(self) -> str:
        return render_message(catalogue_problem(self.advisor) or "")

    # ---- the guidance map ----
    def guidance_choices(self) -> GuidanceChoices:
        """The guidance tab's filters (each "Any" first) and why there is no map, if there is none."""
        holder = guidance_holder(self.advisor)
        problem = guidance_problem(self.advisor)
        if holder is None or problem is not None:
            return GuidanceChoices(escape_text(problem or ""), [("Any", ANY)], [("Any", ANY)])
        audiences, stages = guidance_choices(holder)
        return GuidanceChoices("", audiences, stages)

    def guidance(self, audience: str | None, stage: str | None) -> str:
        """The guidance tab's themes for an audience and a stage ("" is "Any"), or why there are none."""
        holder = guidance_holder(self.advisor)
        problem = guidance_problem(self.advisor)
        if holder is None or holder.current is None or problem is not None:
            return render_message(problem or "", panel="evidence guidance")
        try:
            themes = holder.themes(audience=audience or None, stage=stage or None)
        except AdvisorError as exc:  # a value the page never offers (a hand-made API call)
            return render_message(str(exc), panel="evidence guidance")
        if not themes:
            return render_message(NO_THEME, panel="evidence guidance")
        anchors = self.advisor.guidance.anchors(self.advisor.index) if self.advisor.guidance else {}
        return render_guidance(themes, anchors, len(holder.current), audience or None, stage or None)

    def guidance_json(self, audience: str | None, stage: str | None, theme: str | None) -> Any:
        """The map's themes as JSON (`Theme.to_json()`, as `advisor guidance --json`) for an audience,
        stage and/or theme ("" is any); {"error": ...} for an unknown value or when there is no map."""
        holder = guidance_holder(self.advisor)
        problem = guidance_problem(self.advisor)
        if holder is None or problem is not None:
            return {"error": problem or ""}
        try:
            themes = holder.themes(audience=audience or None, stage=stage or None, theme=theme or None)
        except AdvisorError as exc:
            return {"error": str(exc)}
        return [t.to_json() for t in themes]
