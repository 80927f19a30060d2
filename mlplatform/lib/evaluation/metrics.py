"""Evaluation of a candidate model (and the champion) on one holdout: metrics, calibration, slices, importance."""

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from mlplatform.lib import explanations, predictions
from mlplatform.specs import TASK_HEADLINE, Spec

CALIBRATION_BINS = 10
RESIDUAL_POINTS = 500  # regression: at most this many (predicted, residual) points kept for the plot


@dataclass
class ModelEvaluation:
    """One model's numbers on the holdout."""

    name: str
    metrics: dict[str, float]
    roc: tuple[list[float], list[float]]  # binary only (else empty)
    calibration: list[dict[str, float]]  # binary only
    slices: pd.DataFrame
    fairness: dict[str, float]
    scores: np.ndarray = field(repr=False)  # the task's output (`lib/predictions.py`)
    residuals: list[tuple[float, float]] = field(default_factory=list)  # regression: (predicted, actual − predicted)
    fairness_judged: bool = True  # False: fewer than two slices had enough rows to compare


@dataclass
class Evaluation:
    """Candidate (and champion, when there is one) on the same holdout rows, plus the candidate's importance."""

    candidate: ModelEvaluation
    champion: ModelEvaluation | None
    importance: pd.DataFrame
    holdout_rows: int
    label_summary: str
    threshold: float
    task: str = "binary"
    directions: dict[str, int] = field(default_factory=dict)  # metric → +1 higher is better, -1 lower is
    holdout_method: str = ""
    explanation: explanations.Explanation | None = None  # SHAP on a seeded sample of the holdout
    explained: pd.DataFrame | None = None  # the rows explained (model inputs)
    explanation_problem: str = ""  # why there is no explanation

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


def multiclass_metrics(y: np.ndarray, proba: np.ndarray, classes: tuple[Any, ...]) -> dict[str, float]:
    """Accuracy, macro and weighted F1, log loss, one-vs-rest ROC AUC (over the classes present) and per-class
    recall of a probability matrix in `classes` order."""
    predicted = np.asarray(classes, dtype=object)[np.argmax(proba, axis=1)]
    y = np.asarray(y, dtype=object)
    present = [k for k, c in enumerate(classes) if (y == c).any()]
    auc = float("nan")
    if len(present) >= 2:
        sub = proba[:, present] / np.clip(proba[:, present].sum(axis=1, keepdims=True), 1e-15, None)
        if len(present) == 2:
            auc = float(skm.roc_auc_score(y == classes[present[1]], sub[:, 1]))
        else:
            auc = float(skm.roc_auc_score(y, sub, multi_class="ovr", labels=[classes[k] for k in present]))
    out = {
        "accuracy": float(skm.accuracy_score(y, predicted)),
        "f1_macro": float(skm.f1_score(y, predicted, average="macro", labels=list(classes), zero_division=0)),
        "f1_weighted": float(skm.f1_score(y, predicted, average="weighted", labels=list(classes), zero_division=0)),
        "roc_auc_ovr": auc,
        "log_loss": float(skm.log_loss(y, np.clip(proba, 1e-15, 1), labels=list(classes))),
    }
    recall = skm.recall_score(y, predicted, average=None, labels=list(classes), zero_division=0)
    return out | {f"recall_{c}": float(r) for c, r in zip(classes, recall, strict=True)}


