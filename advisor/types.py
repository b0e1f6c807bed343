"""The typed data that crosses the advisor's stages.

corpus/ --load--> SourceDoc --clean/chunk--> Chunk --embed--> store
question --retrieve--> Passage[] --answer--> Answer(text, citations, sentences)

Every front end (CLI, web page, Slack, evaluation) renders an `Answer`; none of
them parses answer text. `Answer.to_record()` is the JSON contract.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

Verdict = Literal["supported", "unsupported", "uncited"]

# Which path produced an answer (apart from the backend that wrote its text): passages retrieved
# for the question, the case-study catalogue (a question across cases), cases like the user's, or
# the guidance map (an advice question a theme of the map fits).
Route = Literal["passages", "catalogue", "cases_like_mine", "guidance"]

# Why an LLM's reply was replaced by the extractive answer.
FallbackKind = Literal["not_covered", "unsupported", "empty", "llm_unavailable"]


def chunk_id_for(source: str, text: str) -> str:
    """A stable id: the same source and text always give the same id."""
    return hashlib.sha256(f"{source}\x00{text}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class DocumentInfo:
    """What the manifest says about one report."""

    source: str  # corpus file name, e.g. "nuffield-2020-achieving-scale-and-spread.txt"
    title: str
    publisher: str = ""
    year: int | None = None
    date: str = ""
    kind: str = ""
    url: str = ""


@dataclass(frozen=True)
class SourceDoc:
    """A loaded report: its raw text, split into pages where the source has them."""

    info: DocumentInfo
    text: str
    content_hash: str
    # (page number, char offset where that page starts in `text`); empty when unknown
    pages: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class Chunk:
    """A piece of a report small enough to embed, with everything a citation needs."""

    id: str
    doc_id: str  # the source file name
    text: str
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    # meta keys: source, title, publisher, year, section, section_path, case_study,
    # char_start, char_end, page (int or ""), chunk_index, doc_hash

    @property
    def source(self) -> str:
        return self.doc_id

    @property
    def title(self) -> str:
        return str(self.meta.get("title", ""))

    @property
    def section(self) -> str:
        return str(self.meta.get("section", ""))

    @property
    def case_study(self) -> str:
        return str(self.meta.get("case_study", "") or "")


@dataclass(frozen=True)
class Passage:
    """A chunk as retrieved for one query: its rank and score live here, not on the chunk."""

    chunk: Chunk
    score: float
    rank: int

    def to_record(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "chunk_id": self.chunk.id,
            "source": self.chunk.source,
            "title": self.chunk.title,
            "publisher": self.chunk.meta.get("publisher", ""),
            "year": self.chunk.meta.get("year") or None,
            "section": self.chunk.section,
            "case_study": self.chunk.case_study or None,
            "page": self.chunk.meta.get("page") or None,
            "score": round(float(self.score), 6),
            "text": self.chunk.text,
        }


@dataclass(frozen=True)
class Citation:
    """One marker in the answer, mapped to the passage and the sentence it quotes."""

    marker: int
    passage: Passage
    quote: str

    def to_record(self) -> dict[str, Any]:
        c = self.passage.chunk
        return {
            "marker": self.marker,
            "source": c.source,
            "title": c.title,
            "publisher": c.meta.get("publisher", ""),
            "year": c.meta.get("year") or None,
            "section": c.section,
            "case_study": c.case_study or None,
            "page": c.meta.get("page") or None,
            "chunk_id": c.id,
            "quote": self.quote,
        }


@dataclass(frozen=True)
class AnswerSentence:
    """One sentence of an answer, the markers it carries and whether its evidence supports it."""

    text: str
    markers: tuple[int, ...] = ()
    verdict: Verdict = "supported"
    label: str = ""  # what the quote is about: its case study or report, shown before it
    scores: dict[str, float] = field(default_factory=dict)  # why it was chosen (extractive answerer)

    def to_record(self) -> dict[str, Any]:
        record = {"text": self.text, "markers": list(self.markers), "verdict": self.verdict}
        if self.label:
            record["label"] = self.label
        if self.scores:
            record["scores"] = dict(self.scores)
        return record


@dataclass(frozen=True)
class Fallback:
    """Why the extractive answer replaced an LLM's: a kind to branch on and a detail to show."""

    kind: FallbackKind
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}" if self.detail else self.kind

    def to_record(self) -> dict[str, str]:
        return {"kind": self.kind, "detail": self.detail}


@dataclass(frozen=True)
class CaseRow:
    """One row of a catalogue answer: the case study it is about, its text and its markers."""

    case: str
    text: str
    markers: tuple[int, ...] = ()

    def to_record(self) -> dict[str, Any]:
        return {"case": self.case, "text": self.text, "markers": list(self.markers)}


