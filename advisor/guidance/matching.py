"""Matching a question to the guidance map by meaning, and the route decision.

`GuidanceMatcher` embeds, once per map, every point (its paraphrase and its quote) and every
theme (title with statement, and each synonym); the vectors are kept under the data folder
(advisor.vector_cache) so a new process reads them instead of encoding again. A question is scored against them:

- a point's score is its closest text to the question;
- a theme's score is the mean of its best two point scores, or its statement or synonym score
  when higher.

Who is asking and at what stage are read the same way, against short descriptions of the
audiences and stages (`AUDIENCE_TEXTS`, `STAGE_TEXTS`, written from the reports' own
definitions); a point for that audience or stage is preferred only when the question is clearly
closer to one of them than to the others (`SIDE_MARGIN`).

`RouteModel` decides whether the map answers: a logistic regression over the match's scores and
the question model's chance that the question asks for advice (`advisor.cases.reading`), fit on dev (`advisor calibrate --what guidance`), with the threshold
chosen there. Without a fitted model the map never answers and every question goes to passages.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from advisor import linear
from advisor.guidance.model import AUDIENCES, STAGES, GuidanceMap, GuidancePoint, Theme
from advisor.vector_cache import cached_encode

log = logging.getLogger(__name__)

MODEL_FILE = Path(__file__).resolve().parent.parent / "models" / "guidance_route.json"

AUDIENCE_TEXTS = {
    "innovators": "I developed an innovation and want the NHS to take it up: a founder, a start-up or "
    "company, or a clinician with an idea of my own to spread.",
    "adopters": "We are an NHS trust, practice or service deciding whether and how to take up and "
    "implement an innovation developed elsewhere.",
    "commissioners": "I commission or plan services for a population: an integrated care board or "
    "system, a commissioner or a system leader deciding what to fund.",
    "policy-makers": "I work on national policy: government, NHS England or a national programme "
    "deciding how the system should support spread.",
}
STAGE_TEXTS = {
    "before-pilot": "We have an idea or early product and have not yet tested it anywhere in the NHS.",
    "pilot-to-early-adoption": "We have run a pilot and are trying to win the first few adopting sites.",
    "scaling": "It works in several places and we want to spread it nationally, to many more organisations.",
    "sustaining": "It is established but the start-up funding is ending and we need to keep it going.",
}
SIDE_MARGIN = 0.05  # how much closer to one audience (or stage) than to the next, to prefer its points
SIDE_BONUS = 0.03  # added to the score of a point for the audience or stage the question names
FEATURES = ("advice_probability", "best_point", "second_point", "best_theme", "theme_margin")


@dataclass(frozen=True)
class ScoredPoint:
    point: GuidancePoint
    theme: Theme
    score: float


@dataclass(frozen=True)
class GuidanceMatch:
    """The themes closest to a question, best first, and what the route decision reads."""

    themes: tuple[tuple[Theme, float], ...]
    points: tuple[ScoredPoint, ...]  # best first, from every theme
    audience: str | None = None
    stage: str | None = None
    features: dict[str, float] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        return {
            "themes": [{"theme": t.id, "score": round(s, 4)} for t, s in self.themes[:3]],
            "audience": self.audience,
            "stage": self.stage,
            "features": {k: round(v, 4) for k, v in self.features.items()},
        }


class GuidanceMatcher:
    """The map's points and themes embedded, and questions scored against them."""

    def __init__(self, guidance_map: GuidanceMap, embedder: Any, cache_dir: Path | None = None) -> None:
        self.map = guidance_map
        self.embedder = embedder
        self.cache_dir = cache_dir  # the data folder: the vectors are kept there (advisor.vector_cache)
        self._lock = threading.Lock()
        self._ready = False

    def warm(self) -> None:
        """Embed (or read the kept vectors of) the map's texts now."""
        self._ensure()

    def _ensure(self) -> None:
        with self._lock:
            if self._ready:
                return
            points = [(t, p) for t in self.map.themes for p in t.points]
            texts = [p.point for _, p in points] + [p.quote for _, p in points]
            theme_texts = [(i, f"{t.title}. {t.statement}") for i, t in enumerate(self.map.themes)]
            theme_texts += [(i, s) for i, t in enumerate(self.map.themes) for s in t.synonyms]
            sides = [*AUDIENCE_TEXTS.values(), *STAGE_TEXTS.values()]
            vectors = cached_encode(
                self.embedder, texts + [t for _, t in theme_texts] + sides, self.cache_dir, "guidance"
            )
            n = len(points)
            self._points = points
            self._point_vectors = np.stack([vectors[:n], vectors[n : 2 * n]])  # (2, points, dim)
            self._theme_of_point = np.array([self.map.themes.index(t) for t, _ in points])
            m = len(theme_texts)
            self._theme_texts = np.array([i for i, _ in theme_texts])
            self._theme_vectors = vectors[2 * n : 2 * n + m]
            self._side_vectors = vectors[2 * n + m :]
            self._ready = True

    def match(self, vector: np.ndarray, advice_probability: float = 0.0) -> GuidanceMatch:
        """The question (its embedding) against every point and theme; `advice_probability`, the
        question model's chance that it asks for advice, is carried into the route features."""
        self._ensure()
        v = np.asarray(vector, dtype=np.float32)
        point_scores = (self._point_vectors @ v).max(axis=0)  # closest of paraphrase and quote
        text_scores = self._theme_vectors @ v
        side = self._side_vectors @ v
        audience = _clear_best(AUDIENCES, side[: len(AUDIENCES)])
        stage = _clear_best(STAGES, side[len(AUDIENCES) :])
        themes = []
        for i, theme in enumerate(self.map.themes):
            own = np.sort(point_scores[self._theme_of_point == i])[::-1]
            by_points = float(own[:2].mean()) if len(own) else 0.0
            by_text = (
                float(text_scores[self._theme_texts == i].max()) if (self._theme_texts == i).any() else 0.0
            )
            themes.append((theme, max(by_points, by_text)))
        themes.sort(key=lambda t: -t[1])
        scored = []
        for (theme, point), score in zip(self._points, point_scores):
            bonus = SIDE_BONUS * ((audience in point.audiences) + (stage in point.stages))
            scored.append(ScoredPoint(point, theme, float(score) + bonus))
        scored.sort(key=lambda p: -p.score)
        raw = np.sort(point_scores)[::-1]
        features = {
            "advice_probability": float(advice_probability),
            "best_point": float(raw[0]) if len(raw) else 0.0,
            "second_point": float(raw[1]) if len(raw) > 1 else 0.0,
            "best_theme": themes[0][1] if themes else 0.0,
            "theme_margin": themes[0][1] - themes[1][1] if len(themes) > 1 else 0.0,
        }
        return GuidanceMatch(tuple(themes), tuple(scored), audience, stage, features)


