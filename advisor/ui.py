"""The web page (Gradio): chat with the advisor and see the evidence behind every sentence.

Answers stream in sentence by sentence; every marker in an answer is drawn from
`Answer.citations` (never parsed from text) and the evidence panel shows each cited passage
with its report, publisher, year, section and case study, the quoted sentence highlighted.
Follow-ups are condensed with the conversation, filters restrict the search, and thumbs
up/down with a comment go to the durable feedback store. Answers from the case-study
catalogue show one case per line.

Two tabs show the catalogue itself (`advisor.case_catalogue`): the explorer (a table of the
case studies filtered by report and tags, and a card per case with every value's verbatim
quote, where it is, and the indexed passage holding it, highlighted), and "cases like mine"
(the cases ranked against a description and/or picked tags, with why they match, how they
spread, where they differ and their quotes). Nothing is fetched from outside: analytics off,
no share link, system fonts only.
"""

from __future__ import annotations

import html
import logging
import os
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator

from advisor.advisor import Advisor, clean_question
from advisor.cases import (
    FIELD_LABELS, NO_SIMILAR_CASE, TAG_FIELDS, CaseCatalogue, CaseMatch, CaseStudy, Evidence,
)
from advisor.condense import message_text
from advisor.config import Settings, force_offline
from advisor.errors import AdvisorError, ConfigError
from advisor.feedback import FeedbackStore
from advisor.types import Answer, Chunk, Filters

log = logging.getLogger(__name__)

_TAGS = re.compile(r"<[^>]+>")


def _escape(text: str) -> str:
    """Text as HTML text (never markup); quotes stay as they are, so copied text reads right."""
    return html.escape(text, quote=False)

UNEXPECTED = "Sorry, something went wrong while answering. Please try again; the problem has been logged."

EXAMPLES = [
    "How did other innovators persuade late adopters to take up their product?",
    "What role do clinical champions play in spreading an innovation?",
    "What evidence do NHS adopters want before taking up an innovation?",
    "What makes a good pilot of a technology-enabled service change?",
    "How did the DAFNE programme spread across the NHS?",
]

CSS = """
.evidence details.cite { border: 1px solid var(--border-color-primary); border-radius: 8px;
  padding: 8px 12px; margin: 0 0 10px 0; background: var(--background-fill-secondary); }
.evidence summary { cursor: pointer; list-style: none; }
.evidence summary::-webkit-details-marker { display: none; }
.evidence .marker { display: inline-block; min-width: 1.8em; font-weight: 700;
  color: var(--color-accent); }
.evidence .where { color: var(--body-text-color-subdued); font-size: 0.9em; }
.evidence .quote { margin-top: 6px; font-style: italic; }
.evidence .passage { margin-top: 8px; padding-top: 8px; border-top: 1px dashed var(--border-color-primary);
  white-space: pre-wrap; font-size: 0.92em; line-height: 1.45; }
.evidence mark { background: #fde68a; color: inherit; padding: 0 2px; border-radius: 2px; }
.evidence .flag { color: #b91c1c; font-weight: 600; }
.evidence .hint, .library .hint { color: var(--body-text-color-subdued); font-size: 0.9em; }
.library table { border-collapse: collapse; width: 100%; border: none !important; }
.library th, .library td { border: none !important; border-bottom: 1px solid var(--border-color-primary) !important;
  padding: 10px 12px; text-align: left; vertical-align: top; }
.library th { color: var(--body-text-color-subdued); font-weight: 600; }
.library code { font-size: 0.85em; color: var(--body-text-color-subdued); }
#feedback-status { padding: 0 10px; }
sup.cite-marker { color: var(--color-accent); font-weight: 700; }
#cases-table td, #cases-table th, #cases-table .cell-wrap { font-family: var(--font); font-size: 0.92em; }
#cases-table td { cursor: pointer; }
#case-card { max-height: 78vh; overflow-y: auto; }  /* the card scrolls beside the table */
.case-card h3 { margin: 0 0 4px 0; }
.case-card h4, .like-results h4 { margin: 14px 0 6px 0; }
.case-card details.cite, .like-results details.cite { padding: 6px 10px; margin-bottom: 6px; }
.case-card .value, .like-results .value { font-weight: 600; }
.case-card .open, .like-results .open { color: var(--color-accent); font-size: 0.85em; white-space: nowrap; }
.case-card details[open] .open, .like-results details[open] .open { display: none; }
.case-card .quote, .like-results .quote { margin-top: 2px; }
.like-results .match { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 10px 14px;
  margin: 0 0 14px 0; }
.like-results .match h4 { margin-top: 0; }
.like-results .score { color: var(--body-text-color-subdued); font-weight: 400; font-size: 0.9em; }
.like-results .none, .case-card .none { font-weight: 600; }
"""


