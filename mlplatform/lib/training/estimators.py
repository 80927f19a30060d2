"""The model a spec names: a built-in estimator, a scikit-learn-compatible class by dotted path, or a factory.

`logistic_regression`, `ridge`, `gradient_boosting`, `random_forest` and `constant` are built in (each by task);
`package.module.Class` is built with the spec's `estimator_params`; `package.module:function` is called with them
and returns an estimator (wrapped in the default preprocessing) or a whole Pipeline (used as given).
"""

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from mlplatform.specs import Spec

BUILT_IN = ("logistic_regression", "ridge", "gradient_boosting", "random_forest", "constant")


class EstimatorError(ValueError):
    """The spec's estimator cannot be built: the path, the name or the params are wrong."""


def _built_in(name: str, classification: bool) -> Callable[..., Any]:
    from sklearn import dummy, ensemble, linear_model

    table: dict[str, tuple[Any, Any]] = {
        "logistic_regression": (linear_model.LogisticRegression, None),
        "ridge": (None, linear_model.Ridge),
        "gradient_boosting": (ensemble.HistGradientBoostingClassifier, ensemble.HistGradientBoostingRegressor),
        "random_forest": (ensemble.RandomForestClassifier, ensemble.RandomForestRegressor),
        "constant": (dummy.DummyClassifier, dummy.DummyRegressor),  # the baseline every gate must reject
    }
    found = table[name][0 if classification else 1]
    if found is None:
        raise EstimatorError(f"estimator {name!r} is for {'regression' if classification else 'classification'}")
    return found


def resolve(path: str, classification: bool = True) -> Callable[..., Any]:
    """The class or factory function a name or path denotes; the error names the path and what is wrong."""
    if path in BUILT_IN:
        return _built_in(path, classification)
    module_name, sep, attribute = path.partition(":")
    if not sep:
        module_name, _, attribute = path.rpartition(".")
    if not module_name or not attribute:
        raise EstimatorError(f"estimator {path!r}: not a built-in ({', '.join(BUILT_IN)}), a dotted class path "
                             "(package.module.Class) or a factory (package.module:function)")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise EstimatorError(f"estimator {path!r}: cannot import {module_name!r} ({err})") from err
    found = getattr(module, attribute, None)
    if not callable(found):
        raise EstimatorError(f"estimator {path!r}: {module_name!r} has no class or function {attribute!r}")
    return found


def _defaults(name: str, params: dict[str, Any], seed: int, c: float, max_iter: int) -> dict[str, Any]:
    """The built-ins' own defaults from the spec's regularization, iterations and seed (params still win)."""
    table: dict[str, dict[str, Any]] = {
        "logistic_regression": {"C": c, "max_iter": max_iter},
        "ridge": {"alpha": 1.0 / c},
        "gradient_boosting": {"max_iter": max_iter},
        "random_forest": {"n_estimators": 100},
        "constant": {},
    }
    return {**table.get(name, {}), **params}


def build(spec: Spec, name: str, params: dict[str, Any], seed: int, regularization_c: float = 1.0,
          max_iter: int = 1000) -> Any:
    """A fresh, unfitted estimator (or Pipeline, from a factory) with `params`, seeded where it takes a seed."""
    target = resolve(name, spec.is_classification)
    if name in BUILT_IN:
        params = _defaults(name, params, seed, regularization_c, max_iter)
        if name == "constant":
            params = {"strategy": "prior" if spec.is_classification else "mean", **params}
    try:
        accepted: Mapping[str, inspect.Parameter] = inspect.signature(target).parameters
    except (TypeError, ValueError):
        accepted = {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    unknown = sorted(set(params) - set(accepted)) if accepted and not takes_any else []
    if unknown:
        raise EstimatorError(f"estimator {name!r}: unknown parameter(s) {unknown}; it takes "
                             f"{', '.join(sorted(k for k in accepted if k != 'self'))}")
    if "random_state" in accepted and "random_state" not in params:
        params = {**params, "random_state": seed}
    try:
        made = target(**params)
    except (TypeError, ValueError) as err:
        raise EstimatorError(f"estimator {name!r} with {params}: {err}") from err
    if not hasattr(made, "fit") or not hasattr(made, "predict"):
        raise EstimatorError(f"estimator {name!r} returned {type(made).__name__}, which has no fit/predict")
    if spec.is_classification and not hasattr(made, "predict_proba"):
        raise EstimatorError(f"estimator {name!r}: a {spec.task} model must have predict_proba")
    return made
