"""Feature engineering: the one function that training and serving both call."""

import numpy as np
import pandas as pd

from mlplatform.specs import Derived, Spec


def _derive(frame: pd.DataFrame, feature: Derived) -> pd.Series:
    cols = [frame[name].astype("float64") for name in feature.inputs]
    if feature.op == "ratio":
        denominator = cols[1].where(cols[1] != 0)
        return (cols[0] / denominator).fillna(0.0)
    if feature.op == "log1p":
        return np.log1p(cols[0].clip(lower=0))
    if feature.op == "product":
        return cols[0] * cols[1]
    if feature.op == "difference":
        return cols[0] - cols[1]
    raise ValueError(f"derived feature {feature.name!r}: unknown op {feature.op!r}")


def featurize(frame: pd.DataFrame, spec: Spec, keys: bool = True) -> pd.DataFrame:
    """Model inputs from validated contract rows: numeric as float64, categories as strings, derived features.

    With `keys` the entity and timestamp columns lead (the Feast offline source); without them the frame is
    what a model consumes for a request.
    """
    out = pd.DataFrame(index=frame.index)
    if keys:
        out[spec.entity] = frame[spec.entity].astype("int64")
        out[spec.timestamp] = frame[spec.timestamp]
    for col in spec.numeric:
        out[col.name] = frame[col.name].astype("float64")
    for col in spec.categorical:
        out[col.name] = frame[col.name].astype(str)
    for feature in spec.derived:
        out[feature.name] = _derive(frame, feature).astype("float64")
    return out
