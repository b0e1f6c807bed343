"""Reading a question as one across cases, by meaning: list, count, compare or "cases like mine".

Two steps, neither keyed to wordings:

1. **Does it ask for cases?** `CaseQuestionModel`, a logistic regression fit on the dev split
   over the embedding of the question's asking sentences (the ones ending in "?" when others
   set the scene) and their answer type (`advisor.question.answer_type`, one-hot) (`advisor/models/case_questions.json`, written by
   `advisor calibrate --what cases`), gives the chance that the question asks for a list of
   case studies (`list`), for cases like the asker's own (`like`), or for something else
   (`other`, answered from the guidance map or the passages).
2. **What must the cases have?** Every vocabulary value is embedded by its name, its
   description and its synonyms (`ValueMatcher`). The asking sentences of the question are cut
   into short spans (one to four words, not starting or ending on an English stop word); each
   value is measured by its closest span, by how close the whole asking text is to it and by how
   common its span's words are across questions (words of the question's frame, "examples",
   "case studies", are common). `ConditionModel`, a logistic regression fit on the dev rows that
   name the value they ask about, turns that into a probability; the likeliest values above its
   threshold (spans not overlapping, at most `max_conditions`, both chosen on dev by case F1)
   are the conditions.

A question asking for cases whose condition the catalogue does not record ("which ones had
Macmillan involved?") has no condition close enough and is left to the passages. A question
naming two or more catalogued cases is a comparison. "How many" (the question's answer type)
asks for a count.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from advisor import linear
from advisor.cases.model import CaseQuery, CaseStudy
from advisor.cases.vocabulary import Vocabulary
from advisor.question import answer_type, asking_text, stop_words
from advisor.vector_cache import cached_encode

log = logging.getLogger(__name__)

MODEL_FILE = Path(__file__).resolve().parent.parent / "models" / "case_questions.json"
ANSWER_TYPES = ("how", "list", "yes_no", "number", "who", "date", "amount")  # advisor.question.answer_type
LIST_TYPES = frozenset({"list", "yes_no", "number", "who"})  # the answer types of a request for cases
CLASSES = ("other", "list", "like", "advice")  # advice feeds the guidance route, not the catalogue
MAX_SPAN_WORDS = 4
# The settings `fit` writes beside the coefficients (these are the defaults before any fit).
DEFAULT_THRESHOLD = 0.5  # a question is read as asking for cases above this probability
# A question asking for cases asks for all of them when its asking text is this close to a
# description of the catalogue itself ("list all the case studies": 0.85, "what case studies are
# there?": 0.76, "which innovations failed to spread?": 0.31); set by hand on wordings of our own,
# and `advisor calibrate --what cases` lists the dev rows read this way (`read_as_every_case`).
ALL_CASES_TEXT = "all the case studies in the reports"
ALL_CASES_SIMILARITY = 0.75
# A span this close to it names the catalogue itself ("case studies": 0.74; "cases" 0.52,
# "published studies" 0.56): the question's frame, never a condition, nor any span inside it.
FRAME_SIMILARITY = 0.7

_SPAN_CACHE = 20000  # span embeddings remembered (about 30 MB at most)
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9&+'’-]*")


@dataclass(frozen=True)
class Condition:
    """A vocabulary value a question names: the span that names it and how closely."""

    field: str
    value: str
    span: str
    similarity: float
    text: str  # the value's text (name, description or synonym) the span is closest to


@dataclass(frozen=True)
class Reading:
    """How a question was read: class probabilities, the conditions found, the query (or None)."""

    probabilities: dict[str, float]
    conditions: tuple[Condition, ...] = ()
    names: tuple[str, ...] = ()
    query: CaseQuery | None = None
    reason: str = ""

    def to_record(self) -> dict[str, Any]:
        return {
            "probabilities": {k: round(v, 4) for k, v in self.probabilities.items()},
            "conditions": [
                {"field": c.field, "value": c.value, "span": c.span, "similarity": round(c.similarity, 4)}
                for c in self.conditions
            ],
            "names": list(self.names),
            "kind": self.query.kind if self.query else None,
            "reason": self.reason,
        }


@dataclass
class CaseQuestionModel:
    """The fitted decision "does this question ask for cases?" and the condition settings."""

    coef: np.ndarray  # (classes, dimension), on standardised features
    intercept: np.ndarray  # (classes,)
    mean: np.ndarray  # the standardisation fit on dev: (x - mean) / scale
    scale: np.ndarray
    classes: tuple[str, ...] = CLASSES
    threshold: float = DEFAULT_THRESHOLD
    conditions: ConditionModel | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path = MODEL_FILE) -> CaseQuestionModel:
        try:
            return cls.load_document(json.loads(Path(path).read_text(encoding="utf-8")))
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from exc

    @classmethod
    def load_document(cls, doc: dict[str, Any]) -> CaseQuestionModel:
        coef = np.asarray(doc["coefficients"], dtype=np.float32)
        intercept = np.asarray(doc["intercept"], dtype=np.float32)
        classes = tuple(doc["classes"])
        mean = np.asarray(doc["mean"], dtype=np.float32)
        scale = np.asarray(doc["scale"], dtype=np.float32)
        if not (np.all(np.isfinite(scale)) and np.all(scale > 0)):
            raise ValueError("the standardisation's scale must be positive")
        if mean.shape != (coef.shape[1],) or scale.shape != mean.shape:
            raise ValueError("the standardisation does not match the coefficients")
        if coef.ndim != 2 or coef.shape[0] != len(classes) or intercept.shape != (len(classes),):
            raise ValueError(f"coefficients do not match the classes {classes}")
        if set(classes) != set(CLASSES):
            raise ValueError(f"classes {classes}, expected {CLASSES}")
        return cls(
            coef,
            intercept,
            mean,
            scale,
            classes,
            float(doc["threshold"]),
            ConditionModel.load_document(doc["conditions"]) if doc.get("conditions") else None,
            {k: v for k, v in doc.items() if k not in {"coefficients", "intercept"}},
        )

    def probabilities(self, vector: np.ndarray) -> dict[str, float]:
        x = (np.asarray(vector, dtype=np.float32) - self.mean) / self.scale
        z = self.coef @ x + self.intercept
        if not np.all(np.isfinite(z)):
            raise ValueError("the question model gave a non-finite score")
        z = np.exp(z - z.max())
        p = z / z.sum()
        return {c: float(v) for c, v in zip(self.classes, p)}


def fit(
    vectors: np.ndarray,
    labels: Sequence[str],
    *,
    cs: Sequence[float] = (0.3, 1.0, 3.0, 10.0, 30.0),
    threshold: float = DEFAULT_THRESHOLD,
) -> tuple[dict[str, Any], np.ndarray]:
    """Fit the question model on dev rows (embedding of the asking sentences, class) and return
    its JSON document. The regularisation `C` is the one of `cs` with the best five-fold
    cross-validated mean recall over the classes; that cross-validation's accuracy and per-class
    recall are reported. Returns the document and that cross-validation's probabilities (rows x
    `CLASSES`), which other decisions fit on dev read without seeing their own row's fit."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(vectors, dtype=np.float64)
    y = np.array([CLASSES.index(label) for label in labels])
    scaler = StandardScaler().fit(x)
    xs = scaler.transform(x)
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    trials = []
    for c in cs:
        model = LogisticRegression(C=c, class_weight="balanced", max_iter=3000)
        oof = cross_val_predict(model, xs, y, cv=folds, method="predict_proba")
        chosen = _decide(oof, threshold)
        recall = float(np.mean([(chosen[y == i] == i).mean() for i in range(len(CLASSES)) if (y == i).any()]))
        trials.append((recall, -c, c, chosen, oof))
    _, _, c, chosen, oof = max(trials, key=lambda t: (t[0], t[1]))
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=3000).fit(xs, y)
    order = [list(model.classes_).index(i) for i in range(len(CLASSES))]
    per_class = {
        name: {
            "rows": int((y == i).sum()),
            "recall": round(float((chosen[y == i] == i).mean()) if (y == i).any() else 0.0, 4),
        }
        for i, name in enumerate(CLASSES)
    }
    return {
        "classes": list(CLASSES),
        "coefficients": [[round(float(v), 6) for v in model.coef_[i]] for i in order],
        "intercept": [round(float(model.intercept_[i]), 6) for i in order],
        "mean": [round(float(v), 6) for v in scaler.mean_],
        "scale": [float(v) for v in scaler.scale_],  # unrounded: a few dimensions barely vary
        "threshold": threshold,
        "c": c,
        "c_trials": {str(t[2]): round(t[0], 4) for t in trials},
        "cross_validated": {"accuracy": round(float((chosen == y).mean()), 4), "classes": per_class},
    }, oof


