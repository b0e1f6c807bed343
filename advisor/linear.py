"""Binary logistic regressions over named features, standardised, stored as JSON documents.

The guidance route (`advisor.guidance.matching.RouteModel`) and the condition reading
(`advisor.cases.reading.ConditionModel`) are both this: `fit_logistic` fits one on dev rows and
returns the document's model part; `read_logistic` checks a document against the features the
code computes; `probability` applies it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def fit_logistic(
    rows: Sequence[Mapping[str, float]], labels: Sequence[int], features: Sequence[str]
) -> dict[str, Any]:
    """Fit on rows (feature name -> value) with balanced classes; the document's model part."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x = np.array([[r[f] for f in features] for r in rows], dtype=np.float64)
    y = np.asarray(labels)
    scaler = StandardScaler().fit(x)
    scale = np.where(scaler.scale_ > 1e-9, scaler.scale_, 1.0)
    model = LogisticRegression(class_weight="balanced", max_iter=3000).fit((x - scaler.mean_) / scale, y)
    return {
        "features": list(features),
        "coefficients": [round(float(v), 6) for v in model.coef_[0]],
        "intercept": round(float(model.intercept_[0]), 6),
        "mean": [float(v) for v in scaler.mean_],
        "scale": [float(v) for v in scale],
    }


def read_logistic(
    doc: Mapping[str, Any], features: Sequence[str], what: str = ""
) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """(coefficients, intercept, mean, scale) of a document; ValueError when it was fit on other
    features or its arrays do not match them (`what` names the model in the message)."""
    if tuple(doc["features"]) != tuple(features):
        raise ValueError(f"{what}features {doc['features']}, expected {tuple(features)}")
    coef, mean, scale = (np.asarray(doc[k], dtype=np.float64) for k in ("coefficients", "mean", "scale"))
    if not (coef.shape == mean.shape == scale.shape == (len(features),)) or np.any(scale <= 0):
        raise ValueError(f"{what}coefficients or standardisation do not match the features")
    return coef, float(doc["intercept"]), mean, scale


def probability(
    values: Mapping[str, float],
    features: Sequence[str],
    coef: np.ndarray,
    intercept: float,
    mean: np.ndarray,
    scale: np.ndarray,
) -> float:
    """The model's probability of the positive class for one row."""
    x = (np.array([values[f] for f in features]) - mean) / scale
    return float(1.0 / (1.0 + np.exp(-(coef @ x + intercept))))
