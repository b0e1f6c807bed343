"""Composing a catalogue answer: one cited row per case (or per field of a case), under a heading.

`list_answer` (which / how many cases have given tags), `compare_answer` (named cases side by
side) and `like_answer` ("cases like mine") build an `Answer` through `AnswerBuilder`, which
cites every quote a row rests on by the indexed chunk holding it and never shows a row whose
evidence cannot be cited.
"""

from __future__ import annotations

from dataclasses import replace

from advisor.cases.model import FIELD_LABELS, TAG_FIELDS, CaseMatch, CaseQuery, CaseStudy, Evidence
from advisor.types import Answer, AnswerSentence, CaseRow, Chunk, Citation, Passage, Route

NO_SIMILAR_CASE = (
    "None of the case studies in the catalogue is like that description: it shares no "
    "innovation type, setting, organisation or way of spreading with any of them, and no "
    "case is close to it in meaning. Try naming the kind of innovation and the setting."
)

# (case name, quote) -> the indexed chunk holding the quote
Anchors = dict[tuple[str, str], Chunk]


class AnswerBuilder:
    """Collects cited rows (one marker per quote) into an `Answer` routed through the catalogue."""

    def __init__(self, question: str, anchors: Anchors, route: Route = "catalogue") -> None:
        self.question = question
        self.anchors = anchors
        self.route = route
        self.rows: list[CaseRow] = []
        self.citations: list[Citation] = []
        self.passages: dict[str, Passage] = {}
        self.sentences: list[AnswerSentence] = []
        self._intro: int | None = None
        self.lines: list[str] = []

    def cite(self, case: CaseStudy, evidence: Evidence) -> int | None:
        """The marker for a quote (reused when cited twice), or None if no chunk holds it."""
        chunk = self.anchors.get((case.name, evidence.quote))
        if chunk is None:
            return None
        for c in self.citations:
            if c.passage.chunk.id == chunk.id and c.quote == evidence.quote:
                return c.marker
        if chunk.id not in self.passages:
            self.passages[chunk.id] = Passage(chunk, 1.0, len(self.passages) + 1)
        marker = len(self.citations) + 1
        self.citations.append(Citation(marker, self.passages[chunk.id], evidence.quote))
        return marker

    def intro(self, text: str, cases: list[CaseStudy]) -> None:
        self._intro = len(self.sentences)
        self.sentences.append(AnswerSentence(text, (), "supported"))
        self.lines.append(text)

    def row(self, text: str, cited: list[tuple[CaseStudy, Evidence]]) -> bool:
        """Add one row; its markers are the citations of the quotes it rests on."""
        markers = tuple(dict.fromkeys(m for m in (self.cite(c, e) for c, e in cited) if m is not None))
        if not markers:
            return False  # never show a row whose evidence cannot be cited
        self.sentences.append(AnswerSentence(text, markers, "supported"))
        self.rows.append(CaseRow(cited[0][0].name, text, markers))
        self.lines.append(f"- {text} " + "".join(f"[{m}]" for m in markers))
        return True

    def build(self, note: str, no_match: bool = False) -> Answer:
        sentences = list(self.sentences)
        heading = self.sentences[self._intro].text if self._intro is not None else ""
        if self._intro is not None:
            # the heading rests on the rows beneath it
            every = tuple(c.marker for c in self.citations)
            head = sentences[self._intro]
            sentences[self._intro] = replace(head, markers=every)
            self.lines[0] = head.text
        text = "\n".join(self.lines) if self.lines else sentences[0].text
        return Answer(
            question=self.question,
            text=text,
            citations=tuple(self.citations),
            passages=tuple(self.passages.values()),
            refused=False,
            query=self.question,
            sentences=tuple(s for s in sentences if s.markers) if not no_match else (),
            notes=(note,),
            route=self.route,
            heading=heading,
            rows=tuple(self.rows),
        )

    def refuse(self, text: str) -> Answer:
        return Answer(
            question=self.question,
            text=text,
            citations=(),
            passages=(),
            refused=True,
            query=self.question,
            notes=("Answered from the case-study catalogue.",),
            route=self.route,
        )


def list_answer(
    question: str, anchors: Anchors, query: CaseQuery, pool: list[CaseStudy], matched: list[CaseStudy]
) -> Answer:
    """The cases of `pool` a list or count query matched, one cited row each (or that none did)."""
    builder = AnswerBuilder(question, anchors)
    joiner = " or " if query.any_of else " and "
    criteria = " and ".join(f"{FIELD_LABELS[f]} {joiner.join(sorted(v))}" for f, v in query.tags.items())
    if not matched:
        builder.sentences.append(
            AnswerSentence(
                f"None of the {len(pool)} case studies in the catalogue is recorded with {criteria}.",
                (),
                "supported",
            )
        )
        return builder.build("Answered from the case-study catalogue: no case matched.", no_match=True)
    if query.tags:
        head = (
            f"{len(matched)} of the {len(pool)} case studies in the catalogue match {criteria}:"
            if query.kind == "count"
            else f"The case studies recorded with {criteria} ({len(matched)} of {len(pool)}):"
        )
    else:
        head = f"The catalogue holds {len(matched)} case studies:"
    builder.intro(head, matched)
    uncited = [case.name for case in matched if not _list_row(builder, case, query)]
    note = f"Answered from the case-study catalogue ({len(matched)} cases matched)."
    if uncited:
        note += (
            f" Not shown because the current index does not hold their quotes (run `advisor ingest`): "
            f"{', '.join(uncited)}."
        )
    return builder.build(note)