def question_features(asked: str, vector: np.ndarray) -> np.ndarray:
    """What the question model reads: the asking text's embedding and its answer type (one-hot:
    "how did innovators persuade late adopters?" is a how question, not a request for a list)."""
    kind = answer_type(asked)
    onehot = np.array([float(kind == t) for t in ANSWER_TYPES], dtype=np.float32)
    return np.concatenate([np.asarray(vector, dtype=np.float32), onehot])


def _decide(probabilities: np.ndarray, threshold: float) -> np.ndarray:
    """The class chosen per row: a case class (list, like) when its probability passes the
    threshold, else the likelier of other and advice."""
    best_case = 1 + probabilities[:, 1:3].argmax(axis=1)
    passes = probabilities[np.arange(len(probabilities)), best_case] >= threshold
    rest = np.where(probabilities[:, 3] > probabilities[:, 0], 3, 0)
    return np.where(passes, best_case, rest)


@dataclass(frozen=True)
class Candidate:
    """One vocabulary value measured against a question: the features the condition model reads."""

    field: str
    value: str
    span: str
    at: tuple[int, int]  # the span's word positions
    text: str  # the value's text the span is closest to
    features: dict[str, float]


CONDITION_FEATURES = (
    "span_similarity",
    "question_similarity",
    "description_similarity",
    "span_commonness",
    "span_words",
    "frame_similarity",  # how close the span is to the catalogue itself ("the case studies")
)


