"""Coverage: do the retrieved passages cover the question? A calibrated decision, not hand-set floors.

`coverage_features` measures, for one question and its retrieved passages, what a reader checks:
how close the best evidence sentences are (raw, and after removing the direction every passage of
the reports shares), whether the question's domain words and named things occur in the evidence,
and whether a question asking for a number or date finds one. Everyday English words never count
against coverage: the question analysis tells them apart with a word-frequency list.

`CoverageModel` turns the features into the probability that the reports do not cover the
question: a logistic regression fit on the dev split (`advisor calibrate`), stored with its
threshold, its coefficients and its dev precision / recall curve in `advisor/models/coverage.json`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

MODEL_FILE = Path(__file__).parent / "models" / "coverage.json"

FEATURES = (
    "best_similarity",  # the closest evidence sentence to the query (cosine)
    "top3_similarity",  # mean of the three closest
    "best_specific",  # the closest after removing the reports' shared direction (centred cosine)
    "standout",  # how far the closest stands out from all the reports' sentences (z-score)
    "domain_covered",  # share of the question's domain words found in the evidence (1 when it has none)
    "words_covered",  # its content words found in the evidence, each weighted by its rarity in the reports
    "domain_unknown",  # domain words the reports never use anywhere (capped at 3)
    "named_covered",  # share of the named things found in the evidence (1 when it names none)
    "type_satisfied",  # a number / date question: the close evidence holds a number / year (else 1)
)


@dataclass(frozen=True)
class CoverageModel:
    """Logistic regression over FEATURES: P(not covered); refuse at or above `threshold`."""

    coefficients: tuple[float, ...]
    intercept: float
    means: tuple[float, ...]
    scales: tuple[float, ...]
    threshold: float
    fitted_on: str = "dev"

    @classmethod
    def load(cls, path: Path = MODEL_FILE) -> CoverageModel:
        """The model in a file written by `advisor calibrate` (ValueError if it does not fit FEATURES)."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path} is not valid JSON: {exc}") from exc
        return cls.load_dict(data, str(path))

    @classmethod
    def load_dict(cls, data: dict, where: str = "the model") -> CoverageModel:
        """The model from `fit`'s document."""
        if not isinstance(data, dict) or list(data.get("features") or []) != list(FEATURES):
            found = data.get("features") if isinstance(data, dict) else data
            raise ValueError(f"{where} was fitted on other features: {found}")
        return cls(
            coefficients=tuple(data["coefficients"]),
            intercept=float(data["intercept"]),
            means=tuple(data["means"]),
            scales=tuple(data["scales"]),
            threshold=float(data["threshold"]),
            fitted_on=data.get("fitted_on", "dev"),
        )

    def probability(self, features: dict[str, float]) -> float:
        """P(the reports do not cover the question)."""
        z = self.intercept
        for name, coef, mean, scale in zip(FEATURES, self.coefficients, self.means, self.scales):
            z += coef * (features[name] - mean) / (scale or 1.0)
        return 1.0 / (1.0 + math.exp(-z))

    def refuses(self, features: dict[str, float]) -> bool:
        return self.probability(features) >= self.threshold


def fit(
    rows: Sequence[dict[str, float]], labels: Sequence[int], max_false_refusal: float | None = None
) -> dict:
    """Fit the model on dev rows (label 1 = out of scope) and choose its threshold.

    The two classes are weighted equally (the dev split has far fewer out-of-scope rows), and a
    question is refused when the model finds "not covered" more likely than not (0.5): refusing a
    question the reports answer and answering one they do not are counted as equally bad, each
    as a share of its own kind. With `max_false_refusal`, the threshold is instead the lowest at
    which at most that share of in-scope rows is refused. Returns the JSON document
    `CoverageModel.load` reads, with the dev precision / recall curve.
    """
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x = np.array([[r[f] for f in FEATURES] for r in rows], dtype=float)
    y = np.array(labels, dtype=int)
    scaler = StandardScaler().fit(x)
    model = LogisticRegression(class_weight="balanced", C=1.0, max_iter=1000).fit(scaler.transform(x), y)
    p = model.predict_proba(scaler.transform(x))[:, 1]
    if max_false_refusal is not None:
        in_scope = np.sort(p[y == 0])[::-1]
        allowed = math.floor(max_false_refusal * len(in_scope))
        # refuse strictly above the (allowed+1)-th highest in-scope probability
        threshold = float(in_scope[allowed]) + 1e-6 if len(in_scope) > allowed else 0.5
    else:
        threshold = 0.5
    curve = []
    for t in sorted({round(float(v), 3) for v in np.linspace(0.05, 0.95, 19)} | {round(threshold, 3)}):
        refused = p >= t
        tp = int((refused & (y == 1)).sum())
        curve.append(
            {
                "threshold": t,
                "precision": round(tp / max(int(refused.sum()), 1), 3),
                "recall": round(tp / max(int((y == 1).sum()), 1), 3),
                "false_refusal_rate": round(int((refused & (y == 0)).sum()) / max(int((y == 0).sum()), 1), 3),
            }
        )
    refused = p >= threshold
    return {
        "features": list(FEATURES),
        "coefficients": [round(float(c), 6) for c in model.coef_[0]],
        "intercept": round(float(model.intercept_[0]), 6),
        "means": [round(float(m), 6) for m in scaler.mean_],
        "scales": [round(float(s), 6) for s in scaler.scale_],
        "threshold": round(threshold, 6),
        "fitted_on": "dev",
        "rows": {"in_scope": int((y == 0).sum()), "out_of_scope": int((y == 1).sum())},
        "dev": {
            "out_of_scope_refused": int((refused & (y == 1)).sum()),
            "false_refusals": int((refused & (y == 0)).sum()),
        },
        "precision_recall_dev": curve,
    }
