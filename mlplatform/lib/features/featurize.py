"""Feature engineering: the one function that training and serving both call."""

from collections.abc import Mapping

import numpy as np
import pandas as pd

from mlplatform.specs import MISSING_CATEGORY, Derived, Spec


def derive(columns: Mapping[str, np.ndarray], feature: Derived) -> np.ndarray:
    """One derived feature from float64 input columns (a frame's, or a request's): the same code for both."""
    cols = [columns[name] for name in feature.inputs]
    with np.errstate(divide="ignore", invalid="ignore"):
        if feature.op == "ratio":
            out = np.divide(cols[0], cols[1], out=np.zeros_like(cols[0]), where=cols[1] != 0)
            out[np.isnan(out)] = 0.0  # an undefined ratio (missing input) is 0, as for a zero denominator
            return out
        if feature.op == "log1p":
            return np.log1p(np.maximum(cols[0], 0))
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
    for cat in spec.categorical:  # a missing category is a category of its own (the scorer maps None the same way)
        out[cat.name] = frame[cat.name].astype(object).where(frame[cat.name].notna(), MISSING_CATEGORY).astype(str)
    numeric = {name: frame[name].to_numpy(dtype="float64", na_value=np.nan) for f in spec.derived for name in f.inputs}
    for feature in spec.derived:
        out[feature.name] = derive(numeric, feature)
    if spec.features_function:
        added = user_features(out[spec.contract_feature_names], spec)
        for name in spec.function_features:
            out[name] = added[name]
    return out


def user_features(contract: pd.DataFrame, spec: Spec) -> pd.DataFrame:
    """The spec's `features_function` on the contract's feature columns: exactly its declared columns, as float64,
    one row per input row; whatever else it gives is refused, naming the function."""
    import importlib

    path = spec.features_function
    module, _, attribute = path.partition(":")
    try:
        function = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"features_function {path!r}: {err}") from err
    added = function(contract.copy())
    if not isinstance(added, pd.DataFrame) or len(added) != len(contract):
        got = f"{type(added).__name__} of {len(added)} rows" if hasattr(added, "__len__") else type(added).__name__
        raise ValueError(f"features_function {path!r} returned {got}; expected a DataFrame of {len(contract)} rows")
    missing = [n for n in spec.function_features if n not in added.columns]
    if missing:
        raise ValueError(f"features_function {path!r} returned no column(s) {missing}")
    try:
        return added[list(spec.function_features)].set_axis(contract.index).astype("float64")
    except (TypeError, ValueError) as err:
        raise ValueError(f"features_function {path!r}: its columns must be numbers ({err})") from err
