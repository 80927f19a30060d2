"""Evaluation of a candidate model (and the champion) on one holdout: metrics, calibration, slices, importance."""

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from mlplatform.specs import Spec

HIGHER_IS_BETTER = ("roc_auc", "pr_auc", "f1", "precision", "recall", "accuracy")
LOWER_IS_BETTER = ("log_loss", "brier", "expected_calibration_error")
METRICS = HIGHER_IS_BETTER + LOWER_IS_BETTER
CALIBRATION_BINS = 10


@dataclass
class ModelEvaluation:
    """One model's numbers on the holdout."""

    name: str
    metrics: dict[str, float]
    roc: tuple[list[float], list[float]]
    calibration: list[dict[str, float]]
    slices: pd.DataFrame
    fairness: dict[str, float]
    scores: np.ndarray = field(repr=False)


@dataclass
class Evaluation:
    """Candidate (and champion, when there is one) on the same holdout rows, plus the candidate's importance."""

    candidate: ModelEvaluation
    champion: ModelEvaluation | None
    importance: pd.DataFrame
    holdout_rows: int
    label_rate: float
    threshold: float

    def headline(self) -> dict[str, float]:
        """Candidate metrics and disparities, flat, for asset metadata and MLflow."""
        return {**self.candidate.metrics, **self.candidate.fairness}