def parse_auth(value: str | None) -> list[tuple[str, str]] | None:
    """`user:password,user2:password2` -> [(user, password), ...]; None when unset."""
    if not value:
        return None
    pairs = []
    for item in value.split(","):
        user, sep, password = item.strip().partition(":")
        if not sep or not user or not password:
            raise ConfigError("ADVISOR_UI_AUTH must look like 'user:password,user2:password2'")
        pairs.append((user, password))
    return pairs


@dataclass
class IndexBuilder:
    """Builds the index in the background on first run, so the page can open at once."""

    advisor: Advisor
    stage: str = "starting"
    done: int = 0
    total: int = 0
    error: str | None = None
    _thread: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> None:
        """Load the index, or start building it when there is none."""
        if self.advisor.ready or self.advisor.load():
            return
        self._thread = threading.Thread(target=self._build, name="index-builder", daemon=True)
        self._thread.start()

    def _build(self) -> None:
        try:
            self.advisor.ensure_index(progress=self._progress)
        except Exception as exc:  # shown in the page; the process keeps serving
            log.exception("building the index failed")
            self.error = str(exc)

    def _progress(self, stage: str, done: int, total: int) -> None:
        self.stage, self.done, self.total = stage, done, total
        log.info("%s: %d/%d", stage, done, total)

    def banner(self) -> str:
        """A line for the top of the page while the index is not ready."""
        if self.error:
            return f"**The library could not be built:** {_escape(self.error)}"
        progress = f" ({self.done}/{self.total})" if self.total else ""
        return (
            f"**Building the library of reports** - {_escape(self.stage.lower())}{progress}. "
            "Questions are answered as soon as it is ready."
        )

    def status(self) -> str:
        """A sentence for the chat while the index is not ready."""
        if self.error:
            return f"The library could not be built: {self.error}"
        progress = f" ({self.done}/{self.total})" if self.total else ""
        return (
            "The advisor is still building its library of reports"
            f" - {self.stage.lower()}{progress}. Please ask again in a moment."
        )


# ---- rendering ---------------------------------------------------------------------
def render_answer_markdown(answer: Answer) -> str:
    """The answer for the chat bubble: each sentence with its citation markers."""
    if answer.refused or not answer.sentences:
        body = _escape(answer.text)
    elif answer.rows:
        body = _catalogue_rows(answer)
    else:
        parts = []
        for sentence in answer.sentences:
            markers = _markers(sentence.markers)
            text = _escape(sentence.text)
            if sentence.label:
                text = f"<strong>{_escape(sentence.label)}</strong>: {text}"
            if sentence.verdict != "supported":
                text = f"{text} <em>({sentence.verdict})</em>"
            parts.append(f"{text}{markers}")
        labelled = len(parts) > 1 and any(s.label for s in answer.sentences)
        body = "\n".join(f"- {p}" for p in parts) if labelled else " ".join(parts)
    notes = "".join(f"\n\n<em>{_escape(n)}</em>" for n in answer.notes)
    return body + notes


def _markers(markers) -> str:
    """Citation markers as the superscripts the page (and its tests) look for."""
    return "".join(f"<sup class='cite-marker'>[{m}]</sup>" for m in markers)


def _catalogue_rows(answer: Answer) -> str:
    """A catalogue answer as its heading and a list, one row per line with its markers."""
    items = [f"- {_escape(row.text)}{_markers(row.markers)}" for row in answer.rows]
    return _escape(answer.heading) + "\n\n" + "\n".join(items)


