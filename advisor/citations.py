"""Citations stage: a generated answer -> sentences, each checked against the passages it cites.

The answer is split into sentences and the `[n]` markers of each are parsed (`[1]`, `[1, 2]`,
`[1][2]`, `[1-3]`). Marker n names the n-th retrieved passage; a marker that names no passage
is removed from the text and reported. Each sentence is then labelled:

- `supported`: a cited passage says it (semantic similarity to the passage's best sentence,
  from the local embedding model, plus lexical overlap with the passage), and every number
  the sentence states occurs in the cited passages;
- `unsupported`: it cites passages, but none of them says it (a passage that gives the model
  instructions, a prompt injection, never counts as support);
- `uncited`: it cites nothing.

The policy (`flag` | `drop` | `fallback`) then decides what the user sees. The evaluation
reuses `CitationVerifier` to score any answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from advisor.sentences import split_sentences
from advisor.text import normalise_space, tokenize
from advisor.types import AnswerSentence, Citation, Fallback, Passage, Verdict

# [1] [1, 2] [1; 2] [1-3] [1–3] [ 2 ]; also "[Source 1]" which small models like to write
MARKER = re.compile(
    r"\[\s*(?:sources?\s*)?(\d{1,3}(?:\s*(?:[,;]|[-–])\s*(?:sources?\s*)?\d{1,3})*)\s*\]", re.IGNORECASE
)
_NUMBER = re.compile(r"(?<![\w.])(\d+(?:[.,]\d+)*)(?:\s*(%|per ?cent))?")
_DECLINE = re.compile(
    r"\b(sources?|reports?|documents?|passages?)\b[^.]{0,40}\b(do(es)? not|don't|doesn't|cannot|can't)\b"
    r"[^.]{0,20}\b(cover|address|answer|say|mention|contain|include|discuss)",
    re.IGNORECASE,
)
# A passage that talks to the model ("ignore previous instructions ...") is never evidence:
# an answer that obeys it must not come out "supported" by the very text that injected it.
_INJECTION = re.compile(
    r"\b(ignore|disregard|forget|override)\b[^.]{0,30}\b(previous|prior|above|earlier|all|any|your|these|system)\b"
    r"[^.]{0,15}\b(instructions?|rules|prompts?|guidelines)\b"
    r"|\byou are now\b|\b(system|developer) (prompt|message)\b|</?\s*sources?\s*>",
    re.IGNORECASE,
)
MAX_MARKER_RANGE = 10  # "[1-300]" is not a citation


def parse_markers(text: str) -> list[int]:
    """Every marker number in `text`, in order of appearance (duplicates kept)."""
    out: list[int] = []
    for match in MARKER.finditer(text):
        out.extend(_expand(match.group(1)))
    return out


def _expand(body: str) -> list[int]:
    numbers: list[int] = []
    for part in re.split(r"\s*[,;]\s*", body):
        bounds = [int(n) for n in re.findall(r"\d+", part)]
        if len(bounds) == 2 and re.search(r"[-–]", part):
            lo, hi = bounds
            if lo <= hi and hi - lo < MAX_MARKER_RANGE:
                numbers.extend(range(lo, hi + 1))
            else:
                numbers.extend(bounds)
        else:
            numbers.extend(bounds)
    return numbers


def strip_markers(text: str) -> str:
    """The text without any `[n]` markers (white space before a marker removed too)."""
    return normalise_space(re.sub(r"\s*" + MARKER.pattern, "", text, flags=re.IGNORECASE))


def declines(text: str) -> bool:
    """Does this sentence say the sources do not cover the question?"""
    return bool(_DECLINE.search(text))


def looks_like_injection(text: str) -> bool:
    """Does a passage contain instructions aimed at the model rather than the reader?"""
    return bool(_INJECTION.search(text))


def numbers_in(text: str) -> set[str]:
    """The numbers a text states, normalised ("1,200" -> "1200", "45 per cent" -> "45")."""
    return {m.group(1).replace(",", "").rstrip(".") for m in _NUMBER.finditer(text)}


@dataclass(frozen=True)
class SentenceCheck:
    """How well one answer sentence is backed by one cited passage."""

    marker: int
    similarity: float  # cosine to the passage's closest sentence (or closest two, joined)
    overlap: float  # share of the sentence's content words found in the passage
    score: float
    quote: str  # the passage's sentence closest to the answer sentence
    missing_numbers: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verification:
    """The verified answer: cleaned text, per-sentence verdicts, one citation per valid marker."""

    text: str
    sentences: tuple[AnswerSentence, ...]
    citations: tuple[Citation, ...]
    invalid_markers: tuple[int, ...] = ()
    checks: tuple[tuple[SentenceCheck, ...], ...] = field(default=(), repr=False)

    @property
    def supported_share(self) -> float:
        if not self.sentences:
            return 0.0
        return sum(s.verdict == "supported" for s in self.sentences) / len(self.sentences)

    def count(self, verdict: Verdict) -> int:
        return sum(s.verdict == verdict for s in self.sentences)

    @property
    def declined(self) -> bool:
        """The answer only says the sources do not cover the question (and cites nothing)."""
        return bool(self.sentences) and not self.citations and any(declines(s.text) for s in self.sentences)


@dataclass(frozen=True)
class PolicyResult:
    """What the policy lets through: text, sentences, and a reason when nothing usable remains."""

    text: str
    sentences: tuple[AnswerSentence, ...]
    citations: tuple[Citation, ...]
    fallback: Fallback | None = None
    notes: tuple[str, ...] = ()


class CitationVerifier:
    """Checks every sentence of an answer against the passages its markers cite.

    Support for one (sentence, passage) pair is `similarity + overlap_weight * overlap`, where
    similarity is the cosine between the sentence and the passage's closest sentence, or its
    closest two joined (local embedding model), and overlap the share of the sentence's
    content words that occur in the passage. A sentence is supported when its best cited passage scores at least `threshold`
    and no number it states is missing from its cited passages. The defaults were calibrated
    on the real corpus (see the README and tests/test_citations.py): quotes and paraphrases of
    a passage score well above, sentences taken from other passages or made up well below.
    """

    def __init__(
        self,
        embedder,
        sentence_index=None,
        threshold: float = 0.74,
        overlap_weight: float = 0.1,
        min_similarity: float = 0.5,
    ) -> None:
        self.embedder = embedder
        self.sentence_index = sentence_index  # advisor.store.SentenceIndex: precomputed vectors
        self.threshold = threshold
        self.overlap_weight = overlap_weight
        self.min_similarity = min_similarity

    def verify(self, answer_text: str, passages: list[Passage] | tuple[Passage, ...]) -> Verification:
        """Split, parse markers, drop the invalid ones and label every sentence."""
        by_marker = {i: p for i, p in enumerate(passages, start=1)}
        raw_sentences = _answer_sentences(answer_text)
        invalid: list[int] = []
        parsed: list[tuple[str, tuple[int, ...]]] = []
        for raw in raw_sentences:
            markers = list(dict.fromkeys(parse_markers(raw)))
            valid = tuple(m for m in markers if m in by_marker)
            invalid.extend(m for m in markers if m not in by_marker)
            text = strip_markers(raw)
            if not re.search(r"\w", text):
                # a stray marker on its own line belongs to the sentence before it
                if parsed and valid:
                    prev_text, prev_markers = parsed[-1]
                    parsed[-1] = (prev_text, tuple(dict.fromkeys(prev_markers + valid)))
                continue
            parsed.append((text, valid))

        vectors = self._encode([t for t, _ in parsed])
        sentences: list[AnswerSentence] = []
        checks: list[tuple[SentenceCheck, ...]] = []
        best_quote: dict[int, tuple[float, str]] = {}
        for (text, markers), vector in zip(parsed, vectors):
            sentence_checks = tuple(self.check(text, vector, m, by_marker[m]) for m in markers)
            checks.append(sentence_checks)
            if not markers:
                verdict: Verdict = "uncited"
            else:
                verdict = "supported" if self._supports(text, sentence_checks, by_marker) else "unsupported"
            sentences.append(AnswerSentence(text=text, markers=markers, verdict=verdict))
            for c in sentence_checks:
                if c.marker not in best_quote or c.score > best_quote[c.marker][0]:
                    best_quote[c.marker] = (c.score, c.quote)

        citations = tuple(
            Citation(marker=m, passage=by_marker[m], quote=best_quote[m][1]) for m in sorted(best_quote)
        )
        text = render_sentences(sentences)
        return Verification(
            text=text,
            sentences=tuple(sentences),
            citations=citations,
            invalid_markers=tuple(dict.fromkeys(invalid)),
            checks=tuple(checks),
        )

    def check(self, text: str, vector: np.ndarray, marker: int, passage: Passage) -> SentenceCheck:
        """How well `passage` backs the answer sentence `text` (with its unit vector)."""
        if looks_like_injection(passage.chunk.text):
            return SentenceCheck(marker, 0.0, 0.0, 0.0, "", ())
        quotes, quote_vectors = self._passage_sentences(passage)
        if len(quotes):
            sims = quote_vectors @ vector
            order = np.argsort(-sims)
            best = int(order[0])
            similarity, quote = float(sims[best]), quotes[best]
            if len(order) > 1:  # an answer sentence often joins two sentences of its source
                pair = quote_vectors[order[:2]].sum(axis=0)
                similarity = max(similarity, float(pair @ vector) / max(float(np.linalg.norm(pair)), 1e-9))
        else:
            similarity, quote = 0.0, ""
        words = set(tokenize(text))
        passage_words = set(tokenize(passage.chunk.text))
        overlap = len(words & passage_words) / len(words) if words else 0.0
        missing = tuple(sorted(numbers_in(text) - numbers_in(passage.chunk.text)))
        score = similarity + self.overlap_weight * overlap
        return SentenceCheck(marker, similarity, overlap, score, quote, missing)

    def _supports(self, text: str, checks: tuple[SentenceCheck, ...], by_marker: dict[int, Passage]) -> bool:
        best = max(checks, key=lambda c: c.score)
        if best.score < self.threshold or best.similarity < self.min_similarity:
            return False
        cited_text = " ".join(by_marker[c.marker].chunk.text for c in checks)
        return not (numbers_in(text) - numbers_in(cited_text))

    def _passage_sentences(self, passage: Passage) -> tuple[list[str], np.ndarray]:
        index = self.sentence_index
        rows = index.by_chunk.get(passage.chunk.id) if index is not None else None
        if rows is not None and len(rows):
            return [index.texts[r] for r in rows.tolist()], index.vectors[rows]
        cache = _PASSAGE_CACHE.get(passage.chunk.id)
        if cache is None:
            texts = split_sentences(passage.chunk.text) or [passage.chunk.text]
            cache = (texts, self._encode(texts))
            if len(_PASSAGE_CACHE) > 2048:
                _PASSAGE_CACHE.clear()
            _PASSAGE_CACHE[passage.chunk.id] = cache
        return cache

    def _encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 1), dtype=np.float32)
        return np.asarray(self.embedder.encode(texts), dtype=np.float32)


_PASSAGE_CACHE: dict[str, tuple[list[str], np.ndarray]] = {}


def _answer_sentences(text: str) -> list[str]:
    """Sentences of a generated answer; a marker after the full stop stays with its sentence."""
    text = re.sub(r"(?m)^\s*(?:[-*•]|\d+[.)])\s+", "", text)  # list bullets -> plain sentences
    # "claim. [1] Next" -> "claim [1]. Next": keep each marker on the sentence it follows
    moved = re.sub(r"([.!?])((?:\s*" + MARKER.pattern + r")+)", _move_markers, text, flags=re.IGNORECASE)
    return [s for s in split_sentences(moved) if s.strip()]


def _move_markers(match: re.Match) -> str:
    return f"{match.group(2)}{match.group(1)}"


def render_sentences(sentences: list[AnswerSentence] | tuple[AnswerSentence, ...]) -> str:
    """Answer text from sentences: each followed by its markers, as `claim [1][2].`"""
    parts = []
    for s in sentences:
        body = s.text
        if s.markers:
            tail = ""
            m = re.search(r"[.!?…]+[\"”’')\]]*$", body)
            if m:
                body, tail = body[: m.start()], body[m.start() :]
            body = body.rstrip() + " " + "".join(f"[{n}]" for n in s.markers) + tail
        parts.append(body)
    return " ".join(parts)


def apply_policy(verification: Verification, policy: str, min_supported: float) -> PolicyResult:
    """What the user is shown under `flag`, `drop` or `fallback` (fallback set = use extractive)."""
    v = verification
    notes: list[str] = []
    if v.invalid_markers:
        listed = ", ".join(f"[{m}]" for m in v.invalid_markers)
        notes.append(f"Removed citation {listed}: it pointed at no source.")
    n = len(v.sentences)
    supported = v.count("supported")
    if n == 0:
        return PolicyResult(
            "", (), (), fallback=Fallback("empty", "the model's reply had no sentences"), notes=tuple(notes)
        )
    if v.declined:
        return PolicyResult(v.text, v.sentences, v.citations, notes=tuple(notes))
    if supported == 0:
        return PolicyResult(
            v.text,
            v.sentences,
            v.citations,
            fallback=Fallback(
                "unsupported", f"none of the {n} sentences is supported by the sources it cites"
            ),
            notes=tuple(notes),
        )
    if policy == "fallback" and supported / n < min_supported:
        return PolicyResult(
            v.text,
            v.sentences,
            v.citations,
            fallback=Fallback(
                "unsupported", f"{supported} of {n} sentences supported (minimum {min_supported:.0%})"
            ),
            notes=tuple(notes),
        )
    if policy == "drop":
        kept = tuple(s for s in v.sentences if s.verdict == "supported")
        removed = n - len(kept)
        if removed:
            notes.append(
                f"Removed {removed} sentence{'s' if removed > 1 else ''} that the cited sources do not support."
            )
        markers = {m for s in kept for m in s.markers}
        citations = tuple(c for c in v.citations if c.marker in markers)
        return PolicyResult(render_sentences(kept), kept, citations, notes=tuple(notes))
    flagged = n - supported
    if flagged:
        notes.append(
            f"{flagged} of {n} sentences {'is' if flagged == 1 else 'are'} not backed by a cited source; "
            "they are marked."
        )
    return PolicyResult(v.text, v.sentences, v.citations, notes=tuple(notes))
