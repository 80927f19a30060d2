"""Re-create a registered model version from its recorded inputs and compare its predictions with the original."""

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlplatform.lib import predictions
from mlplatform.lib.hashing import frame_version
from mlplatform.lib.training import tracking, train
from mlplatform.specs import Spec


class ReproductionError(ValueError):
    """A recorded input needed to re-create the version is missing or no longer what was recorded."""


@dataclass(frozen=True)
class Reproduction:
    """The outcome: how far the re-created model's holdout scores are from the registered version's."""

    model: str
    version: str
    params: train.TrainParams
    data_version: str
    snapshot: Path
    holdout_rows: int
    max_abs_diff: float
    recorded: dict[str, str]
    current: dict[str, str]

    @property
    def identical(self) -> bool:
        return self.max_abs_diff == 0.0

    def report(self) -> str:
        lines = [f"{self.model} v{self.version}: re-trained from training set {self.data_version} ({self.snapshot})",
                 f"  params: {', '.join(f'{k}={v}' for k, v in self.params.__dict__.items())}"]
        for name in ("git.commit", "lock.sha256"):
            same = "same" if self.recorded[name] == self.current[name] else f"now {self.current[name]}"
            lines.append(f"  {name}: recorded {self.recorded[name]} ({same})")
        verdict = ("predictions identical" if self.identical else "predictions DIFFER")
        lines.append(f"  {verdict}: max |Δ| = {self.max_abs_diff:.3g} over {self.holdout_rows} holdout rows")
        return "\n".join(lines)


def _params(run_params: dict[str, str]) -> train.TrainParams:
    try:
        return train.TrainParams(estimator=run_params["estimator"],
                                 regularization_c=float(run_params["regularization_c"]),
                                 max_iter=int(run_params["max_iter"]), seed=int(run_params["seed"]),
                                 holdout_days=int(run_params["holdout_days"]),
                                 estimator_params=json.loads(run_params.get("estimator_params", "{}")))
    except KeyError as err:
        raise ReproductionError(f"the MLflow run records no parameter {err.args[0]!r}") from err


def load_snapshot(path: Path, data_version: str) -> pd.DataFrame:
    """The training set snapshot, checked against the data version the model recorded."""
    if not path.exists():
        raise ReproductionError(f"no snapshot of training set {data_version} at {path}")
    frame = pd.read_parquet(path)
    if frame_version(frame) != data_version:
        raise ReproductionError(f"snapshot {path} no longer hashes to {data_version}: it was changed")
    return frame


def reproduce(client: Any, tracking_uri: str, spec: Spec, version: str,
              snapshot: Callable[[str], Path]) -> Reproduction:
    """Refit with the version's recorded params and seed on its recorded training set; compare holdout scores."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        registered = client.get_model_version(spec.model_name, version)
    except MlflowException as err:
        raise ReproductionError(f"{spec.model_name} has no version {version!r}") from err
    data_version = registered.tags.get("training_set.data_version")
    if not data_version:
        raise ReproductionError(f"{spec.model_name} v{version} records no training_set.data_version tag")
    params = _params(client.get_run(registered.run_id).data.params)
    path = snapshot(data_version)
    pipeline, _, holdout = train.fit(load_snapshot(path, data_version), spec, params)
    mlflow.set_tracking_uri(tracking_uri)
    original = mlflow.sklearn.load_model(f"models:/{spec.model_name}/{version}")
    x = holdout[spec.feature_names]
    diff = float(np.max(np.abs(predictions.output(original, x, spec) - predictions.output(pipeline, x, spec)))) \
        if len(x) else 0.0
    recorded = {k: registered.tags.get(k, "unknown") for k in ("git.commit", "lock.sha256")}
    current = {"git.commit": tracking.git_commit(), "lock.sha256": tracking.lock_hash()}
    return Reproduction(spec.model_name, str(version), params, data_version, path, len(x), diff, recorded, current)