def _highlight(passage: str, quote: str) -> str:
    """The passage as HTML with the quote marked; the quote may be wrapped differently (white space)."""
    start = passage.find(quote)
    if start >= 0:
        end = start + len(quote)
    else:
        words = quote.split()
        found = re.search(r"\s+".join(re.escape(w) for w in words), passage) if words else None
        if found is None:
            return _escape(passage)
        start, end = found.span()
    return (
        _escape(passage[:start]) + "<mark>" + _escape(passage[start:end]) + "</mark>" + _escape(passage[end:])
    )


def render_evidence(answer: Answer | None) -> str:
    """The sources panel: one card per citation, its passage one click away."""
    if answer is None:
        return "<div class='evidence'><p class='hint'>Ask a question: the passages behind every sentence of the answer appear here.</p></div>"
    cards = []
    if answer.citations:
        for citation in answer.citations:
            r = citation.to_record()
            where = " › ".join(_escape(x) for x in (r["section"], r["case_study"]) if x)
            meta = " · ".join(_escape(str(x)) for x in (r["publisher"], r["year"]) if x)
            page = f" · p. {r['page']}" if r.get("page") else ""
            cards.append(
                f"<details class='cite' id='cite-{citation.marker}'>"
                f"<summary><span class='marker'>[{citation.marker}]</span> "
                f"<b>{_escape(r['title'])}</b><br><span class='where'>{meta}{page}"
                f"{' · ' + where if where else ''}</span>"
                f"<div class='quote'>“{_escape(citation.quote)}”</div></summary>"
                f"<div class='passage'>{_highlight(citation.passage.chunk.text, citation.quote)}</div>"
                "</details>"
            )
        header = "<p class='hint'>Click a source to read the whole passage; the quoted sentence is highlighted.</p>"
    else:
        header = "<p class='hint'>No passage answers this closely enough. The closest ones:</p>"
        for p in answer.passages[:3]:
            c = p.chunk
            where = " · ".join(
                _escape(str(x)) for x in (c.meta.get("publisher"), c.meta.get("year"), c.section, c.case_study) if x
            )
            cards.append(
                f"<details class='cite'><summary><b>{_escape(c.title)}</b><br>"
                f"<span class='where'>{where}</span></summary>"
                f"<div class='passage'>{_escape(c.text)}</div></details>"
            )
    flags = [s for s in answer.sentences if s.verdict != "supported"]
    if flags:
        header += "".join(
            f"<p class='flag'>Not supported by its sources ({s.verdict}): {_escape(s.text)}</p>" for s in flags
        )
    return "<div class='evidence'>" + header + "".join(cards) + "</div>"


def render_corpus(advisor: Advisor) -> str:
    """The library tab: each report with its metadata and case studies."""
    if not advisor.ready:
        return "<p>The library is being built.</p>"
    rows = []
    for doc in advisor.sources():
        cases = ", ".join(_escape(c) for c in sorted(doc.case_studies)) or "<span class='hint'>none named</span>"
        rows.append(
            f"<tr><td><b>{_escape(doc.title)}</b><br><code>{_escape(doc.source)}</code></td>"
            f"<td>{_escape(doc.publisher)}</td><td>{doc.year or ''}</td><td>{doc.chunks}</td>"
            f"<td>{cases}</td></tr>"
        )
    return (
        "<div class='library'><p>The advisor answers only from these reports; a question about anything"
        " else is declined rather than guessed.</p>"
        "<table><thead><tr><th>Report</th><th>Publisher</th><th>Year</th><th>Passages</th>"
        "<th>Case studies</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table></div>"
    )


# ---- case studies --------------------------------------------------------------------
CASE_COLUMNS = ["Case study", "Report", "Innovation type", "Setting"]  # how each spread: on its card
CASE_FILTERS = ("innovation_type", "setting", "mechanism")  # with the report, the explorer's filters
LIKE_PICKERS = ("innovation_type", "setting", "organisation_type")
CARD_FIELDS = (
    "description", "innovation_type", "setting", "organisation_type", "scale",
    "mechanism", "evidence_type", "barrier", "lesson",
)
ANY = ""  # a filter left at "Any"
CARD_HINT = "Choose a case study in the table (or the list above) to see every value with its quote."
LIKE_HINT = "Describe your innovation and its setting, or pick tags, then press Find similar cases."
NO_LIKE_INPUT = "Describe your innovation and its setting in a sentence, or pick at least one tag."


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


