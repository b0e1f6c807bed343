"""Answer stage (offline): passages -> a short answer made of quoted, cited evidence.

The extractive answerer needs no LLM. It works in stages:
1. **Read the question** (`advisor.question.analyse`): its parts, the answer type it expects,
   the case studies and other things it names, and its domain words told apart from everyday ones.
2. **Coverage decides refusal** (`advisor.coverage`): a logistic regression fit on the dev split
   over what a reader checks (how close the best evidence is, after removing what every passage of
   the reports shares; whether the question's domain words and named things occur in the evidence;
   whether a "how many" question finds a number). A question is refused only when no part of it is
   covered; an uncovered part is named. When the reports name what is asked about but not the
   detail asked for, the refusal says so.
3. **Select evidence that carries the answer**: sentences scored by similarity to the question and
   to each of its parts, with the shared "NHS / scale / spread" direction discounted (specificity),
   a number or year preferred when one is asked for, sentences about another case study than the
   one asked about set back, and distinct points kept (no near-duplicates, one point per part first).
4. **Evidence units**: a sentence that leans on the one before ("This...", "However...") brings it
   along, and a list's lead-in brings its items, so a quote stands alone; both stay verbatim.
5. **Compose**: a fact question gets the sentence holding the fact first and little else; an advice
   question gets points from distinct passages; every point is labelled with its case study or report.
Every sentence is a verbatim quote of the passage its marker names, so its citation is true by
construction. A passage that addresses the model ("ignore previous instructions...") is never
evidence, here as on the LLM path (`advisor.citations.looks_like_injection`, the one rule for
both): it is passed over whole, since the sentences around such an instruction are the
attacker's too.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np

from advisor.citations import looks_like_injection
from advisor.compose import (
    CLOSEST_TOPICS_TEXT,
    DETAIL_WORDS,
    DROPPED_PARTS_TEXT,
    MISSING_DETAIL_TEXT,
    NO_CONTENT_TEXT,
    NO_INDEX_TEXT,
    NOT_ENGLISH_TEXT,
    REFUSAL_TEXT,
    UNCOVERED_PART_TEXT,
    UNKNOWN_TERMS_TEXT,
    closest_topics,
    join_names,
    label_of,
    states,
)
from advisor.coverage import CoverageModel
from advisor.question import QuestionAnalysis, analyse, content_words
from advisor.retrieval import lexical_text
from advisor.store import SentenceIndex
from advisor.text import stem, tokenize
from advisor.types import Answer, AnswerSentence, Chunk, Citation, Passage
from advisor.units import END_PUNCT, LEAD_IN, evidence_unit

QUOTABLE_WORDS = (6, 90)  # sentences shorter or longer than this are never quoted


def evidence_passages(passages: Iterable[Passage]) -> list[Passage]:
    """The passages an answer may quote or be judged on: none that addresses the model."""
    return [p for p in passages if not looks_like_injection(p.chunk.text)]


@dataclass(frozen=True)
class ReportTerms:
    """The words of the indexed reports by stem: in how many passages each occurs, and each
    passage's own, so the refusal gate can tell whether the evidence mentions a question's words.
    A passage's words include its report's title and publisher and its case study and section."""

    passage_count: dict[str, int]  # stem -> number of passages containing it
    by_chunk: dict[str, frozenset[str]]  # chunk id -> the stems of that passage

    @classmethod
    def from_chunks(cls, chunks: Iterable[Chunk]) -> ReportTerms:
        """Count every passage's stems."""
        by_chunk = {
            c.id: frozenset(
                stem(t) for t in tokenize(f"{lexical_text(c)} {c.title} {c.meta.get('publisher', '')}")
            )
            for c in chunks
        }
        counts: Counter[str] = Counter()
        for stems in by_chunk.values():
            counts.update(stems)
        return cls(passage_count=dict(counts), by_chunk=by_chunk)