def compare_answer(question: str, anchors: Anchors, chosen: list[CaseStudy]) -> Answer:
    """The named cases side by side: each one's description, then a row per field."""
    builder = AnswerBuilder(question, anchors)
    builder.intro(f"How {_join([c.name for c in chosen])} compare, from the case-study catalogue:", chosen)
    for case in chosen:
        _compare_rows(builder, case)
    return builder.build(f"Compared {len(chosen)} case studies from the catalogue.")


def like_answer(
    question: str, anchors: Anchors, matches: list[CaseMatch], wanted: dict[str, frozenset[str]]
) -> Answer:
    """The cases most like a description (`wanted`: the tags it names), each with why, how it
    spread and where it differs, cited; a refusal (`NO_SIMILAR_CASE`) when none is like it."""
    builder = AnswerBuilder(question, anchors, "cases_like_mine")
    if not matches:
        return builder.refuse(NO_SIMILAR_CASE)
    named = "; ".join(f"{FIELD_LABELS[f]}: {', '.join(sorted(v))}" for f, v in wanted.items())
    builder.intro(
        f"The {len(matches)} case {'study' if len(matches) == 1 else 'studies'} most like yours"
        + (f" ({named})" if named else "")
        + ", best first:",
        [m.case for m in matches],
    )
    for match in matches:
        _like_rows(builder, match)
    return builder.build(f"Ranked {len(matches)} similar case studies from the catalogue.")


def _quote(e: Evidence, limit: int = 160) -> str:
    q = e.quote
    if q.startswith("“") and q.rstrip(".").endswith("”"):
        q = q[1:].rstrip(".")[:-1]  # a quotation in the report: show it once quoted
    q = q if len(q) <= limit else q[:limit].rsplit(" ", 1)[0] + " …"
    return f"“{q}”"


def _list_row(builder: AnswerBuilder, case: CaseStudy, query: CaseQuery) -> bool:
    cited: list[tuple[CaseStudy, Evidence]] = []
    parts = []
    for f, values in query.tags.items():
        for value in sorted(set(case.values(f)) & values):
            e = case.evidence_for(f, value)[0]
            cited.append((case, e))
            parts.append(f"{value}: {_quote(e)}")
    if not parts:
        e = case.evidence_for("description")[0]
        cited.append((case, e))
        parts.append(e.value)
    return builder.row(f"{case.name} ({case.report}) — " + "; ".join(parts), cited)


def _compare_rows(builder: AnswerBuilder, case: CaseStudy) -> None:
    description = case.evidence_for("description")[0]
    builder.row(f"{case.name} ({case.report}): {description.value}", [(case, description)])
    for f in (
        "innovation_type",
        "setting",
        "organisation_type",
        "scale",
        "mechanism",
        "evidence_type",
        "barrier",
    ):
        items = case.evidence_for(f)
        if not items:
            continue
        firsts = {}
        for e in items:
            firsts.setdefault(e.value, e)
        values = "; ".join(f"{e.value} ({e.year})" if e.year else e.value for e in firsts.values())
        builder.row(f"{case.name}, {FIELD_LABELS[f]}: {values}", [(case, e) for e in firsts.values()])


def _like_rows(builder: AnswerBuilder, match: CaseMatch) -> None:
    case = match.case
    description = case.evidence_for("description")[0]
    shared = [
        e
        for e in match.citations
        if e.field in TAG_FIELDS and f"{FIELD_LABELS[e.field]}: {e.value}" in match.reasons
    ]
    head = f"{case.name} ({case.report}, score {match.score:.2f}): {description.value}"
    if shared:
        head += " In common: " + ", ".join(f"{FIELD_LABELS[e.field]} {e.value}" for e in shared) + "."
    builder.row(head, [(case, description), *((case, e) for e in shared)])
    spread = case.evidence_for("mechanism")[:3]
    if spread:
        builder.row(
            f"How {case.name} spread: " + "; ".join(f"{e.value} — {_quote(e, 120)}" for e in spread),
            [(case, e) for e in spread],
        )
    diffs = [
        e
        for e in match.citations
        if e.field in ("innovation_type", "setting", "organisation_type") and e not in shared
    ]
    if diffs:
        builder.row(
            f"Where {case.name} differs: "
            + "; ".join(d for d in match.differences if "does not say" not in d),
            [(case, e) for e in diffs],
        )


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