def expected_calibration_error(y: np.ndarray, scores: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """Row-weighted mean |observed rate − mean score| over equal-width score bins."""
    return float(sum(b["rows"] * abs(b["observed"] - b["predicted"])
                     for b in calibration_bins(y, scores, bins)) / len(y))


def calibration_bins(y: np.ndarray, scores: np.ndarray, bins: int = CALIBRATION_BINS) -> list[dict[str, float]]:
    """Per equal-width score bin: rows, mean predicted probability and observed positive rate (empty bins left out)."""
    index = np.clip((scores * bins).astype(int), 0, bins - 1)
    out = []
    for b in range(bins):
        mask = index == b
        if mask.any():
            out.append({"bin": b, "rows": int(mask.sum()), "predicted": float(scores[mask].mean()),
                        "observed": float(y[mask].mean())})
    return out


def classification_metrics(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """Every headline metric of one model's scores; thresholded metrics use `threshold`."""
    predicted = (scores >= threshold).astype(int)
    return {
        "roc_auc": float(skm.roc_auc_score(y, scores)),
        "pr_auc": float(skm.average_precision_score(y, scores)),
        "f1": float(skm.f1_score(y, predicted, zero_division=0)),
        "precision": float(skm.precision_score(y, predicted, zero_division=0)),
        "recall": float(skm.recall_score(y, predicted, zero_division=0)),
        "accuracy": float(skm.accuracy_score(y, predicted)),
        "log_loss": float(skm.log_loss(y, np.clip(scores, 1e-15, 1 - 1e-15), labels=[0, 1])),
        "brier": float(skm.brier_score_loss(y, scores)),
        "expected_calibration_error": expected_calibration_error(y, scores),
    }


def _slice_auc(y: np.ndarray, scores: np.ndarray) -> float:
    return float(skm.roc_auc_score(y, scores)) if len(np.unique(y)) == 2 else float("nan")


def slice_report(y: np.ndarray, scores: np.ndarray, sensitive: pd.Series, threshold: float,
                 min_rows: int) -> tuple[pd.DataFrame, dict[str, float]]:
    """Per-slice metrics (fairlearn MetricFrame) and the disparities over slices with at least `min_rows` rows."""
    from fairlearn.metrics import (
        MetricFrame,
        count,
        demographic_parity_difference,
        equalized_odds_difference,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )

    predicted = (scores >= threshold).astype(int)
    groups = sensitive.astype(str).to_numpy()
    by_label = MetricFrame(metrics={"rows": count, "selection_rate": selection_rate,
                                    "true_positive_rate": true_positive_rate,
                                    "false_positive_rate": false_positive_rate,
                                    "label_rate": lambda t, p: float(np.mean(t))},
                           y_true=y, y_pred=predicted, sensitive_features=groups).by_group
    by_score = MetricFrame(metrics={"roc_auc": _slice_auc, "mean_score": lambda t, s: float(np.mean(s))},
                           y_true=y, y_pred=scores, sensitive_features=groups).by_group
    slices = by_label.join(by_score)
    slices["rows"] = slices["rows"].astype(int)
    slices["judged"] = slices["rows"] >= min_rows
    keep = np.isin(groups, slices.index[slices["judged"]])
    if len(np.unique(groups[keep])) < 2:
        return slices, {"demographic_parity_difference": 0.0, "equalized_odds_difference": 0.0}
    fairness = {
        "demographic_parity_difference": float(demographic_parity_difference(
            y[keep], predicted[keep], sensitive_features=groups[keep])),
        "equalized_odds_difference": float(equalized_odds_difference(
            y[keep], predicted[keep], sensitive_features=groups[keep])),
    }
    return slices, fairness


def evaluate_model(name: str, model: Any, holdout: pd.DataFrame, spec: Spec, threshold: float,
                   min_slice_rows: int) -> ModelEvaluation:
    """Score the holdout with one model and compute everything the report and the gates need."""
    y = holdout[spec.label].to_numpy()
    scores = model.predict_proba(holdout[spec.feature_names])[:, 1]
    fpr, tpr, _ = skm.roc_curve(y, scores)
    step = max(1, len(fpr) // 200)  # enough points to draw the curve, few enough to keep in metadata
    if spec.sensitive is not None:
        slices, fairness = slice_report(y, scores, holdout[spec.sensitive.name], threshold, min_slice_rows)
    else:
        slices, fairness = pd.DataFrame(), {}
    return ModelEvaluation(name, classification_metrics(y, scores, threshold),
                           (fpr[::step].tolist() + [1.0], tpr[::step].tolist() + [1.0]),
                           calibration_bins(y, scores), slices, fairness, scores)


def permutation_importance(model: Any, holdout: pd.DataFrame, spec: Spec, seed: int, repeats: int = 5,
                           max_rows: int = 20_000) -> pd.DataFrame:
    """Drop in holdout ROC AUC when one feature's values are shuffled, with a per-feature data summary."""
    from sklearn.inspection import permutation_importance as permute

    sample = holdout.sample(n=min(max_rows, len(holdout)), random_state=seed) if len(holdout) > max_rows else holdout
    x, y = sample[spec.feature_names], sample[spec.label]
    result = permute(model, x, y, scoring="roc_auc", n_repeats=repeats, random_state=seed)
    scores = model.predict_proba(x)[:, 1]
    rows = []
    for i, name in enumerate(spec.feature_names):
        column = x[name]
        numeric = pd.api.types.is_numeric_dtype(column)
        rows.append({
            "feature": name, "importance": float(result.importances_mean[i]),
            "importance_std": float(result.importances_std[i]),
            "summary": (f"mean {column.mean():.4g}, p5–p95 {column.quantile(0.05):.4g}–{column.quantile(0.95):.4g}"
                        if numeric else f"{column.nunique()} values, most common {column.mode().iloc[0]!r}"),
            "effect": _direction(column, scores) if numeric else "categorical",
        })
    return pd.DataFrame(rows).sort_values("importance", ascending=False, ignore_index=True)


def _direction(column: pd.Series, scores: np.ndarray) -> str:
    """How the score moves with the feature (rank correlation), in words."""
    if np.ptp(scores) == 0 or column.nunique() < 2:
        return "no effect (constant)"
    rho = pd.Series(scores, index=column.index).corr(column, method="spearman")
    if not np.isfinite(rho) or abs(rho) < 0.05:
        return "little monotone effect"
    return f"{'higher' if rho > 0 else 'lower'} value → higher score (ρ={rho:+.2f})"


def evaluate(candidate: Any, champion: Any | None, holdout: pd.DataFrame, spec: Spec, threshold: float,
             min_slice_rows: int, seed: int) -> Evaluation:
    """The candidate and the champion on the same rows, and the candidate's feature importance."""
    if holdout[spec.label].nunique() < 2:
        raise ValueError(f"{spec.name}: the holdout holds only one label value; its metrics are undefined")
    cand = evaluate_model("challenger", candidate, holdout, spec, threshold, min_slice_rows)
    champ = (evaluate_model("champion", champion, holdout, spec, threshold, min_slice_rows)
             if champion is not None else None)
    return Evaluation(cand, champ, permutation_importance(candidate, holdout, spec, seed), len(holdout),
                      float(holdout[spec.label].mean()), threshold)
