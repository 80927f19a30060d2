"""Training: a scikit-learn Pipeline built from a spec, fitted on a time-based split with one seed."""

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlplatform.lib import predictions
from mlplatform.lib.memory import release_freed_memory
from mlplatform.lib.training import estimators
from mlplatform.lib.training.tracking import TrackedModel
from mlplatform.specs import TASK_HEADLINE, Spec


@dataclass(frozen=True)
class TrainParams:
    """Hyper-parameters and the seed: everything besides the data that decides the fitted model."""

    estimator: str
    regularization_c: float
    max_iter: int
    seed: int
    holdout_days: int
    estimator_params: dict[str, Any] = field(default_factory=dict)


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
    spec: Spec

    def output(self, x: pd.DataFrame) -> np.ndarray:
        """The task's output (`lib/predictions.py`)."""
        return predictions.output(self.pipeline, x, self.spec)


def preprocessing(spec: Spec) -> ColumnTransformer:
    """The default preprocessing: numeric scaled (missing values imputed with the training median when the
    contract allows them), categories one-hot encoded (a missing one is its own category, an unseen one all zeros)."""
    categorical = spec.categorical_feature_names
    numeric = [n for n in spec.feature_names if n not in categorical]
    # The transformer already hands the scaler a copy of its columns: scale it in place (0.4 GB less at 5M rows)
    scaler: Any = StandardScaler(copy=False)
    if any(c.nullable for c in spec.numeric) or spec.function_features:
        scaler = Pipeline([("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                           ("scale", scaler)])
    return ColumnTransformer([("numeric", scaler, numeric),
                              ("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                               categorical)])


def build_pipeline(spec: Spec, params: TrainParams) -> Pipeline:
    """The spec's estimator behind the default preprocessing (a factory's own Pipeline is used as given)."""
    model = estimators.build(spec, params.estimator, params.estimator_params, params.seed, params.regularization_c,
                             params.max_iter)
    if isinstance(model, Pipeline):
        return model
    return Pipeline([("preprocess", preprocessing(spec)), ("model", model)])


HOLDOUT_FRACTION = 0.25  # the seeded holdout's share, when label time has too few distinct days to split by


def holdout_mask(frame: pd.DataFrame, spec: Spec, holdout_days: int, seed: int = 0) -> np.ndarray:
    """True for holdout rows: the latest `holdout_days` calendar days of label time when there are more days than
    that, otherwise (coarse timestamps, a few days of data) a seeded `HOLDOUT_FRACTION` of the rows."""
    days = frame[spec.timestamp].dt.floor("D")
    distinct = np.sort(days.unique())
    if len(distinct) > holdout_days:
        return (days >= distinct[-holdout_days]).to_numpy()
    if len(frame) < 8:
        raise ValueError(f"{spec.name}: {len(frame)} labelled rows; too few to hold any out")
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(frame), dtype=bool)
    mask[rng.permutation(len(frame))[:max(2, round(len(frame) * HOLDOUT_FRACTION))]] = True
    return mask


def holdout_method(frame: pd.DataFrame, spec: Spec, holdout_days: int) -> str:
    """How `holdout_mask` chose the holdout, in words (for the report and the model card)."""
    days = frame[spec.timestamp].dt.floor("D").nunique()
    if days > holdout_days:
        return f"by time: the latest {holdout_days} of {days} days of label time"
    return (f"a seeded random {HOLDOUT_FRACTION:.0%} of rows ({days} day(s) of label time, not more than "
            f"holdout_days={holdout_days})")


def holdout(frame: pd.DataFrame, spec: Spec, holdout_days: int, seed: int = 0) -> pd.DataFrame:
    """Only the holdout rows (no copy of the training split)."""
    return frame[holdout_mask(frame, spec, holdout_days, seed)].reset_index(drop=True)


def fit(frame: pd.DataFrame, spec: Spec, params: TrainParams) -> tuple[Pipeline, int, pd.DataFrame]:
    """Fit on the training rows; returns the pipeline, the number of training rows and the holdout."""
    held = holdout_mask(frame, spec, params.holdout_days, params.seed)
    pipeline = build_pipeline(spec, params)
    release_freed_memory()  # what earlier steps freed would otherwise add to this step's peak
    x, y = frame.loc[~held, spec.feature_names], frame.loc[~held, spec.label]  # no copy of the whole split
    if spec.is_classification and y.nunique() < 2:
        raise ValueError(f"{spec.name}: the training rows hold only label {y.iloc[0]!r}; a classifier needs two")
    try:
        pipeline.fit(x, y)
    except ValueError as err:
        if "NaN" in str(err):
            raise ValueError(f"{spec.name}: estimator {params.estimator!r} cannot take missing values "
                             f"({str(err).splitlines()[0]}); use the default preprocessing, which imputes them, or "
                             "add an imputer to the factory's pipeline") from err
        raise
    del x, y  # the training rows' columns are freed before the holdout is copied (0.5 GB at 5M rows)
    return pipeline, int((~held).sum()), frame[held].reset_index(drop=True)


def headline_metric(pipeline: Pipeline, holdout: pd.DataFrame, spec: Spec) -> tuple[str, float]:
    """The task's headline holdout metric of a freshly fitted model (logged with the run): binary ROC AUC,
    multiclass accuracy, regression RMSE."""
    from mlplatform.lib.evaluation import metrics

    if len(holdout) == 0:
        raise ValueError(f"{spec.name}: the holdout is empty")
    y = holdout[spec.label].to_numpy()
    if spec.task == "binary" and len(np.unique(y)) < 2:
        raise ValueError(f"{spec.name}: the holdout holds only label {y[0]!r}; ROC AUC needs both")
    out = predictions.output(pipeline, holdout[spec.feature_names], spec)
    return TASK_HEADLINE[spec.task], metrics.headline_metric(spec, y, out)


def behaviour_version(pipeline: Pipeline, holdout: pd.DataFrame, spec: Spec) -> str:
    """A data version for a model: the hash of its holdout outputs, so an identical refit keeps downstream fresh."""
    import hashlib

    out = predictions.output(pipeline, holdout[spec.feature_names], spec)
    return hashlib.sha256(np.ascontiguousarray(out).tobytes()).hexdigest()[:16]
