"""Choosing cases: by tags (`filter_cases`, `matching`), by filters, and "cases like mine" (`rank_like`).

"Cases like mine" ranks the cases against a description (and/or picked tags) by the tags they
share with it (`LIKE_WEIGHTS`) and by meaning (`CaseSimilarity`, cosine between the description
and each case's profile), keeps those scoring at least `MIN_LIKE_SCORE`, and cuts where
similarity falls off (`LIKE_MARGIN` below the best) rather than always showing five.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from advisor.cases.model import FIELD_LABELS, TAG_FIELDS, CaseMatch, CaseQuery, CaseStudy
from advisor.cases.vocabulary import Vocabulary
from advisor.errors import CatalogueError
from advisor.types import Filters
from advisor.vector_cache import cached_encode

# How much each kind of shared tag counts when ranking "cases like mine".
LIKE_WEIGHTS = {
    "innovation_type": 0.3,
    "setting": 0.25,
    "organisation_type": 0.15,
    "mechanism": 0.15,
    "barrier": 0.1,
    "evidence_type": 0.05,
}
MIN_LIKE_SCORE = 0.25  # below this a case is not "like" the description
# Cases more than this below the best score are not shown: a description close to one case gets
# that case, not four weaker ones to make up the number.
LIKE_MARGIN = 0.15  # tuned on dev (eval_sets/dev.jsonl, cases like mine)
_CLOSE_IN_MEANING = 0.35  # a cosine at which a case counts as similar in meaning on its own


# ---- by tags and filters -------------------------------------------------------------------
def filter_cases(
    cases: list[CaseStudy],
    vocabulary: Vocabulary,
    source: str | Iterable[str] | None = None,
    tags: dict[str, str | Iterable[str]] | None = None,
) -> list[CaseStudy]:
    """The cases having every given tag (a list of values for one field means all of them),
    from the given reports if `source` is given; CatalogueError for an unknown field or value."""
    sources = {source} if isinstance(source, str) else set(source or ())
    wanted: dict[str, set[str]] = {}
    for field_name, values in (tags or {}).items():
        if field_name not in TAG_FIELDS:
            raise CatalogueError(f"unknown tag field {field_name!r}; expected one of {list(TAG_FIELDS)}")
        values = {values} if isinstance(values, str) else set(values)
        unknown = [v for v in values if (field_name, v) not in vocabulary]
        if unknown:
            raise CatalogueError(
                f"unknown {field_name} {unknown[0]!r}; the vocabulary is: "
                f"{', '.join(vocabulary.values(field_name))}"
            )
        wanted[field_name] = values
    return [
        c
        for c in cases
        if (not sources or c.source in sources) and all(v <= set(c.values(f)) for f, v in wanted.items())
    ]


def matching(query: CaseQuery, cases: list[CaseStudy]) -> list[CaseStudy]:
    """The cases a list/count query selects: every tag of it, or one of each field's with `any_of`."""
    out = []
    for case in cases:
        checks = [
            (set(case.values(f)) & v) if query.any_of else (v <= set(case.values(f)))
            for f, v in query.tags.items()
        ]
        if all(checks):
            out.append(case)
    return out


def allowed(case: CaseStudy, filters: Filters | None) -> bool:
    """Whether the question's filters (reports, case studies) let a case through."""
    if not filters:
        return True
    in_sources = not filters.sources or case.source in filters.sources
    return in_sources and (not filters.case_studies or case.name in filters.case_studies)


# ---- cases like mine -------------------------------------------------------------------------
class CaseSimilarity:
    """Cosine between a description and each case's profile; zeros without an embedder.

    The profiles are encoded once, on first use (thread-safe).
    """

    def __init__(self, cases: list[CaseStudy], embedder: Any = None, cache_dir: Path | None = None) -> None:
        self.cases = cases
        self.embedder = embedder  # anything with .encode(list[str]) -> unit vectors; None = tags only
        self._vectors: np.ndarray | None = None
        self._lock = threading.Lock()
        self._row = {c.name: i for i, c in enumerate(cases)}
        self.cache_dir = cache_dir  # the data folder: the profiles' vectors are kept there

    def profile_vectors(self) -> np.ndarray:
        """Every case's profile embedded (once; kept in the data folder between starts)."""
        with self._lock:
            if self._vectors is None:
                self._vectors = cached_encode(
                    self.embedder, [profile(c) for c in self.cases], self.cache_dir, "case-profiles"
                )
            return self._vectors

    def __call__(self, text: str, pool: list[CaseStudy]) -> np.ndarray:
        if self.embedder is None:
            return np.zeros(len(pool))
        vectors = self.profile_vectors()
        query = self.embedder.encode([text])[0]
        return np.array([float(vectors[self._row[c.name]] @ query) for c in pool])