@dataclass(frozen=True)
class ScoredSentence:
    row: int
    passage: Passage
    text: str
    start: int
    similarity: float  # cosine with the question (raw)
    score: float  # the selection score
    specific: float = 0.0  # cosine after removing the reports' shared direction
    part: int = 0  # the part of the question it is closest to
    overlap: float = 0.0  # share of the query's words it holds
    part_similarity: tuple[float, ...] = ()  # cosine with each part of a question of several parts
    part_specific: tuple[float, ...] = ()
    asked_similarity: float | None = None  # cosine with the question less its names (`_refocus`)

    @property
    def scores(self) -> dict[str, float]:
        """Why it was chosen, as the JSON record shows it."""
        out = {
            "similarity": self.similarity,
            "specificity": self.specific,
            "overlap": self.overlap,
            "score": self.score,
        }
        if self.asked_similarity is not None:
            out["asked_similarity"] = self.asked_similarity
        return {k: round(v, 4) for k, v in out.items()}


class ExtractiveAnswerer:
    """Composes an answer from the passages' own sentences, each cited."""

    def __init__(
        self,
        sentences: SentenceIndex,
        max_sentences: int = 4,
        refusal_threshold: float = 0.45,
        unknown_terms_threshold: float = 0.62,
        terms: ReportTerms | None = None,
        rare_term_passages: int = 5,
        spread: float = 0.12,
        redundancy: float = 0.82,
        coverage: CoverageModel | None = None,
        case_names: dict[str, tuple[str, ...]] | None = None,
        encode=None,
        specificity_weight: float = 0.5,
        type_bonus: float = 0.05,
        other_case_penalty: float = 0.1,
        advice_points: int = 5,
        name_mask_weight: float = 1.0,
    ) -> None:
        self.sentences = sentences
        # Without a coverage model (or while one is being fitted) the older rule decides: the best
        # sentence below `refusal_threshold`, or below `unknown_terms_threshold` when two or more
        # of the question's rare words are missing from the evidence.
        self.unknown_terms_threshold = unknown_terms_threshold
        self.terms = terms
        self.rare_term_passages = rare_term_passages
        self.max_sentences = max_sentences
        self.refusal_threshold = refusal_threshold
        self.spread = spread  # keep sentences within this much of the best one
        self.redundancy = redundancy  # skip a sentence this similar to one already chosen
        self.coverage = coverage
        self.case_names = case_names or {}
        # texts -> unit vectors (the question's parts); None: the parts share the query vector
        self.encode = encode
        self.specificity_weight = specificity_weight
        self.type_bonus = type_bonus
        self.other_case_penalty = other_case_penalty
        self.advice_points = advice_points
        self.name_mask_weight = name_mask_weight  # share of closeness from the question without its names
        vectors = sentences.vectors
        if vectors.size:
            self._mean = vectors.mean(axis=0)
            centred = vectors - self._mean
            self._centred = centred / np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), 1e-9)
        else:
            self._mean = None
            self._centred = vectors

    # ---- the whole answer ---------------------------------------------------------------
    def analyse(self, question: str) -> QuestionAnalysis:
        """The question's parts, answer type, named things and domain words."""
        return analyse(question, self.case_names)

    def answer(self, question: str, query: str, query_vector: np.ndarray, passages: list[Passage]) -> Answer:
        """The cited extractive answer, or a refusal naming what the reports do cover."""
        analysis = self.analyse(question)
        base = {"question": question, "query": query, "passages": tuple(passages)}
        if not passages:
            return Answer(text=NO_INDEX_TEXT, citations=(), refused=True, **base)
        if analysis.language != "en":
            return Answer(
                text=NOT_ENGLISH_TEXT, citations=(), refused=True, analysis=analysis.to_record(), **base
            )
        if not content_words(question) and not analysis.named:
            return Answer(
                text=NO_CONTENT_TEXT, citations=(), refused=True, analysis=analysis.to_record(), **base
            )
        evidence = evidence_passages(passages)
        part_vectors = self._part_vectors(analysis, query, query_vector)
        candidates = self._score(query, query_vector, evidence, analysis, part_vectors)
        features, covered_parts = self._coverage(analysis, evidence, candidates, query_vector, part_vectors)
        record = {**analysis.to_record(), "coverage": features}
        if not any(covered_parts):
            return self._refusal(question, query, passages, evidence, analysis, features, record)
        notes = [
            UNCOVERED_PART_TEXT.format(part=part) for part, ok in zip(analysis.parts, covered_parts) if not ok
        ]
        if analysis.dropped_parts:
            notes.append(DROPPED_PARTS_TEXT.format(n=len(analysis.parts)))
        usable = self._refocus([c for c in candidates if covered_parts[c.part]], analysis)
        chosen = self._select(usable, analysis)
        return self._compose(analysis, chosen, base, record, notes)

    def covers(self, question: str, query: str, query_vector: np.ndarray, passages: list[Passage]) -> bool:
        """Whether the reports cover the question by the calibrated coverage decision (or the
        older floors without a model): what the catalogue and the guidance map must also pass."""
        if not passages:
            return False
        features = self.features(question, query, query_vector, passages)
        if self.coverage is None:
            return not self._legacy_refuses(question, evidence_passages(passages), features)
        return not self.coverage.refuses(features)

    def features(self, question: str, query: str, query_vector: np.ndarray, passages: list[Passage]) -> dict:
        """The coverage features of the whole question (what `advisor calibrate` fits the model on)."""
        analysis = self.analyse(question)
        evidence = evidence_passages(passages)
        part_vectors = self._part_vectors(analysis, query, query_vector)
        candidates = self._score(query, query_vector, evidence, analysis, part_vectors)
        return self.coverage_features(analysis, evidence, candidates, query_vector)

    # ---- coverage --------------------------------------------------------------------
    def coverage_features(
        self,
        analysis: QuestionAnalysis,
        passages: list[Passage],
        candidates: list[ScoredSentence],
        vector: np.ndarray | None = None,
        part: int | None = None,
    ) -> dict[str, float]:
        """What a reader checks to see whether the evidence covers the question (or one part)."""
        # a part is covered by any evidence close to it, not only by the sentences closest to it of all parts
        per_part = part is not None and all(c.part_similarity for c in candidates)
        closeness = {id(c): (c.part_similarity[part] if per_part else c.similarity) for c in candidates}
        sims = sorted(closeness.values(), reverse=True)
        specific = max(((c.part_specific[part] if per_part else c.specific) for c in candidates), default=0.0)
        found: set[str] = set()
        if self.terms is not None:
            for passage in passages:
                found |= self.terms.by_chunk.get(passage.chunk.id, frozenset())
        # the words of what is asked, not of the scene the asker sets ("An ICB wants...")
        domain = [w for w in analysis.asked_terms if not any(w in n.lower() for n in analysis.cases)]
        domain_stems = [stem(t) for w in domain for t in tokenize(w)]
        covered = [s in found for s in domain_stems]
        unknown = sum(self._passage_count_stem(s) == 0 for s in domain_stems) if self.terms else 0
        total = max(len(self.terms.by_chunk), 1) if self.terms else 1
        weights = {}
        for word in content_words(analysis.question):
            for t in tokenize(word):
                st = stem(t)
                weights[st] = np.log((total + 1) / (1 + (self._passage_count_stem(st) if self.terms else 0)))
        words_covered = (
            sum(w for st, w in weights.items() if st in found) / sum(weights.values()) if weights else 1.0
        )
        named = [n for n in analysis.named if n.lower() not in {c.lower() for c in analysis.cases}]
        evidence = " ".join(p.chunk.text.lower() for p in passages)
        named_found = [n.lower() in evidence for n in named] + [
            any(p.chunk.case_study == case for p in passages) for case in analysis.cases
        ]
        kind = analysis.part_types[part] if part is not None and analysis.part_types else analysis.answer_type
        close = sorted(candidates, key=lambda c: -closeness[id(c)])[:5]
        satisfied = (
            float(any(states(kind, c.text) for c in close)) if kind in ("number", "amount", "date") else 1.0
        )
        return {
            "best_similarity": round(sims[0] if sims else 0.0, 4),
            "top3_similarity": round(float(np.mean(sims[:3])) if sims else 0.0, 4),
            "best_specific": round(specific, 4),
            "standout": round(self._standout(vector, sims[0] if sims else 0.0), 4),
            "domain_covered": round(sum(covered) / len(covered), 4) if covered else 1.0,
            "words_covered": round(float(words_covered), 4),
            "domain_unknown": float(min(unknown, 3)),
            "named_covered": round(sum(named_found) / len(named_found), 4) if named_found else 1.0,
            "type_satisfied": satisfied,
        }

    def _standout(self, vector, best: float) -> float:
        """How many standard deviations the best evidence sentence sits above the reports' sentences."""
        vectors = self.sentences.vectors
        if vector is None or not vectors.size:
            return 0.0
        sims = vectors @ vector
        return float((best - sims.mean()) / max(float(sims.std()), 1e-6))

    def _coverage(
        self, analysis, passages, candidates, query_vector, part_vectors
    ) -> tuple[dict, list[bool]]:
        whole = self.coverage_features(analysis, passages, candidates, query_vector)
        if self.coverage is None:
            return whole, [not self._legacy_refuses(analysis.question, passages, whole)] * len(analysis.parts)
        whole["not_covered_probability"] = round(self.coverage.probability(whole), 4)
        if len(analysis.parts) == 1:
            return whole, [not self.coverage.refuses(whole)]
        covered = []
        whole_covered = not self.coverage.refuses(whole)
        for i, text in enumerate(analysis.parts):
            if len(content_words(text)) < 2:
                # "...and who endorsed it?": a part that leans on the rest is judged with the whole question
                covered.append(whole_covered)
                continue
            features = self.coverage_features(analysis, passages, candidates, part_vectors[i], part=i)
            covered.append(not self.coverage.refuses(features))
        whole["parts_covered"] = covered
        return whole, covered

    def _legacy_refuses(self, query: str, passages: list[Passage], features: dict) -> bool:
        unmatched = self.unmatched_terms(query, passages)
        threshold = self.unknown_terms_threshold if len(unmatched) >= 2 else self.refusal_threshold
        return features["best_similarity"] < threshold

    def _refusal(self, question, query, passages, evidence, analysis, features, record) -> Answer:
        """A refusal naming what the `evidence` does cover; the record keeps every retrieved passage."""
        text = REFUSAL_TEXT
        words = " ".join(p.chunk.text.lower() for p in evidence)
        named = [n for n in analysis.named if n.lower() in words]
        named += [
            c for c in analysis.cases if any(p.chunk.case_study == c for p in evidence) and c not in named
        ]
        detail = DETAIL_WORDS.get(analysis.answer_type)
        if named and detail and features.get("named_covered", 0) >= 1.0:
            text = MISSING_DETAIL_TEXT.format(things=join_names(named[:3]), detail=detail)
        elif self.terms is not None:
            unknown = [w for w in analysis.domain_terms if self._passage_count(w) == 0]
            if unknown:
                text += UNKNOWN_TERMS_TEXT.format(terms=", ".join(unknown))
        topics = closest_topics(evidence)
        if topics:
            text += CLOSEST_TOPICS_TEXT.format(topics="; ".join(topics))
        return Answer(
            question=question,
            query=query,
            text=text,
            citations=(),
            passages=tuple(passages),
            refused=True,
            analysis=record,
        )

    def unmatched_terms(self, query: str, passages: list[Passage]) -> list[str]:
        """The query's rare or unknown words that none of the passages contains."""
        if self.terms is None:
            return []
        found: set[str] = set()
        for passage in passages:
            found |= self.terms.by_chunk.get(passage.chunk.id, frozenset())
        return list(
            dict.fromkeys(
                t
                for t in tokenize(query)
                if stem(t) not in found and self._passage_count(t) <= self.rare_term_passages
            )
        )

    def _passage_count(self, term: str) -> int:
        assert self.terms is not None
        return max((self.terms.passage_count.get(stem(t), 0) for t in tokenize(term)), default=0)

    def _passage_count_stem(self, s: str) -> int:
        assert self.terms is not None
        return self.terms.passage_count.get(s, 0)

    # ---- scoring and selection ---------------------------------------------------------
    def _part_vectors(
        self, analysis: QuestionAnalysis, query: str, query_vector: np.ndarray
    ) -> list[np.ndarray]:
        if len(analysis.parts) == 1 or self.encode is None:
            return [query_vector] * len(analysis.parts)
        return [np.asarray(v, dtype=np.float32) for v in self.encode(list(analysis.parts))]

    def _refocus(self, candidates: list[ScoredSentence], analysis: QuestionAnalysis) -> list[ScoredSentence]:
        """For a question about a named case, score sentences also by the question without the name.

        Every sentence of "KardiaMobile" passages is close to "...KardiaMobile...": the one that
        introduces the case wins on the name alone. The question with its names taken out says
        what is asked about the case; `name_mask_weight` of the closeness comes from it.
        """
        if not analysis.cases or self.encode is None or not self.name_mask_weight or not candidates:
            return candidates
        masked = analysis.question
        for name in sorted(analysis.named, key=len, reverse=True):
            masked = re.sub(rf"(?<![\w-]){re.escape(name)}(?![\w-])", " ", masked, flags=re.IGNORECASE)
        if not content_words(masked):
            return candidates  # the question is only the name: the introduction is the answer
        vector = np.asarray(self.encode([masked])[0], dtype=np.float32)
        sims = self.sentences.vectors[[c.row for c in candidates]] @ vector
        w, out = self.name_mask_weight, []
        for cand, sim in zip(candidates, sims.tolist()):
            closeness = (1 - w) * cand.similarity + w * sim
            score = cand.score + (1 - self.specificity_weight) * (closeness - cand.similarity)
            out.append(replace(cand, score=score, asked_similarity=sim))
        return out

    def _centre(self, vector: np.ndarray) -> np.ndarray:
        if self._mean is None:
            return vector
        centred = vector - self._mean
        return centred / max(float(np.linalg.norm(centred)), 1e-9)

    def _score(
        self,
        query: str,
        query_vector: np.ndarray,
        passages: list[Passage],
        analysis: QuestionAnalysis,
        part_vectors: list[np.ndarray],
    ) -> list[ScoredSentence]:
        index = self.sentences
        query_terms = set(tokenize(query))
        out: list[ScoredSentence] = []
        n = max(len(passages), 1)
        centred_query = self._centre(query_vector)
        centred_parts = [self._centre(v) for v in part_vectors]
        w = self.specificity_weight
        wants_number = analysis.answer_type in ("number", "amount", "date")
        for passage in passages:
            rows = index.by_chunk.get(passage.chunk.id)
            if rows is None or len(rows) == 0:
                continue
            sims = index.vectors[rows] @ query_vector
            specific = self._centred[rows] @ centred_query
            by_part = (
                np.stack([index.vectors[rows] @ v for v in part_vectors]) if len(part_vectors) > 1 else None
            )
            specific_parts = (
                np.stack([self._centred[rows] @ v for v in centred_parts]) if len(part_vectors) > 1 else None
            )
            other_case = bool(analysis.cases) and passage.chunk.case_study not in analysis.cases
            for j, (row, sim) in enumerate(zip(rows.tolist(), sims.tolist())):
                text = index.texts[row]
                words = text.split()
                if not QUOTABLE_WORDS[0] <= len(words) <= QUOTABLE_WORDS[1]:
                    continue
                part = int(np.argmax(by_part[:, j])) if by_part is not None else 0
                closeness = float(max(sim, by_part[part, j])) if by_part is not None else float(sim)
                spec = (
                    float(max(specific[j], specific_parts[part, j]))
                    if specific_parts is not None
                    else float(specific[j])
                )
                overlap = len(query_terms & set(tokenize(text))) / len(query_terms) if query_terms else 0.0
                score = (1 - w) * closeness + w * spec + 0.08 * overlap + 0.03 * (n - passage.rank + 1) / n
                if wants_number and states(analysis.answer_type, text):
                    score += self.type_bonus
                if other_case:
                    score -= self.other_case_penalty
                if not END_PUNCT.search(text) and not LEAD_IN.search(text):
                    score -= 0.05  # a fragment (a heading or cut bullet) reads badly as an answer
                out.append(
                    ScoredSentence(
                        row,
                        passage,
                        text,
                        int(index.starts[row]),
                        float(closeness),
                        score,
                        spec,
                        part,
                        overlap,
                        tuple(by_part[:, j].tolist()) if by_part is not None else (),
                        tuple(specific_parts[:, j].tolist()) if specific_parts is not None else (),
                    )
                )
        return out

    def _select(self, candidates: list[ScoredSentence], analysis: QuestionAnalysis) -> list[ScoredSentence]:
        if not candidates:
            return []
        vectors = self.sentences.vectors
        best = max(c.similarity for c in candidates)
        floor = best - self.spread
        advice = analysis.answer_type in ("how", "list", "yes_no")
        limit = (
            self.advice_points
            if advice
            else (2 if analysis.answer_type in ("number", "amount", "date", "who") else self.max_sentences)
        )
        limit = max(limit, len(analysis.parts))
        ranked = sorted(candidates, key=lambda c: -c.score)
        chosen: list[ScoredSentence] = []

        def fits(cand: ScoredSentence) -> bool:
            if cand.similarity < floor:
                return False
            if advice and any(c.passage.chunk.id == cand.passage.chunk.id for c in chosen):
                return False  # advice points come from distinct passages
            return not any(
                cand.text == c.text or float(vectors[cand.row] @ vectors[c.row]) > self.redundancy
                for c in chosen
            )

        for i in range(len(analysis.parts)):  # every part first gets its best sentence
            first = next(
                (c for c in ranked if c.part == i and c.similarity >= floor - self.spread and fits(c)), None
            )
            if first is not None and len(analysis.parts) > 1:
                chosen.append(first)
        for cand in ranked:
            if len(chosen) >= limit:
                break
            if cand not in chosen and fits(cand):
                chosen.append(cand)
        return chosen

    # ---- composition ----------------------------------------------------------------
    def _compose(self, analysis, chosen, base, record, notes) -> Answer:
        if analysis.answer_type in ("number", "amount", "date", "who"):
            # the sentence holding the fact first: one that states a number / amount / year, then by score
            chosen.sort(key=lambda c: (not states(analysis.answer_type, c.text), -c.score))
        else:
            chosen.sort(key=lambda c: (c.part, -c.score))
        citations, sentences, parts, seen = [], [], [], set()
        for cand in chosen:
            text = evidence_unit(cand.passage.chunk.text, cand.start, cand.text)
            if text in seen:
                continue
            seen.add(text)
            marker = len(citations) + 1
            label = label_of(cand.passage)
            citations.append(Citation(marker=marker, passage=cand.passage, quote=text))
            sentences.append(
                AnswerSentence(
                    text=text, markers=(marker,), verdict="supported", label=label, scores=cand.scores
                )
            )
            parts.append(f"{label}: {text} [{marker}]" if label else f"{text} [{marker}]")
        return Answer(
            text="\n".join(f"- {p}" for p in parts) if len(parts) > 1 else "".join(parts),
            citations=tuple(citations),
            refused=False,
            sentences=tuple(sentences),
            notes=tuple(notes),
            analysis=record,
            **base,
        )