def _like_message(text: str) -> str:
    return f"<div class='evidence like-results'><p class='none'>{_escape(text)}</p></div>"


def _problem_html(advisor: Advisor) -> str:
    return f"<div class='evidence'><p class='none'>{_escape(catalogue_problem(advisor) or '')}</p></div>"


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


def _where(case: CaseStudy, evidence: Evidence, chunk: Chunk | None) -> str:
    page = chunk.meta.get("page") if chunk is not None else None
    parts = [case.report, case.section, f"line {evidence.line}"] + ([f"p. {page}"] if page else [])
    return " · ".join(_escape(str(p)) for p in parts if p)


def render_quote(case: CaseStudy, evidence: Evidence, chunk: Chunk | None) -> str:
    """One value with its verbatim quote and where it is; a click shows the passage holding it."""
    value = evidence.value + (f" ({evidence.year})" if evidence.year else "")
    head = (
        f"<span class='value'>{_escape(value)}</span>"
        f"<div class='quote'>“{_escape(evidence.quote)}”</div>"
        f"<span class='where'>{_where(case, evidence, chunk)}</span>"
    )
    if chunk is None:  # the catalogue is checked against the reports, but the index may be older
        return (
            f"<div class='cite'>{head}<div class='hint'>This quote is not in the current index"
            " (run <code>advisor ingest</code>).</div></div>"
        )
    return (
        f"<details class='cite'><summary>{head} <span class='open'>Show the passage ›</span></summary>"
        f"<div class='passage'>{_highlight(chunk.text, evidence.quote)}</div></details>"
    )


def render_case_card(case: CaseStudy | None, anchors: dict[tuple[str, str], Chunk]) -> str:
    """A case study's card: every field, each value with its quote, location and passage."""
    if case is None:
        return f"<div class='evidence case-card'><p class='hint'>{_escape(CARD_HINT)}</p></div>"
    aka = f" <span class='where'>(also {_escape(', '.join(case.aliases))})</span>" if case.aliases else ""
    parts = [
        f"<div class='evidence case-card'><h3>{_escape(case.name)}{aka}</h3>",
        f"<p class='where'><b>{_escape(case.title)}</b> · {_escape(case.report)}<br>"
        f"<code>{_escape(case.source)}</code> · {_escape(case.section)}"
        f" · lines {case.lines[0]}-{case.lines[1]}</p>",
        "<p class='hint'>Every value below is quoted from the report. Click a quote to read the passage "
        "it comes from, the quote highlighted.</p>",
    ]
    for field_name in CARD_FIELDS:
        items = case.evidence_for(field_name)
        label = FIELD_LABELS[field_name].capitalize()
        if not items:
            if field_name in TAG_FIELDS:
                parts.append(f"<h4>{_escape(label)}</h4><p class='hint'>The report does not say.</p>")
            continue
        parts.append(f"<h4>{_escape(label)}</h4>")
        parts.extend(render_quote(case, e, anchors.get((case.name, e.quote))) for e in items)
    return "".join(parts) + "</div>"


def render_case_matches(matches: list[CaseMatch], anchors: dict[tuple[str, str], Chunk]) -> str:
    """"Cases like mine": each case's score, why it matched, how it spread, how it differs, its quotes."""
    if not matches:
        return _like_message(NO_SIMILAR_CASE)
    parts = [
        f"<div class='evidence like-results'><p class='hint'>The {len(matches)} case "
        f"{'study' if len(matches) == 1 else 'studies'} most like yours, best first."
        " Click a quote to read its passage.</p>"
    ]
    for n, match in enumerate(matches, start=1):
        case = match.case
        spread = ", ".join(case.values("mechanism")) or "the report does not say"
        differs = "; ".join(match.differences) or "nothing in what you described"
        parts.append(
            f"<div class='match'><h4>{n}. {_escape(case.name)} "
            f"<span class='score'>score {match.score:.2f}</span></h4>"
            f"<p class='where'>{_escape(case.report)} · {_escape(case.title)} · {_escape(case.section)}</p>"
            f"<p>{_escape(case.description)}</p>"
            f"<p><b>Why it matched:</b> {_escape('; '.join(match.reasons))}</p>"
            f"<p><b>What it did to spread:</b> {_escape(spread)}</p>"
            f"<p><b>Where its context differs:</b> {_escape(differs)}</p>"
            "<p><b>Evidence:</b></p>"
            + "".join(render_quote(case, e, anchors.get((case.name, e.quote))) for e in match.citations)
            + "</div>"
        )
    return "".join(parts) + "</div>"