def _clear_best(names: Sequence[str], scores: np.ndarray) -> str | None:
    """The name whose score beats the next by `SIDE_MARGIN`, else None."""
    order = np.argsort(scores)[::-1]
    return names[order[0]] if scores[order[0]] - scores[order[1]] >= SIDE_MARGIN else None


@dataclass
class RouteModel:
    """The fitted decision "does the guidance map answer this question?"."""

    coef: np.ndarray
    intercept: float
    mean: np.ndarray
    scale: np.ndarray
    threshold: float
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path = MODEL_FILE) -> RouteModel:
        try:
            return cls.load_document(json.loads(Path(path).read_text(encoding="utf-8")))
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from exc

    @classmethod
    def load_document(cls, doc: dict[str, Any]) -> RouteModel:
        coef, intercept, mean, scale = linear.read_logistic(doc, FEATURES)
        return cls(coef, intercept, mean, scale, float(doc["threshold"]), doc)

    def probability(self, features: dict[str, float]) -> float:
        return linear.probability(features, FEATURES, self.coef, self.intercept, self.mean, self.scale)

    def routes(self, features: dict[str, float]) -> bool:
        return self.probability(features) >= self.threshold


def fit_route(rows: Sequence[dict[str, float]], labels: Sequence[int]) -> dict[str, Any]:
    """Fit the route model (label 1: the map should answer) and return its JSON document;
    the caller sets the threshold (chosen on dev)."""
    return {
        **linear.fit_logistic(rows, labels, FEATURES),
        "rows": {"positive": int(sum(labels)), "negative": len(labels) - int(sum(labels))},
    }


def load_route_model(path: Path | None = MODEL_FILE) -> RouteModel | None:
    """The fitted route model, or None (logged) when missing or unusable: the map then never answers."""
    if path is None or not Path(path).is_file():
        log.warning("guidance route model %s not found: questions are answered from the passages", path)
        return None
    try:
        return RouteModel.load(Path(path))
    except (ValueError, KeyError, TypeError) as exc:
        log.warning(
            "guidance route model %s unusable (%s); run `advisor calibrate --what guidance`", path, exc
        )
        return None