def regression_metrics(y: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    y = np.asarray(y, dtype="float64")
    r2 = float(skm.r2_score(y, predicted)) if len(y) > 1 and np.ptp(y) > 0 else float("nan")
    return {"rmse": float(np.sqrt(skm.mean_squared_error(y, predicted))),
            "mae": float(skm.mean_absolute_error(y, predicted)), "r2": r2}


def task_metrics(spec: Spec, y: np.ndarray, out: np.ndarray, threshold: float | None = None) -> dict[str, float]:
    """Every holdout metric of the spec's task, from true labels and the task's output, then the user's own."""
    if spec.task == "binary":
        found = classification_metrics(predictions.binary_target(y, spec), out,
                                       spec.gates.decision_threshold if threshold is None else threshold)
    elif spec.task == "multiclass":
        found = multiclass_metrics(y, out, spec.classes)
    else:
        found = regression_metrics(y, out)
    return found | {m.name: user_metric(m.function, m.name, y, out) for m in spec.metrics}


def user_metric(path: str, name: str, y: np.ndarray, out: np.ndarray) -> float:
    """A user's metric function called on the labels and the output; what goes wrong is named with the function."""
    import importlib

    module, _, attribute = path.partition(":")
    try:
        function = getattr(importlib.import_module(module), attribute)
        value = float(function(y, out))
    except Exception as err:  # noqa: BLE001 - the user's code: say whose it is
        raise ValueError(f"metric {name!r} ({path}): {type(err).__name__}: {err}") from err
    return value


def _slice_auc(y: np.ndarray, scores: np.ndarray) -> float:
    return float(skm.roc_auc_score(y, scores)) if len(np.unique(y)) == 2 else float("nan")


def slice_report(y: np.ndarray, scores: np.ndarray, sensitive: pd.Series, threshold: float,
                 min_rows: int) -> tuple[pd.DataFrame, dict[str, float]]:
    """Binary: per-slice rates (fairlearn MetricFrame) and the disparities over slices with at least `min_rows`
    rows; no disparity when fewer than two slices are that large."""
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
        return slices, {}
    fairness = {
        "demographic_parity_difference": float(demographic_parity_difference(
            y[keep], predicted[keep], sensitive_features=groups[keep])),
        "equalized_odds_difference": float(equalized_odds_difference(
            y[keep], predicted[keep], sensitive_features=groups[keep])),
    }
    return slices, fairness


def task_slice_report(spec: Spec, y: np.ndarray, out: np.ndarray, sensitive: pd.Series, threshold: float,
                      min_rows: int) -> tuple[pd.DataFrame, dict[str, float]]:
    """Per-slice metrics and the task's disparities (`TASK_FAIRNESS`) over the slices large enough to judge:
    binary as fairlearn's parity and odds differences; multiclass the gap of per-slice accuracy and macro recall;
    regression the gap of per-slice MAE (absolute and relative to the overall MAE)."""
    if spec.task == "binary":
        return slice_report(predictions.binary_target(y, spec), out, sensitive, threshold, min_rows)
    groups = sensitive.astype(str).to_numpy()
    rows = []
    for group in sorted(np.unique(groups)):
        mask = groups == group
        row: dict[str, Any] = {"slice": group, "rows": int(mask.sum())}
        if spec.task == "multiclass":
            predicted = np.asarray(spec.classes, dtype=object)[np.argmax(out[mask], axis=1)]
            truth = np.asarray(y, dtype=object)[mask]
            row["accuracy"] = float(skm.accuracy_score(truth, predicted))
            row["recall"] = float(skm.recall_score(truth, predicted, average="macro", labels=sorted(set(truth)),
                                                   zero_division=0))
        else:
            row["mae"] = float(skm.mean_absolute_error(np.asarray(y, dtype="float64")[mask], out[mask]))
        rows.append(row)
    slices = pd.DataFrame(rows).set_index("slice")
    slices["judged"] = slices["rows"] >= min_rows
    judged = slices[slices["judged"]]
    if len(judged) < 2:
        return slices, {}
    if spec.task == "multiclass":
        return slices, {"accuracy_gap": float(np.ptp(judged["accuracy"])),
                        "recall_gap": float(np.ptp(judged["recall"]))}
    overall = float(skm.mean_absolute_error(np.asarray(y, dtype="float64"), out))
    gap = float(np.ptp(judged["mae"]))
    return slices, {"mae_gap": gap, "relative_mae_gap": gap / overall if overall else 0.0}


def evaluate_model(name: str, model: Any, holdout: pd.DataFrame, spec: Spec, threshold: float,
                   min_slice_rows: int) -> ModelEvaluation:
    """Score the holdout with one model and compute everything the report and the gates need."""
    y = holdout[spec.label].to_numpy()
    out = predictions.output(model, holdout[spec.feature_names], spec)
    roc: tuple[list[float], list[float]] = ([], [])
    calibration: list[dict[str, float]] = []
    residuals: list[tuple[float, float]] = []
    if spec.task == "binary":
        target = predictions.binary_target(y, spec)
        fpr, tpr, _ = skm.roc_curve(target, out)
        step = max(1, len(fpr) // 200)  # enough points to draw the curve, few enough to keep in metadata
        roc, calibration = (fpr[::step].tolist() + [1.0], tpr[::step].tolist() + [1.0]), calibration_bins(target, out)
    elif spec.task == "regression":
        step = max(1, len(out) // RESIDUAL_POINTS)
        residuals = [(float(p), float(t - p)) for p, t in zip(out[::step], np.asarray(y, dtype="float64")[::step],
                                                               strict=True)]
    if spec.sensitive is not None:
        slices, fairness = task_slice_report(spec, y, out, holdout[spec.sensitive.name], threshold, min_slice_rows)
    else:
        slices, fairness = pd.DataFrame(), {}
    return ModelEvaluation(name, task_metrics(spec, y, out, threshold), roc, calibration, slices, fairness, out,
                           residuals, fairness_judged=bool(fairness) or spec.sensitive is None)


def permutation_importance(model: Any, holdout: pd.DataFrame, spec: Spec, seed: int, repeats: int = 5,
                           max_rows: int = 20_000) -> pd.DataFrame:
    """How much the task's headline metric worsens when one feature's values are shuffled (binary ROC AUC,
    multiclass accuracy, regression RMSE), with a per-feature data summary."""
    from sklearn.inspection import permutation_importance as permute

    headline = TASK_HEADLINE[spec.task]
    sign = spec.metric_directions[headline]

    def scorer(estimator: Any, x: pd.DataFrame, y: Any) -> float:
        return sign * headline_metric(spec, np.asarray(y), predictions.output(estimator, x, spec))

    sample = holdout.sample(n=min(max_rows, len(holdout)), random_state=seed) if len(holdout) > max_rows else holdout
    x, y = sample[spec.feature_names], sample[spec.label]
    result = permute(model, x, y, scoring=scorer, n_repeats=repeats, random_state=seed)
    out = predictions.output(model, x, spec)
    scores = out if out.ndim == 1 else None
    rows = []
    for i, name in enumerate(spec.feature_names):
        column = x[name]
        numeric = pd.api.types.is_numeric_dtype(column)
        rows.append({
            "feature": name, "importance": float(result.importances_mean[i]),
            "importance_std": float(result.importances_std[i]),
            "summary": (f"mean {column.mean():.4g}, p5–p95 {column.quantile(0.05):.4g}–{column.quantile(0.95):.4g}"
                        if numeric else f"{column.nunique()} values, most common {column.mode().iloc[0]!r}"),
            "effect": (_direction(column, scores) if scores is not None else "per class") if numeric
            else "categorical",
        })
    return pd.DataFrame(rows).sort_values("importance", ascending=False, ignore_index=True)



def headline_metric(spec: Spec, y: np.ndarray, out: np.ndarray) -> float:
    """Only the task's headline metric (permutation importance computes it once per feature and repeat)."""
    if spec.task == "binary":
        return float(skm.roc_auc_score(predictions.binary_target(y, spec), out))
    if spec.task == "multiclass":
        predicted = np.asarray(spec.classes, dtype=object)[np.argmax(out, axis=1)]
        return float(np.mean(predicted == np.asarray(y, dtype=object)))
    return float(np.sqrt(np.mean((np.asarray(y, dtype="float64") - out) ** 2)))


def _direction(column: pd.Series, scores: np.ndarray) -> str:
    """How the score moves with the feature (rank correlation), in words."""
    if np.ptp(scores) == 0 or column.nunique() < 2:
        return "no effect (constant)"
    rho = pd.Series(scores, index=column.index).corr(column, method="spearman")
    if not np.isfinite(rho) or abs(rho) < 0.05:
        return "little monotone effect"
    return f"{'higher' if rho > 0 else 'lower'} value → higher score (ρ={rho:+.2f})"


def label_summary(y: pd.Series, spec: Spec) -> str:
    """The holdout's labels in a few words: binary the positive rate, multiclass the class shares, regression the
    mean and range."""
    if spec.task == "binary":
        return f"positive ({spec.positive_class!r}) rate {float((y == spec.positive_class).mean()):.3f}"
    if spec.task == "multiclass":
        shares = y.value_counts(normalize=True)
        return "class shares " + ", ".join(f"{c!r} {float(shares.get(c, 0.0)):.2f}" for c in spec.classes)
    return f"target mean {float(y.mean()):.4g}, range {float(y.min()):.4g}–{float(y.max()):.4g}"


def evaluate(candidate: Any, champion: Any | None, holdout: pd.DataFrame, spec: Spec, threshold: float,
             min_slice_rows: int, seed: int, holdout_method: str = "") -> Evaluation:
    """The candidate and the champion on the same rows, and the candidate's feature importance."""
    if spec.is_classification and holdout[spec.label].nunique() < 2:
        raise ValueError(f"{spec.name}: the holdout holds only one label value; its metrics are undefined")
    if len(holdout) < 2:
        raise ValueError(f"{spec.name}: the holdout holds {len(holdout)} row(s); its metrics are undefined")
    cand = evaluate_model("challenger", candidate, holdout, spec, threshold, min_slice_rows)
    champ = (evaluate_model("champion", champion, holdout, spec, threshold, min_slice_rows)
             if champion is not None else None)
    explained = explanations.explained_rows(holdout, spec, seed)
    try:
        explainer = explanations.Explainer(candidate, spec, explanations.background(holdout, spec, seed), seed)
        explanation, problem = explainer.explain(explained), ""
    except explanations.ExplainerError as exc:
        explanation, problem = None, str(exc)
    return Evaluation(cand, champ, permutation_importance(candidate, holdout, spec, seed), len(holdout),
                      label_summary(holdout[spec.label], spec), threshold, spec.task, spec.metric_directions,
                      holdout_method, explanation, explained, problem)
