"""Saved conversations for the brief and `advisor history` tests: real `Answer.to_record()`s
citing the real corpus's reports (titles, publishers and years from its manifest), kept with
the real `ConversationStore`."""

from __future__ import annotations

from datetime import UTC, datetime

from advisor.corpus import Manifest
from advisor.history import Conversation, ConversationStore, Owner
from advisor.types import Answer, AnswerSentence, CaseRow, Chunk, Citation, Passage, chunk_id_for
from tests.conftest import CORPUS

NUFFIELD = "nuffield-2020-achieving-scale-and-spread.txt"  # the one report whose manifest has a URL
ODDS = "against-the-odds-2018-report.txt"
CONFED = "nhs-confederation-2023-scaling-innovation.txt"
NUFFIELD_URL = "http://www.nuffieldtrust.org.uk/research/achieving-scale-and-spread"

KARDIA_QUOTE = "KardiaMobile is marketed directly to patients, health care professionals and providers."
SCHWARTZ_QUOTE = "A Schwartz Round is a structured, facilitated, multi-disciplinary monthly meeting."
DAFNE_QUOTE = "DAFNE courses were delivered by trained diabetes specialist nurses and dietitians."
CONFED_QUOTE = "Spread depends on the capacity of the receiving system to adopt the innovation."

QUESTIONS = (
    "How did KardiaMobile reach patients?",
    "What helped DAFNE spread?",
    "Which case studies involved specialist nurses?",
    "What is the capital of France?",
)
REFUSAL = "The reports in the library do not cover this question, so I cannot answer it."
GENERATION = "gen-20250301T120000-abc123"


def passage(marker: int, source: str, section: str, page: int | None, quote: str, case: str = "") -> Passage:
    """A retrieved passage of a real report holding the quote, described as its manifest says."""
    info = Manifest.load(CORPUS).entries[source].info
    text = f"Earlier text of the section. {quote} Later text of the section."
    meta = {
        "source": source,
        "title": info.title,
        "publisher": info.publisher,
        "year": info.year,
        "section": section,
        "case_study": case,
        "page": page or "",
    }
    return Passage(Chunk(chunk_id_for(source, text), source, text, meta), score=0.8, rank=marker)


def cite(marker: int, source: str, section: str, page: int | None, quote: str, case: str = "") -> Citation:
    return Citation(marker, passage(marker, source, section, page, quote, case), quote)


def kardia_answer() -> Answer:
    """An extractive answer: two labelled quotes from the Nuffield report (it has a URL)."""
    citations = (
        cite(1, NUFFIELD, "KardiaMobile", 45, KARDIA_QUOTE, "KardiaMobile"),
        cite(
            2, NUFFIELD, "Schwartz Rounds", 52, SCHWARTZ_QUOTE, "Schwartz Rounds (Point of Care Foundation)"
        ),
    )
    sentences = (
        AnswerSentence(KARDIA_QUOTE, (1,), "supported", label="KardiaMobile"),
        AnswerSentence(SCHWARTZ_QUOTE, (2,), "supported", label="Schwartz Rounds"),
    )
    return Answer(
        question=QUESTIONS[0],
        text=f"- KardiaMobile: {KARDIA_QUOTE} [1]\n- Schwartz Rounds: {SCHWARTZ_QUOTE} [2]",
        citations=citations,
        passages=tuple(c.passage for c in citations),
        sentences=sentences,
    )


def dafne_answer() -> Answer:
    """An LLM's answer: one sentence citing a second report and, again, the KardiaMobile passage
    (the brief's reference 1, here marker 2); one sentence the verifier found unsupported."""
    citations = (
        cite(1, ODDS, "Dose Adjustment for Normal Eating (DAFNE)", 31, DAFNE_QUOTE, "DAFNE"),
        cite(2, NUFFIELD, "KardiaMobile", 45, KARDIA_QUOTE, "KardiaMobile"),
    )
    sentences = (
        AnswerSentence("Trained nurses and dietitians delivered the courses.", (1, 2), "supported"),
        AnswerSentence("It spread to every hospital in Europe.", (1,), "unsupported"),
    )
    return Answer(
        question=QUESTIONS[1],
        text="Trained nurses and dietitians delivered the courses. [1][2] It spread to every hospital in Europe. [1]",
        citations=citations,
        passages=tuple(c.passage for c in citations),
        sentences=sentences,
        backend="openai",
    )


def catalogue_answer() -> Answer:
    """A catalogue answer: a heading and one row per case study, one source without a page."""
    citations = (
        cite(1, ODDS, "Dose Adjustment for Normal Eating (DAFNE)", 31, DAFNE_QUOTE, "DAFNE"),
        cite(2, CONFED, "Practical considerations", None, CONFED_QUOTE),
    )
    heading = "2 case studies are recorded with specialist nurses:"
    rows = (CaseRow("DAFNE", "DAFNE: courses run by specialist nurses.", (1,)),
            CaseRow("System capacity", "The receiving system must have capacity.", (2,)))  # fmt: skip
    return Answer(
        question=QUESTIONS[2],
        text="\n".join([heading, *(f"- {r.text} [{r.markers[0]}]" for r in rows)]),
        citations=citations,
        passages=tuple(c.passage for c in citations),
        sentences=(AnswerSentence(heading, (1, 2)), *(AnswerSentence(r.text, r.markers) for r in rows)),
        route="catalogue",
        heading=heading,
        rows=rows,
        notes=("Answered from the case-study catalogue.",),
    )


def refused_answer() -> Answer:
    """A refusal: the closest passages were retrieved but nothing is cited."""
    closest = passage(1, CONFED, "Practical considerations", 3, CONFED_QUOTE)
    return Answer(question=QUESTIONS[3], text=REFUSAL, citations=(), passages=(closest,), refused=True)


def answers() -> list[Answer]:
    return [kardia_answer(), dafne_answer(), catalogue_answer(), refused_answer()]


def store_conversation(
    store: ConversationStore, owner: Owner | None = None, channel: str = "web", now: datetime | None = None
) -> Conversation:
    """The four answers above kept as one conversation, in order; returned as read back."""
    owner = owner or Owner.user("ann")
    now = now or datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    conversation_id = None
    for answer in answers():
        turn = store.add_turn(
            owner,
            answer.to_record(),
            conversation_id=conversation_id,
            channel=channel,
            generation=GENERATION,
            now=now,
        )
        conversation_id = turn.conversation_id
    return store.get(conversation_id, owner)
