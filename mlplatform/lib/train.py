"""Training: a scikit-learn Pipeline built from a spec, fitted on a time-based split with one seed."""

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlplatform.lib.tracking import TrackedModel
from mlplatform.specs import Spec

ESTIMATORS = ("logistic_regression", "gradient_boosting", "constant")


@dataclass(frozen=True)
class TrainParams:
    """Hyper-parameters and the seed: everything besides the data that decides the fitted model."""

    estimator: str
    regularization_c: float
    max_iter: int
    seed: int
    holdout_days: int


@dataclass(frozen=True)
class TrainedModel:
    """A fitted pipeline with what it was trained on and where it is registered (the model asset's value)."""

    pipeline: Pipeline
    params: TrainParams
    registered: TrackedModel
    training_set_version: str
    partitions: list[str]
    train_rows: int
    holdout_rows: int
    lineage: dict[str, str]

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        return self.pipeline.predict_proba(x)


def build_pipeline(spec: Spec, params: TrainParams) -> Pipeline:
    """Preprocessing (scale numeric, one-hot categories, unknown categories ignored) and the estimator."""
    categorical = spec.categorical_feature_names
    numeric = [n for n in spec.feature_names if n not in categorical]
    pre = ColumnTransformer([("numeric", StandardScaler(), numeric),
                             ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical)])
    if params.estimator == "logistic_regression":
        model = LogisticRegression(C=params.regularization_c, max_iter=params.max_iter, random_state=params.seed)
    elif params.estimator == "gradient_boosting":
        model = HistGradientBoostingClassifier(max_iter=params.max_iter, random_state=params.seed)
    elif params.estimator == "constant":  # ignores the features: the baseline every gate must reject
        model = DummyClassifier(strategy="prior", random_state=params.seed)
    else:
        raise ValueError(f"unknown estimator {params.estimator!r}; expected one of {', '.join(ESTIMATORS)}")
    return Pipeline([("preprocess", pre), ("model", model)])


def time_split(frame: pd.DataFrame, spec: Spec, holdout_days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train on everything before the latest `holdout_days` calendar days of label time; hold those out."""
    days = frame[spec.timestamp].dt.floor("D")
    distinct = np.sort(days.unique())
    if len(distinct) <= holdout_days:
        raise ValueError(f"{spec.name}: {len(distinct)} day(s) of labels, need more than holdout_days={holdout_days}")
    cutoff = distinct[-holdout_days]
    return frame[days < cutoff].reset_index(drop=True), frame[days >= cutoff].reset_index(drop=True)


def fit(frame: pd.DataFrame, spec: Spec, params: TrainParams) -> tuple[Pipeline, pd.DataFrame, pd.DataFrame]:
    """Fit on the training split; returns the pipeline, the train split and the holdout."""
    train, holdout = time_split(frame, spec, params.holdout_days)
    pipeline = build_pipeline(spec, params)
    pipeline.fit(train[spec.feature_names], train[spec.label])
    return pipeline, train, holdout


def holdout_auc(pipeline: Pipeline, holdout: pd.DataFrame, spec: Spec) -> float:
    if holdout[spec.label].nunique() < 2:
        raise ValueError(f"{spec.name}: the holdout holds only label {holdout[spec.label].iloc[0]!r}; ROC AUC needs both")
    scores = pipeline.predict_proba(holdout[spec.feature_names])[:, 1]
    return float(roc_auc_score(holdout[spec.label], scores))


def behaviour_version(pipeline: Pipeline, holdout: pd.DataFrame, spec: Spec) -> str:
    """A data version for a model: the hash of its holdout scores, so an identical refit keeps downstream fresh."""
    import hashlib

    scores = pipeline.predict_proba(holdout[spec.feature_names])[:, 1]
    return hashlib.sha256(np.ascontiguousarray(scores).tobytes()).hexdigest()[:16]