@dataclass
class ConditionModel:
    """Which vocabulary values a question asks about: a logistic regression over `Candidate`
    features, fit on the dev rows that say which value they ask about (`target`)."""

    coef: np.ndarray
    intercept: float
    mean: np.ndarray
    scale: np.ndarray
    threshold: float
    max_conditions: int
    word_share: dict[str, float]  # share of dev questions using each word (frame words are common)

    @classmethod
    def load_document(cls, doc: dict[str, Any]) -> ConditionModel:
        coef, intercept, mean, scale = linear.read_logistic(doc, CONDITION_FEATURES, "condition ")
        return cls(
            coef,
            intercept,
            mean,
            scale,
            float(doc["threshold"]),
            int(doc["max_conditions"]),
            {str(k): float(v) for k, v in doc["word_share"].items()},
        )

    def probability(self, candidate: Candidate) -> float:
        return linear.probability(
            candidate.features, CONDITION_FEATURES, self.coef, self.intercept, self.mean, self.scale
        )

    def choose(self, candidates: list[Candidate]) -> list[Condition]:
        """The likeliest values above the threshold, spans not overlapping, at most `max_conditions`."""
        scored = sorted(((self.probability(c), c) for c in candidates), key=lambda p: -p[0])
        chosen: list[Condition] = []
        taken: list[tuple[int, int]] = []
        for probability, c in scored:
            if probability < self.threshold or len(chosen) >= self.max_conditions:
                break
            a, b = c.at
            if any(a < y and x < b for x, y in taken):
                continue
            taken.append(c.at)
            chosen.append(Condition(c.field, c.value, c.span, probability, c.text))
        return chosen