def shown_question(question: str, limit: int = 600) -> str:
    """The question as its chat bubble shows it: escaped (markup is text), long pastes cut."""
    if not question:
        return "<em>(empty question)</em>"
    if len(question) > limit:
        return _escape(question[:limit]) + f"… <em>({len(question):,} characters)</em>"
    return _escape(question)


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


def _searched(answer: Answer) -> str:
    if answer.query and answer.query != answer.question:
        return f"**Searched for:** {_escape(answer.query)}"
    return ""


# ---- the app -----------------------------------------------------------------------
def build_ui(advisor: Advisor, settings: Settings, feedback: FeedbackStore, builder: IndexBuilder | None = None):
    """The Gradio Blocks app around one advisor and one feedback store."""
    force_offline()
    import gradio as gr

    builder = builder or IndexBuilder(advisor)

    def filter_choices():
        if not advisor.ready:
            return [], []
        docs = [(d.title, d.source) for d in advisor.sources()]
        return docs, advisor.case_study_names()

    def respond(message, history, sources, cases, answers) -> Iterator[tuple]:
        question = message_text(message).strip() if message is not None else ""
        history = list(history or [])
        answers = dict(answers or {})
        earlier = plain_history(history, answers)
        history = history + [{"role": "user", "content": shown_question(question)}]
        if not advisor.ready:
            history.append({"role": "assistant", "content": builder.status()})
            yield history, render_evidence(None), "", answers, ""
            return
        yield history, gr.skip(), "", answers, ""  # the question shows at once, the box empties
        filters = Filters(sources=tuple(sources or ()), case_studies=tuple(cases or ()))
        streamed = ""
        try:
            for event in advisor.stream(question, history=earlier, filters=filters or None):
                if isinstance(event, Answer):
                    answer = event
                    break
                streamed += event
                partial = history + [{"role": "assistant", "content": _escape(streamed)}]
                yield partial, gr.skip(), gr.skip(), answers, ""
        except AdvisorError as exc:  # a bad question, a missing index, an LLM that is down
            history.append({"role": "assistant", "content": _escape(str(exc))})
            yield history, gr.skip(), "", answers, ""
            return
        except Exception:  # the edge: one user's failure must not take the page down
            log.exception("answering %r failed", question[:200])
            history.append({"role": "assistant", "content": UNEXPECTED})
            yield history, gr.skip(), "", answers, ""
            return
        history.append({"role": "assistant", "content": render_answer_markdown(answer)})
        answers[str(len(history) - 1)] = answer.to_record()
        answers["latest"] = answer.to_record()
        yield history, render_evidence(answer), _searched(answer), answers, ""

    def store_feedback(verdict: str, comment: str, record: dict | None):
        if not record:
            return "Ask a question first: feedback is about an answer.", gr.skip()
        feedback_id = feedback.record("web", record["question"], record, verdict, comment or "")
        label = "helpful" if verdict == "up" else "not helpful"
        return f"Thank you: feedback #{feedback_id} saved ({label}).", ""

    def on_latest(verdict: str):
        return lambda comment, answers: store_feedback(verdict, comment, (answers or {}).get("latest"))

    def on_like(data: gr.LikeData, comment: str, answers: dict):
        if not isinstance(data.liked, bool):  # a thumb clicked off again: nothing to store
            return gr.skip(), gr.skip()
        index = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
        record = (answers or {}).get(str(index))
        if record is None:
            return "Only answers can be rated; this message is not one.", gr.skip()
        return store_feedback("up" if data.liked else "down", comment, record)

    on_like.__annotations__["data"] = gr.LikeData  # gradio reads the type, not its name

    def new_conversation():
        return [], render_evidence(None), "", {}, "", ""

    # ---- case studies: the explorer and "cases like mine" ----
    def explorer_state() -> dict[str, Any]:
        """Choices and contents for the case-study tabs, from the catalogue now served."""
        catalogue = advisor.case_catalogue.current
        any_ = [("Any", ANY)]
        if catalogue is None:
            return {
                "status": _escape(catalogue_problem(advisor) or ""), "reports": any_,
                "tags": {f: any_ for f in CASE_FILTERS}, "rows": [], "count": "", "names": [],
                "card": _problem_html(advisor), "like": {f: [] for f in LIKE_PICKERS},
            }
        return {
            "status": "",
            "reports": any_ + report_choices(catalogue),
            "tags": {f: any_ + tag_choices(catalogue, f) for f in CASE_FILTERS},
            "rows": case_rows(catalogue.cases),
            "count": f"All {len(catalogue)} case studies in the catalogue.",
            "names": [c.name for c in catalogue.cases],
            "card": render_case_card(None, {}),
            "like": {f: tag_choices(catalogue, f) for f in LIKE_PICKERS},
        }

    def explorer():
        """Updates that refill the case-study tabs (after the build, on page load)."""
        state = explorer_state()
        return (
            state["status"],
            gr.update(choices=state["reports"], value=ANY),
            *(gr.update(choices=state["tags"][f], value=ANY) for f in CASE_FILTERS),
            state["rows"],
            state["count"],
            gr.update(choices=state["names"], value=None),
            state["card"],
            *(gr.update(choices=state["like"][f], value=[]) for f in LIKE_PICKERS),
        )

    def on_filter(source, innovation_type, setting, mechanism):
        catalogue = advisor.case_catalogue.current
        if catalogue is None:
            return [], _escape(catalogue_problem(advisor) or "")
        try:
            cases = filter_cases(
                catalogue, source, innovation_type=innovation_type, setting=setting, mechanism=mechanism
            )
        except AdvisorError as exc:  # a value the catalogue no longer has (it was reloaded)
            return [], _escape(str(exc))
        count = f"{len(cases)} of {len(catalogue)} case studies match." if cases else (
            f"None of the {len(catalogue)} case studies matches all of these filters."
        )
        return case_rows(cases), count

    def on_case(name):
        catalogue = advisor.case_catalogue.current
        if catalogue is None:
            return _problem_html(advisor)
        case = catalogue.get(name) if name else None
        return render_case_card(case, catalogue.anchors(advisor.index) if case else {})

    def on_row(data: gr.SelectData):
        row = data.row_value or []
        return row[0] if row else gr.skip()

    on_row.__annotations__["data"] = gr.SelectData  # gradio reads the type, not its name

    def on_like_cases(text, innovation_types, settings_, organisation_types):
        catalogue = advisor.case_catalogue.current
        if catalogue is None:
            return _problem_html(advisor)
        picked = {
            f: list(v)
            for f, v in zip(LIKE_PICKERS, (innovation_types, settings_, organisation_types))
            if v
        }
        text = (text or "").strip()
        try:
            if text:
                text = clean_question(text, settings.max_question_chars)
            elif not picked:
                return _like_message(NO_LIKE_INPUT)
            matches = catalogue.like(text, k=5, tags=picked or None)
        except AdvisorError as exc:
            return _like_message(str(exc))
        return render_case_matches(matches, catalogue.anchors(advisor.index))

    def refresh():
        docs, cases = filter_choices()
        banner = "" if advisor.ready else builder.banner()
        return gr.update(choices=docs), gr.update(choices=cases), render_corpus(advisor), banner, *explorer()

    def poll_build():
        if advisor.ready:  # built: fill the filters, the library and the case studies, stop polling
            return (*refresh(), gr.Timer(active=False))
        return gr.skip(), gr.skip(), gr.skip(), builder.banner(), *[gr.skip()] * len(explored), gr.skip()

    with gr.Blocks(title="Spread Advisor", analytics_enabled=False, fill_height=True) as demo:
        answers = gr.State({})
        gr.Markdown(
            "## Spread Advisor\nEvidence-based answers on scaling and spreading innovation in the NHS, "
            "quoted from five public reports. Every sentence cites the passage it comes from."
        )
        build_status = gr.Markdown("" if advisor.ready else builder.banner(), elem_id="build-status")
        build_timer = gr.Timer(2, active=not advisor.ready)
        with gr.Tab("Ask"):
            with gr.Row(equal_height=False):
                with gr.Column(scale=3):
                    chatbot = gr.Chatbot(
                        label="Conversation",
                        show_label=False,  # the floating label covers the first line when scrolled
                        height=520,
                        sanitize_html=True,
                        render_markdown=True,
                        feedback_options=("Like", "Dislike"),
                        buttons=["copy", "copy_all"],  # no "share" (it posts to an outside site)
                        elem_id="chat",
                    )
                    searched = gr.Markdown(elem_id="searched")
                    with gr.Row():
                        question = gr.Textbox(
                            placeholder="Ask about scaling an innovation in the NHS...",
                            show_label=False,
                            scale=5,
                            elem_id="question",
                            autofocus=True,
                        )
                        send = gr.Button("Ask", variant="primary", scale=1, elem_id="send")
                    with gr.Row():
                        clear = gr.Button("New conversation", size="sm", elem_id="new-conversation")
                    with gr.Accordion("Filters: restrict to reports or case studies", open=False):
                        docs, cases = filter_choices()
                        doc_filter = gr.Dropdown(docs, multiselect=True, label="Reports", elem_id="doc-filter")
                        case_filter = gr.Dropdown(cases, multiselect=True, label="Case studies", elem_id="case-filter")
                    gr.Examples(EXAMPLES, inputs=[question], label="Try one of these")
                with gr.Column(scale=2):
                    gr.Markdown("### Evidence")
                    evidence = gr.HTML(render_evidence(None), elem_id="evidence")
                    with gr.Group():
                        comment = gr.Textbox(
                            label="Comment (optional), sent with your rating",
                            placeholder="What was missing or wrong? Rate with the thumbs under an answer, "
                            "or the buttons below for the latest one.",
                            lines=2,
                            elem_id="comment",
                        )
                        with gr.Row():
                            up = gr.Button("Helpful", size="sm", elem_id="feedback-up")
                            down = gr.Button("Not helpful", size="sm", elem_id="feedback-down")
                        feedback_status = gr.Markdown(elem_id="feedback-status")
        with gr.Tab("Library"):
            corpus = gr.HTML(render_corpus(advisor), elem_id="library")
        shown = explorer_state()  # API clients see these choices; the page's are refreshed on load
        with gr.Tab("Case studies", elem_id="cases-tab"):
            cases_status = gr.Markdown(shown["status"], elem_id="cases-status")
            with gr.Row(equal_height=False):
                with gr.Column(scale=5):
                    with gr.Group():
                        with gr.Row():
                            case_report = gr.Dropdown(
                                shown["reports"], value=ANY, label="Report", elem_id="cases-report", scale=3
                            )
                            case_type = gr.Dropdown(
                                shown["tags"]["innovation_type"], value=ANY, label="Innovation type",
                                elem_id="cases-type", scale=2,
                            )
                        with gr.Row():
                            case_setting = gr.Dropdown(
                                shown["tags"]["setting"], value=ANY, label="Setting", elem_id="cases-setting"
                            )
                            case_mechanism = gr.Dropdown(
                                shown["tags"]["mechanism"], value=ANY, label="Spread through",
                                elem_id="cases-mechanism",
                            )
                    case_count = gr.Markdown(shown["count"], elem_id="cases-count")
                    case_table = gr.Dataframe(
                        shown["rows"], headers=CASE_COLUMNS, interactive=False, wrap=True, max_height=640,
                        column_widths=["32%", "22%", "22%", "24%"], elem_id="cases-table",
                    )
                with gr.Column(scale=4):
                    case_picker = gr.Dropdown(
                        shown["names"], value=None, label="Open a case study", elem_id="case-picker"
                    )
                    case_card = gr.HTML(shown["card"], elem_id="case-card")
        with gr.Tab("Cases like mine", elem_id="like-tab"):
            gr.Markdown(
                "Describe your innovation and where it is used, and/or pick tags: the case studies most like "
                "it are ranked, with why they match, how they spread, where their context differs and the "
                "quotes behind each point."
            )
            like_text = gr.Textbox(
                label="Your innovation and its setting",
                placeholder="e.g. a digital tool for GP practices, made by a small company",
                lines=2, elem_id="like-text",
            )
            with gr.Row():
                like_type, like_setting, like_org = (
                    gr.Dropdown(
                        shown["like"][f], value=[], multiselect=True, label=FIELD_LABELS[f].capitalize(),
                        elem_id=f"like-{key}",
                    )
                    for f, key in zip(LIKE_PICKERS, ("type", "setting", "org"))
                )
            like_find = gr.Button("Find similar cases", variant="primary", elem_id="like-find")
            like_results = gr.HTML(f"<p class='hint'>{_escape(LIKE_HINT)}</p>", elem_id="like-results")

        inputs = [question, chatbot, doc_filter, case_filter, answers]
        outputs = [chatbot, evidence, searched, answers, question]
        send.click(respond, inputs, outputs, api_name="ask")
        question.submit(respond, inputs, outputs, api_name=False)
        clear.click(new_conversation, None, [chatbot, evidence, searched, answers, question, feedback_status],
                    api_name="new_conversation")
        rated = [feedback_status, comment]
        up.click(on_latest("up"), [comment, answers], rated, api_name="feedback_up")
        down.click(on_latest("down"), [comment, answers], rated, api_name="feedback_down")
        chatbot.like(on_like, [comment, answers], rated, api_name=False)
        chatbot.clear(new_conversation, None, [chatbot, evidence, searched, answers, question, feedback_status],
                      api_name=False)
        case_filters = [case_report, case_type, case_setting, case_mechanism]
        gr.on([f.input for f in case_filters], on_filter, case_filters, [case_table, case_count],
              api_name="filter_cases", show_progress="hidden")
        case_picker.change(on_case, [case_picker], [case_card], api_name="case_card", show_progress="hidden")
        case_table.select(on_row, None, [case_picker], api_name=False, show_progress="hidden")
        like_inputs = [like_text, like_type, like_setting, like_org]
        like_find.click(on_like_cases, like_inputs, [like_results], api_name="cases_like")
        like_text.submit(on_like_cases, like_inputs, [like_results], api_name=False)
        explored = [cases_status, *case_filters, case_table, case_count, case_picker, case_card,
                    like_type, like_setting, like_org]
        demo.load(refresh, None, [doc_filter, case_filter, corpus, build_status, *explored], api_name=False)
        polled = [doc_filter, case_filter, corpus, build_status, *explored, build_timer]
        build_timer.tick(poll_build, None, polled, api_name=False, show_progress="hidden")
    return demo