@dataclass(frozen=True)
class Answer:
    """What the advisor says to one question, with the evidence for every sentence."""

    question: str
    text: str
    citations: tuple[Citation, ...]
    passages: tuple[Passage, ...]
    refused: bool = False
    query: str = ""  # the standalone query actually searched with
    sentences: tuple[AnswerSentence, ...] = ()
    backend: str = "extractive"  # what wrote the text: "extractive" or an LLM backend's name
    fallback: Fallback | None = None  # why the extractive answer replaced an LLM's, if it did
    route: Route = "passages"
    heading: str = ""  # a catalogue answer's first line, above its rows
    rows: tuple[CaseRow, ...] = ()  # a catalogue answer's rows, one case study each
    notes: tuple[str, ...] = ()  # user-visible notes (e.g. "the LLM was unavailable")
    timings_ms: dict[str, float] = field(default_factory=dict)
    analysis: dict[str, Any] | None = None  # how the question was read and the coverage decision

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Answer:
        """The answer back from its `to_record()` JSON (a saved conversation's turn): enough to
        show it again, its citations' passages taken from its passages by chunk id."""
        chunks: dict[str, Chunk] = {}
        passages = []
        for p in record.get("passages") or ():
            chunk = Chunk(
                id=str(p.get("chunk_id", "")),
                doc_id=str(p.get("source", "")),
                text=str(p.get("text", "")),
                meta={
                    "title": p.get("title", ""),
                    "publisher": p.get("publisher", ""),
                    "year": p.get("year") or "",
                    "section": p.get("section", ""),
                    "case_study": p.get("case_study") or "",
                    "page": p.get("page") or "",
                },
            )
            chunks[chunk.id] = chunk
            passages.append(Passage(chunk, float(p.get("score", 0.0)), int(p.get("rank", 0))))
        citations = []
        for c in record.get("citations") or ():
            known = chunks.get(str(c.get("chunk_id", "")))
            meta = {
                "title": c.get("title", ""),
                "publisher": c.get("publisher", ""),
                "year": c.get("year") or "",
                "section": c.get("section", ""),
                "case_study": c.get("case_study") or "",
                "page": c.get("page") or "",
            }
            chunk = Chunk(
                id=str(c.get("chunk_id", "")),
                doc_id=str(c.get("source", "")),
                text=known.text if known else str(c.get("quote", "")),
                meta=meta,
            )
            citations.append(
                Citation(int(c.get("marker", 0)), Passage(chunk, 0.0, 0), str(c.get("quote", "")))
            )
        fallback = record.get("fallback")
        return cls(
            question=str(record.get("question", "")),
            text=str(record.get("answer", "")),
            citations=tuple(citations),
            passages=tuple(passages),
            refused=bool(record.get("refused")),
            query=str(record.get("query", "")),
            sentences=tuple(
                AnswerSentence(
                    text=str(s.get("text", "")),
                    markers=tuple(int(m) for m in s.get("markers") or ()),
                    verdict=s.get("verdict", "supported"),
                    label=str(s.get("label", "")),
                    scores=dict(s.get("scores") or {}),
                )
                for s in record.get("sentences") or ()
            ),
            backend=str(record.get("backend", "extractive")),
            fallback=Fallback(fallback["kind"], fallback.get("detail", "")) if fallback else None,
            route=record.get("route", "passages"),
            heading=str(record.get("heading", "")),
            rows=tuple(
                CaseRow(
                    str(r.get("case", "")),
                    str(r.get("text", "")),
                    tuple(int(m) for m in r.get("markers") or ()),
                )
                for r in record.get("rows") or ()
            ),
            notes=tuple(str(n) for n in record.get("notes") or ()),
            analysis=record.get("analysis"),
        )

    def citation(self, marker: int) -> Citation | None:
        """The citation behind a marker, or None."""
        return next((c for c in self.citations if c.marker == marker), None)

    def to_record(self) -> dict[str, Any]:
        """The JSON contract shared by `advisor ask --json` and every later tool."""
        return {
            "question": self.question,
            "query": self.query or self.question,
            "answer": self.text,
            "refused": self.refused,
            "route": self.route,
            "backend": self.backend,
            "fallback": self.fallback.to_record() if self.fallback else None,
            "notes": list(self.notes),
            "sentences": [s.to_record() for s in self.sentences],
            "citations": [c.to_record() for c in self.citations],
            "passages": [p.to_record() for p in self.passages],
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
            **({"analysis": self.analysis} if self.analysis is not None else {}),
            **({"heading": self.heading, "rows": [r.to_record() for r in self.rows]} if self.rows else {}),
        }


@dataclass(frozen=True)
class Filters:
    """Restrict retrieval to some reports (corpus file names) and/or case studies."""

    sources: tuple[str, ...] = ()
    case_studies: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.sources or self.case_studies)

    def allows(self, chunk: Chunk) -> bool:
        if self.sources and chunk.source not in self.sources:
            return False
        return not (self.case_studies and chunk.case_study not in self.case_studies)