def profile(case: CaseStudy) -> str:
    """What "cases like mine" compares a description with: the case in a few sentences."""
    tags = "; ".join(
        f"{FIELD_LABELS[f]}: {', '.join(v)}" for f, v in case.tags.items() if v and f != "evidence_type"
    )
    return f"{case.name}. {case.description} {tags}."


def rank_like(
    pool: list[CaseStudy],
    vocabulary: Vocabulary,
    similarity: CaseSimilarity,
    text: str = "",
    k: int = 5,
    tags: dict[str, str | Iterable[str]] | None = None,
    margin: float | None = LIKE_MARGIN,
    min_score: float = MIN_LIKE_SCORE,
) -> list[CaseMatch]:
    """The cases of `pool` most like a description (and/or picked tags), best first; [] if none is.

    At most `k`, each scoring at least `min_score` and within `margin` of the best (None: no
    margin), so the ranking stops where similarity falls off.
    """
    wanted = {f: set(v) for f, v in vocabulary.parse_all(text).items()} if text else {}
    for field_name, values in (tags or {}).items():
        wanted.setdefault(field_name, set()).update([values] if isinstance(values, str) else values)
    sims = similarity(text, pool) if text.strip() else np.zeros(len(pool))
    total_weight = sum(LIKE_WEIGHTS[f] for f in wanted) or 1.0
    matches = []
    for case, sim in zip(pool, sims):
        shared = {f: sorted(set(case.values(f)) & v) for f, v in wanted.items()}
        tag_score = sum(LIKE_WEIGHTS[f] * len(s) / len(wanted[f]) for f, s in shared.items()) / total_weight
        meaning = float(np.clip((sim - 0.15) / 0.45, 0.0, 1.0))
        if wanted and text.strip():
            score = 0.65 * tag_score + 0.35 * meaning
        elif wanted:
            score = tag_score
        else:
            score = meaning
        if score < min_score or (not any(shared.values()) and sim < _CLOSE_IN_MEANING):
            continue
        matches.append(_match(case, score, float(sim), shared, wanted))
    matches.sort(key=lambda m: (-m.score, m.case.name))
    if matches and margin is not None:
        floor = matches[0].score - margin - 1e-9
        matches = [m for m in matches if m.score >= floor]
    return matches[:k]


def _match(
    case: CaseStudy, score: float, sim: float, shared: dict[str, list[str]], wanted: dict[str, set[str]]
) -> CaseMatch:
    """A ranked case with why it matched, where it differs and the evidence for both."""
    reasons, cited = [], []
    for f in TAG_FIELDS:
        for value in shared.get(f, ()):
            reasons.append(f"{FIELD_LABELS[f]}: {value}")
            cited.append(case.evidence_for(f, value)[0])
    if sim >= _CLOSE_IN_MEANING:
        reasons.append(f"similar in meaning to the description ({sim:.2f})")
    differences = []
    for f in ("innovation_type", "setting", "organisation_type"):
        if wanted.get(f) and not shared.get(f):
            theirs = case.values(f)
            if theirs:
                differences.append(
                    f"{FIELD_LABELS[f]}: {', '.join(theirs)} (not {', '.join(sorted(wanted[f]))})"
                )
                cited.append(case.evidence_for(f)[0])
            else:
                differences.append(f"{FIELD_LABELS[f]}: the report does not say")
    if not any(e.field == "description" for e in cited):
        cited.insert(0, case.evidence_for("description")[0])
    for e in case.evidence_for("mechanism")[:3]:
        if e not in cited:
            cited.append(e)
    return CaseMatch(case, round(score, 4), tuple(reasons), tuple(cited), tuple(differences))