class ValueMatcher:
    """The vocabulary's values embedded by name, description and synonyms; questions measured
    against every value (`candidates`)."""

    def __init__(self, vocabulary: Vocabulary, embedder: Any, cache_dir: Path | None = None) -> None:
        self.vocabulary = vocabulary
        self.embedder = embedder
        self.cache_dir = cache_dir  # the data folder: the vectors are kept there (advisor.vector_cache)
        self._lock = threading.Lock()
        self._texts: list[tuple[str, str, str]] | None = None  # (field, value, text)
        self._matrix: np.ndarray | None = None
        self._descriptions: dict[tuple[str, str], np.ndarray] = {}
        self._frame = np.zeros(0, dtype=np.float32)
        self._cache: dict[str, np.ndarray] = {}

    def warm(self) -> None:
        """Embed (or read the kept vectors of) the vocabulary's values now."""
        self._ensure()

    def _ensure(self) -> tuple[list[tuple[str, str, str]], np.ndarray]:
        with self._lock:
            if self._texts is None or self._matrix is None:
                texts: list[tuple[str, str, str]] = []
                for field_name, terms in self.vocabulary.terms.items():
                    for value, term in terms.items():
                        for text in dict.fromkeys((value, term.description, *term.synonyms, *term.generic)):
                            if text:
                                texts.append((field_name, value, text))
                matrix = cached_encode(
                    self.embedder, [t for _, _, t in texts] + [ALL_CASES_TEXT], self.cache_dir, "case-values"
                )
                matrix, self._frame = matrix[:-1], matrix[-1]
                self._descriptions = {
                    (f, v): matrix[i]
                    for i, (f, v, t) in enumerate(texts)
                    if t == self.vocabulary.terms[f][v].description
                }
                self._matrix, self._texts = matrix, texts
            return self._texts, self._matrix

    def _encode(self, spans: list[str]) -> np.ndarray:
        """Span embeddings, remembered (spans recur across questions: "case studies", "GP")."""
        missing = [s for s in dict.fromkeys(spans) if s not in self._cache]
        if missing:
            for s, v in zip(missing, self.embedder.encode(missing)):
                if len(self._cache) >= _SPAN_CACHE:
                    self._cache.pop(next(iter(self._cache)))
                self._cache[s] = v
        return np.stack([self._cache[s] for s in spans])

    def candidates(self, text: str, vector: np.ndarray, word_share: dict[str, float]) -> list[Candidate]:
        """Every value with its closest span of the text and how close the whole text is to it."""
        spans = candidate_spans(text)
        if not spans:
            return []
        texts, matrix = self._ensure()
        span_vectors = self._encode([s for s, _ in spans])
        span_sims = span_vectors @ matrix.T  # (spans, value texts)
        frame = span_vectors @ self._frame  # the question's frame: spans naming the case studies
        framed = {w for (_, (a, b)), f in zip(spans, frame) if f >= FRAME_SIMILARITY for w in range(a, b)}
        in_frame = np.array([any(w in framed for w in range(a, b)) for _, (a, b) in spans])
        span_sims[in_frame] = -1.0  # "case studies", and "studies" inside it
        text_sims = matrix @ np.asarray(vector, dtype=np.float32)  # (value texts,)
        best: dict[tuple[str, str], tuple[float, int, int]] = {}  # value -> (similarity, span, text)
        best_text: dict[tuple[str, str], float] = {}
        for j, (f, v, _) in enumerate(texts):
            i = int(span_sims[:, j].argmax())
            if (f, v) not in best or span_sims[i, j] > best[(f, v)][0]:
                best[(f, v)] = (float(span_sims[i, j]), i, j)
            best_text[(f, v)] = max(best_text.get((f, v), -1.0), float(text_sims[j]))
        out = []
        for (f, v), (similarity, i, j) in best.items():
            span, at = spans[i]
            words = [w.lower() for w in _TOKEN.findall(span)]
            out.append(
                Candidate(
                    f,
                    v,
                    span,
                    at,
                    texts[j][2],
                    {
                        "span_similarity": similarity,
                        "question_similarity": best_text[(f, v)],
                        "description_similarity": float(self._descriptions[(f, v)] @ vector),
                        "span_commonness": max(word_share.get(w, 0.0) for w in words),
                        "span_words": float(len(words)),
                        "frame_similarity": float(frame[i]),
                    },
                )
            )
        return out


