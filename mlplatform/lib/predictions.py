"""What a model outputs for a spec's task, in one shape for training, evaluation, packaging and serving.

binary: the positive class's probability per row, shape (n,); multiclass: one probability per declared class, in
the spec's class order, shape (n, k); regression: the predicted value per row, shape (n,). Shipped in the Bento.
"""

from typing import Any

import numpy as np

from mlplatform.specs import ClassValue, Spec


def class_columns(model_classes: Any, spec: Spec) -> list[int | None]:
    """For each declared class, its column in the model's `predict_proba` (None: the model never saw it)."""
    position = {_plain(c): i for i, c in enumerate(list(model_classes))}
    return [position.get(c) for c in spec.classes]


def _plain(value: Any) -> ClassValue:
    return value.item() if hasattr(value, "item") else value


def from_proba(proba: np.ndarray, model_classes: Any, spec: Spec) -> np.ndarray:
    """A classifier's `predict_proba` as the task's output (classes the model never saw get probability 0)."""
    proba = np.asarray(proba, dtype="float64")
    columns = class_columns(model_classes, spec)
    if spec.task == "binary":
        at = columns[spec.classes.index(spec.positive_class)]
        return proba[:, at] if at is not None else np.zeros(len(proba))
    out = np.zeros((len(proba), len(spec.classes)))
    for k, at in enumerate(columns):
        if at is not None:
            out[:, k] = proba[:, at]
    return out


def output(model: Any, x: Any, spec: Spec) -> np.ndarray:
    """The task's output of a fitted estimator or pipeline on a feature frame (or matrix)."""
    if spec.task == "regression":
        return np.asarray(model.predict(x), dtype="float64").reshape(-1)
    return from_proba(model.predict_proba(x), model.classes_, spec)


def labels(out: np.ndarray, spec: Spec, threshold: float) -> list[ClassValue]:
    """The predicted class per row: binary by the decision threshold, multiclass the most probable class."""
    if spec.task == "binary":
        return [spec.positive_class if p >= threshold else spec.negative_class for p in out.tolist()]
    return [spec.classes[k] for k in np.argmax(out, axis=1).tolist()]


def finite_rows(out: np.ndarray) -> np.ndarray:
    """True per row whose output is all finite numbers."""
    finite = np.isfinite(out)
    return finite.all(axis=1) if finite.ndim == 2 else finite


def binary_target(y: Any, spec: Spec) -> np.ndarray:
    """Binary labels as 0/1 (1: the positive class)."""
    return (np.asarray(y) == spec.positive_class).astype("int64")