def serve(demo, settings: Settings, *, port: int | None = None, block: bool = True):
    """Queue and serve a built app on loopback (or settings.ui_host) with our theme."""
    import gradio as gr

    demo.queue(default_concurrency_limit=settings.ui_concurrency, max_size=64)
    theme = gr.themes.Soft(
        font=["system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"],
    )
    demo.launch(
        server_name=settings.ui_host,
        server_port=port or settings.ui_port,
        share=False,
        auth=parse_auth(settings.ui_auth),
        theme=theme,
        css=CSS,
        ssr_mode=False,
        footer_links=["api", "settings"],
        prevent_thread_lock=True,
        quiet=True,  # gradio's banner suggests share=True, which this app never uses
        inbrowser=False,
    )
    if block:
        log.info("Spread Advisor is open at %s (Ctrl+C to stop)", demo.local_url)
        demo.block_thread()
    return demo


def launch(settings: Settings | None = None, *, block: bool = True):
    """Build everything from settings and serve the page on settings.ui_host:ui_port."""
    force_offline()
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    from advisor.advisor import build_advisor

    settings = settings or Settings()
    parse_auth(settings.ui_auth)  # a malformed ADVISOR_UI_AUTH fails before anything loads
    advisor = build_advisor(settings)
    builder = IndexBuilder(advisor)
    builder.start()
    feedback = FeedbackStore(settings.database_url)
    demo = build_ui(advisor, settings, feedback, builder)
    if advisor.ready:
        advisor.embedder.encode(["warm up"])  # load the model before the first question
    return serve(demo, settings, block=block), advisor, builder
