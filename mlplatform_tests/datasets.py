"""Real datasets that ship inside scikit-learn (no download), taken as a user would: an entity id per row, rows
spread over daily files by their timestamp, and a spec per dataset, one per task."""

import re
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

from mlplatform.specs import Categorical, Numeric, Spec

DAYS = 6
START = date(2025, 3, 1)


@dataclass
class Dataset:
    spec: Spec
    frame: pd.DataFrame  # the contract's columns, entity and timestamp included


def _spread(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """An entity id per row and a timestamp on one of DAYS days, as rows arrive over a week."""
    rng = np.random.default_rng(seed)
    days = rng.integers(0, DAYS, len(frame))
    stamps = [pd.Timestamp(START + timedelta(days=int(d)), tz="UTC") + pd.Timedelta(minutes=int(m))
              for d, m in zip(days, rng.integers(0, 1440, len(frame)), strict=True)]
    return frame.assign(row_id=np.arange(len(frame)) + 1000, event_timestamp=stamps)


def _snake(name: str) -> str:
    return re.sub(r"\W+", "_", name.strip()).lower()


def cancer_features(contract: pd.DataFrame) -> pd.DataFrame:
    """A user's features function: two columns computed from the contract's (training and serving call it)."""
    return pd.DataFrame({"radius_x_texture": contract["mean_radius"] * contract["mean_texture"],
                         "log_area": np.log1p(contract["mean_area"])}, index=contract.index)


def breast_cancer() -> Dataset:
    """Binary, with string classes and the positive class named, and features of the user's own function."""
    from sklearn.datasets import load_breast_cancer

    raw = load_breast_cancer(as_frame=True)
    x = raw.data.rename(columns=_snake).iloc[:, :10]
    frame = x.assign(diagnosis=raw.target.map(dict(enumerate(raw.target_names))).to_numpy())
    spec = Spec(name="cancer", entity="row_id", timestamp="event_timestamp", label="diagnosis", task="binary",
                classes=("malignant", "benign"), positive_class="malignant",
                numeric=tuple(Numeric(c, 0) for c in x.columns),
                features_function=f"{__name__}:cancer_features", function_features=("radius_x_texture", "log_area"))
    return Dataset(spec, _spread(frame, 1))


def wine() -> Dataset:
    """Multiclass with string classes, and an estimator from outside scikit-learn given by its dotted path."""
    from sklearn.datasets import load_wine

    raw = load_wine(as_frame=True)
    x = raw.data.rename(columns=_snake)
    frame = x.assign(cultivar=raw.target.map(dict(enumerate(raw.target_names))).to_numpy())
    spec = Spec(name="wine", entity="row_id", timestamp="event_timestamp", label="cultivar", task="multiclass",
                classes=("class_0", "class_1", "class_2"), numeric=tuple(Numeric(c, 0) for c in x.columns),
                estimator="lightgbm.LGBMClassifier",
                estimator_params=(("n_estimators", 60), ("min_child_samples", 5), ("verbose", -1)))
    return Dataset(spec, _spread(frame, 2))


def diabetes() -> Dataset:
    """Regression with a nullable feature (missing on some rows), a sensitive slice, and gradient boosting by path."""
    from sklearn.datasets import load_diabetes

    raw = load_diabetes(as_frame=True)
    x = raw.data.drop(columns=["sex"])
    frame = x.assign(sex=np.where(raw.data["sex"] > 0, "a", "b"), progression=raw.target.to_numpy())
    frame.loc[frame.index % 17 == 0, "bp"] = np.nan
    numeric = tuple(Numeric(c, nullable=(c == "bp")) for c in x.columns)
    spec = Spec(name="diabetes", entity="row_id", timestamp="event_timestamp", label="progression", task="regression",
                target_min=0, target_max=1000, numeric=numeric, sensitive=Categorical("sex", ("a", "b")),
                estimator="sklearn.ensemble.HistGradientBoostingRegressor",
                estimator_params=(("max_iter", 60), ("learning_rate", 0.05)))
    return Dataset(spec, _spread(frame, 3))