def word_shares(questions: Sequence[str]) -> dict[str, float]:
    """The share of the questions using each word, for words in at least 2 % of them."""
    counts: dict[str, int] = {}
    for q in questions:
        for w in {w.lower() for w in _TOKEN.findall(q)}:
            counts[w] = counts.get(w, 0) + 1
    n = max(len(questions), 1)
    return {w: round(c / n, 4) for w, c in sorted(counts.items()) if c / n >= 0.02}


def fit_conditions(
    candidates: Sequence[list[Candidate]], targets: Sequence[set[tuple[str, str]]]
) -> dict[str, Any]:
    """Fit the condition model on dev rows: each row's candidates, labelled by its target values."""
    rows = [c.features for row in candidates for c in row]
    y = [int((c.field, c.value) in t) for row, t in zip(candidates, targets) for c in row]
    return {
        **linear.fit_logistic(rows, y, CONDITION_FEATURES),
        "pairs": {"rows": len(candidates), "positive": sum(y), "negative": len(y) - sum(y)},
    }


def candidate_spans(text: str) -> list[tuple[str, tuple[int, int]]]:
    """Every run of one to `MAX_SPAN_WORDS` words that neither starts nor ends on a stop word,
    with its (first, last + 1) word positions."""
    words = _TOKEN.findall(text)
    stops = stop_words()
    content = [w.lower().replace("’", "'") not in stops for w in words]
    spans = []
    for i in range(len(words)):
        if not content[i]:
            continue
        for n in range(1, MAX_SPAN_WORDS + 1):
            j = i + n
            if j > len(words):
                break
            if content[j - 1]:
                spans.append((" ".join(words[i:j]), (i, j)))
    return spans


class QuestionReader:
    """Reads questions across cases by meaning against the vocabulary and the cases' names."""

    def __init__(
        self,
        vocabulary: Vocabulary,
        cases: list[CaseStudy],
        embedder: Any = None,
        model: CaseQuestionModel | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        self.vocabulary = vocabulary
        self.embedder = embedder
        self.model = model
        self._cases = cases
        self._all_cases: np.ndarray | None = None
        self._names = _name_patterns(cases)
        self._values = ValueMatcher(vocabulary, embedder, cache_dir) if embedder is not None else None

    def warm(self) -> None:
        """Embed the vocabulary's values now (at ingest) rather than in the first question."""
        if self._values is not None:
            self._values.warm()

    def with_model(self, model: CaseQuestionModel | None) -> QuestionReader:
        """The same reader with another model, sharing the embedded vocabulary (for calibration)."""
        reader = QuestionReader(self.vocabulary, self._cases, None, model)
        reader.embedder, reader._values = self.embedder, self._values
        return reader

    @property
    def enabled(self) -> bool:
        """Whether questions can be read at all (the model and an embedder are both there)."""
        return self.model is not None and self._values is not None

    def read(self, question: str, vector: np.ndarray | None = None) -> CaseQuery | None:
        """What a question across cases asks, or None when it is not one."""
        return self.reading(question, vector).query

    def reading(self, question: str, vector: np.ndarray | None = None) -> Reading:
        """The whole reading: probabilities, conditions, names and the query (or why none)."""
        if not self.enabled:
            return Reading({}, reason="no question model or embedder: questions are not read as across cases")
        assert self.model is not None and self._values is not None
        asked = asking_text(question)
        whole = vector  # the whole question's embedding, when the caller has it
        if asked is not None or vector is None:
            vector = self.embedder.encode([asked or question])[0]
        p = self.model.probabilities(question_features(asked or question, vector))
        names = self._names_in(question)
        kind = max(("list", "like"), key=lambda k: p[k])
        if p[kind] < self.model.threshold:
            return Reading(p, names=names, reason="not a question across cases")
        if kind == "like":
            return Reading(p, names=names, query=CaseQuery("like", text=question), reason="cases like mine")
        if answer_type(asked or question) not in LIST_TYPES:
            # "How did innovators persuade late adopters?", "What funding helps innovations spread?":
            # the grammar asks how or what, not which cases (on dev 66 of 70 questions across cases
            # ask which / whether / how many / who; most other questions ask how or what)
            return Reading(p, names=names, reason="asks how or what, not which cases")
        compared = self._compared(question)
        if compared:
            return Reading(
                p, names=names, query=CaseQuery("compare", names=compared), reason="two named cases"
            )
        if names:
            return Reading(p, names=names, reason="a question about one named case")
        scene = asked is not None
        asked = asked or question
        if self._all_cases_similarity(vector) >= ALL_CASES_SIMILARITY:
            kind = "count" if answer_type(asked) == "number" else "list"
            return Reading(p, names=names, query=CaseQuery(kind), reason="asks for every case")
        if self.model.conditions is None:
            return Reading(
                p, reason="the question model has no condition model: run `advisor calibrate --what cases`"
            )
        shares = self.model.conditions.word_share
        conditions = self.model.conditions.choose(self._values.candidates(asked, vector, shares))
        if not conditions and scene:
            # "We're becoming a social enterprise. Did any of the cases go down that route?": the
            # asking sentence points back at the scene, so the whole question is read
            if whole is None:
                whole = self.embedder.encode([question])[0]
            conditions = self.model.conditions.choose(self._values.candidates(question, whole, shares))
        if not conditions:
            return Reading(p, reason="asks for cases by something the catalogue does not record")
        tags: dict[str, set[str]] = {}
        for c in conditions:
            tags.setdefault(c.field, set()).add(c.value)
        any_of = bool(re.search(r"\bor\b", asked, re.IGNORECASE)) and any(len(v) > 1 for v in tags.values())
        kind = "count" if answer_type(asked) == "number" else "list"
        query = CaseQuery(kind, tags={f: frozenset(v) for f, v in tags.items()}, any_of=any_of)
        return Reading(p, tuple(conditions), names, query, reason="asks for cases with recorded values")

    def _all_cases_similarity(self, vector: np.ndarray) -> float:
        if self._all_cases is None:
            self._all_cases = self.embedder.encode([ALL_CASES_TEXT])[0]
        return float(np.asarray(vector, dtype=np.float32) @ self._all_cases)

    def candidates(self, question: str, word_share: dict[str, float]) -> list[Candidate]:
        """Every vocabulary value measured against the question's asking text (for fitting)."""
        assert self._values is not None, "reading needs an embedder"
        asked = asking_text(question) or question
        return self._values.candidates(asked, self.embedder.encode([asked])[0], word_share)

    def _names_in(self, question: str) -> tuple[str, ...]:
        """The cases a question names (by name or alias), in order of pattern length."""
        found: list[str] = []
        for pattern, name in self._names:
            if pattern.search(question) and name not in found:
                found.append(name)
        return tuple(found)

    def _compared(self, question: str) -> tuple[str, ...]:
        """The cases a question names in at least two separate places: "Schwartz Rounds" names
        two catalogued cases with one phrase, which is one thing, not a comparison."""
        spans: dict[tuple[int, int], list[str]] = {}
        for pattern, name in self._names:
            for m in pattern.finditer(question):
                spans.setdefault(m.span(), []).append(name)
        separate = [s for s in spans if not any(o != s and o[0] <= s[0] and s[1] <= o[1] for o in spans)]
        if len(separate) < 2:
            return ()
        return tuple(dict.fromkeys(n for s in sorted(separate) for n in spans[s]))


def _name_patterns(cases: list[CaseStudy]) -> list[tuple[re.Pattern, str]]:
    """A pattern for every name and alias of the cases, longest first."""
    patterns = []
    for case in cases:
        for name in {case.name, *case.aliases}:
            patterns.append((re.compile(rf"(?<![\w-]){re.escape(name)}(?![\w-])", re.IGNORECASE), case.name))
    return sorted(patterns, key=lambda p: -len(p[0].pattern))


def load_model(path: Path | None = MODEL_FILE) -> CaseQuestionModel | None:
    """The fitted question model, or None (logged) when missing or unusable."""
    if path is None or not Path(path).is_file():
        log.warning("case question model %s not found: questions are not read as across cases", path)
        return None
    try:
        return CaseQuestionModel.load(Path(path))
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("case question model %s unusable (%s); run `advisor calibrate --what cases`", path, exc)
        return None
