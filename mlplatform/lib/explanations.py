"""Explanations of any fitted pipeline with SHAP: each model feature's contribution to each row's output.

One explainer for the evaluation report and for the served `/explain` (shipped in the Bento):
- `tree`: the pipeline's last step explained by `shap.TreeExplainer` (scikit-learn's tree ensembles, LightGBM,
  XGBoost) on its preprocessed input, exact and fast (no background data needed);
- `linear`: a linear last step by `shap.LinearExplainer` against the background rows;
- `permutation`: anything else (a factory's pipeline, an estimator SHAP has no fast explainer for, a features
  function's columns...) by `shap.PermutationExplainer` on the model's input frame, with a bounded number of model
  evaluations per row against at most `BACKGROUND_ROWS` background rows.

Contributions are per model feature (`spec.feature_names`): a one-hot encoded feature's columns are summed back into
it. They add up exactly (SHAP's local accuracy, checked on the background rows when the explainer is built):
`base + sum(contributions) = output`, in the unit the explainer works in, `Explanation.unit`: `probability` (binary: of
the positive class; multiclass: of each class), `log_odds` (binary: expit of the sum is the positive class's
probability; multiclass: softmax over the classes' sums is their probabilities) or `value` (regression).
"""

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlplatform.lib import predictions
from mlplatform.specs import MISSING_CATEGORY, Spec

BACKGROUND_ROWS = 100  # background rows packaged with a model (the linear and permutation explainers' reference)
PERMUTATION_BACKGROUND = 50  # rows the permutation explainer masks with (each evaluation scores this many rows)
PERMUTATIONS = 2  # the permutation explainer's passes per row: 2 × (2 × features + 1) model evaluations
EXPLAINED_ROWS = 300  # holdout rows the evaluation explains (a seeded sample)
TOP_FEATURES = 5  # the report's and model card's top features per output
TOLERANCE = 1e-4  # how closely base + contributions must give the model's output to trust an explainer


_GLOBAL_RANDOM = threading.Lock()  # numpy's global generator, seeded for each row the permutation explainer explains


class ExplainerError(ValueError):
    """The pipeline could not be explained (no explainer reproduced its outputs)."""


@dataclass(frozen=True)
class Explanation:
    """Contributions of each feature to each row's outputs: `values[row, feature, output]`, `base[output]`."""

    features: list[str]
    outputs: list[str]  # binary: the positive class; multiclass: every class in the spec's order; regression: value
    values: np.ndarray
    base: np.ndarray
    unit: str  # probability, log_odds or value
    method: str  # tree, linear or permutation

    def totals(self) -> np.ndarray:
        """base + sum of contributions per row and output (the model's output, in `unit`)."""
        return self.base[None, :] + self.values.sum(axis=1)

    def rows(self) -> list[dict[str, dict[str, float]]]:
        """Per row, per output, each feature's contribution (rounded to 6 decimals)."""
        rounded = self.values.round(6)
        return [{out: dict(zip(self.features, rounded[i, :, j].tolist(), strict=True))
                 for j, out in enumerate(self.outputs)} for i in range(len(rounded))]

    def mean_abs(self) -> pd.DataFrame:
        """Global importance: the mean |contribution| of each feature (rows) to each output (columns)."""
        return pd.DataFrame(np.abs(self.values).mean(axis=0), index=self.features, columns=self.outputs)


def background(holdout: pd.DataFrame, spec: Spec, seed: int) -> pd.DataFrame:
    """The explainer's background: a seeded sample of the holdout's model inputs (the evaluation's explainer and
    the one packaged with the model use the same rows)."""
    sample = holdout.sample(n=min(BACKGROUND_ROWS, len(holdout)), random_state=seed)
    return sample[list(spec.feature_names)].reset_index(drop=True)


def explained_rows(holdout: pd.DataFrame, spec: Spec, seed: int) -> pd.DataFrame:
    """The holdout rows the evaluation explains: a seeded sample of at most `EXPLAINED_ROWS`."""
    sample = holdout.sample(n=min(EXPLAINED_ROWS, len(holdout)), random_state=seed + 1)
    return sample[list(spec.feature_names)].reset_index(drop=True)


def top_features(explanation: Explanation, top: int = TOP_FEATURES) -> pd.DataFrame:
    """Per output, the features of largest mean |contribution|, with their mean signed contribution."""
    rows = []
    for j, output in enumerate(explanation.outputs):
        values = explanation.values[:, :, j]
        strength, signed = np.abs(values).mean(axis=0), values.mean(axis=0)
        for rank, i in enumerate(np.argsort(-strength, kind="stable")[:top], start=1):
            rows.append({"output": output, "rank": rank, "feature": explanation.features[i],
                         "mean_abs_shap": float(strength[i]), "mean_shap": float(signed[i])})
    return pd.DataFrame(rows)


def frame_json(frame: pd.DataFrame) -> dict[str, Any]:
    """Rows as JSON-able columns and rows, each cell as a request carries it: a plain number or string, and a
    missing value as None."""
    rows = [[_json_cell(v) for v in row] for row in frame.astype(object).itertuples(index=False, name=None)]
    return {"features": [str(c) for c in frame.columns], "rows": rows}


def _json_cell(value: Any) -> Any:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def frame_from_json(raw: dict[str, Any], spec: Spec) -> pd.DataFrame:
    """`frame_json` back: numeric features as float64, categorical ones as strings."""
    frame = pd.DataFrame(raw["rows"], columns=raw["features"])
    for name in raw["features"]:
        if name not in spec.categorical_feature_names:
            frame[name] = frame[name].astype("float64")
    return frame


def packed(explainer: "Explainer") -> str:
    """What the Bento carries to rebuild the explainer: its method, unit, seed and background rows (JSON)."""
    import json

    return json.dumps({"method": explainer.method, "unit": explainer.unit, "seed": explainer.seed,
                       "background": frame_json(explainer.background)})


def unpacked(text: str, pipeline: Any, spec: Spec) -> "Explainer":
    """The explainer a Bento was packaged with (`packed`), rebuilt on its pipeline; it must explain the same way."""
    import json

    raw = json.loads(text)
    explainer = Explainer(pipeline, spec, frame_from_json(raw["background"], spec), seed=int(raw["seed"]))
    if (explainer.method, explainer.unit) != (raw["method"], raw["unit"]):
        raise ExplainerError(f"the packaged explainer was {raw['method']} ({raw['unit']}); rebuilt here it is "
                             f"{explainer.method} ({explainer.unit})")
    return explainer


def output_names(spec: Spec) -> list[str]:
    if spec.task == "regression":
        return ["value"]
    if spec.task == "binary":
        return [str(spec.positive_class)]
    return [str(c) for c in spec.classes]


class Explainer:
    """A SHAP explainer of one fitted pipeline for the spec's model input frames (`spec.feature_names`)."""

    def __init__(self, pipeline: Any, spec: Spec, background: pd.DataFrame, seed: int = 0) -> None:
        if not len(background):
            raise ExplainerError("an explainer needs background rows (none were given)")
        self.pipeline, self.spec, self.seed = pipeline, spec, seed
        self.features = list(spec.feature_names)
        self.background = background[self.features].head(BACKGROUND_ROWS).reset_index(drop=True)
        self.categories = {c.name: [*map(str, c.categories), MISSING_CATEGORY] for c in spec.categorical}
        check = self.background.head(20)
        expected = _as_columns(predictions.output(pipeline, check, spec))
        failures = []
        for method in ("tree", "linear", "permutation"):
            try:
                if not self._build(method):
                    continue
                explained = self.explain(check)
            except Exception as exc:  # SHAP refuses models it does not support in many ways
                failures.append(f"{method}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
                continue
            self.unit = _unit(explained.totals(), expected, spec)
            if self.unit:
                return
            failures.append(f"{method}: its contributions do not add up to the model's outputs")
        raise ExplainerError("no SHAP explainer reproduces this pipeline's outputs (" + "; ".join(failures) + ")")

    # building -----------------------------------------------------------------------------------------------
    def _build(self, method: str) -> bool:
        shap = import_shap()
        self.method, self.unit = method, ""  # the unit is found once the explainer has explained (`_unit`)
        if method == "permutation":
            codes = self._codes(self.background)
            masker = shap.maskers.Independent(codes, max_samples=PERMUTATION_BACKGROUND)
            self._explainer = shap.PermutationExplainer(self._coded_output, masker, seed=self.seed)
            return True
        split = _split(self.pipeline, self.features)
        if split is None:
            return False
        self._pre, self._estimator, self._mapping = split
        if method == "tree":
            self._explainer = shap.TreeExplainer(self._estimator)
        elif hasattr(self._estimator, "coef_") and hasattr(self._estimator, "intercept_"):
            reference = _dense(self._pre.transform(self.background))
            self._explainer = shap.LinearExplainer(self._estimator, shap.maskers.Independent(reference,
                                                                                            max_samples=len(reference)))
        else:
            return False
        return True

    # explaining ---------------------------------------------------------------------------------------------
    def explain(self, frame: pd.DataFrame) -> Explanation:
        """Each feature's contribution to each row's outputs (model input rows: `spec.feature_names`)."""
        frame = frame[self.features]
        if self.method == "permutation":
            values, base = self._permutations(self._codes(frame))
            return Explanation(self.features, output_names(self.spec), values, base, self.unit, self.method)
        return self.explain_encoded(_dense(self._pre.transform(frame)))

    @property
    def encoded(self) -> bool:
        """True when the explainer works on the preprocessed input (`explain_encoded`): tree and linear."""
        return self.method in ("tree", "linear")

    def explain_encoded(self, x: np.ndarray) -> Explanation:
        """`explain` for rows already preprocessed as the pipeline does (e.g. by the serving scorer's compiled
        preprocessing): tree and linear explainers only."""
        assert self.encoded, self.method
        predictions.output(self._estimator, x, self.spec)  # rows the model refuses (ValueError) are not explained
        kwargs = {"check_additivity": False} if self.method == "tree" else {}
        raw = np.asarray(self._explainer.shap_values(x, **kwargs), dtype="float64")
        values = np.einsum("nmo,mk->nko", raw.reshape(len(x), x.shape[1], -1), self._mapping)
        base = np.atleast_1d(np.asarray(self._explainer.expected_value, dtype="float64")).reshape(-1)
        values, base = self._task_outputs(values, base)
        return Explanation(self.features, output_names(self.spec), values, base, self.unit, self.method)

    def _permutations(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The permutation explainer row by row, each row's permutations drawn from the seed: a row gets the same
        contributions whatever else is explained with it (in the report or in a request). SHAP draws them from
        numpy's global generator, whose state is put back afterwards."""
        evals = PERMUTATIONS * (2 * len(self.features) + 1)
        values, base = [], None
        with _GLOBAL_RANDOM:
            state = np.random.get_state()
            try:
                for row in codes:
                    np.random.seed(self.seed)
                    result = self._explainer(row[None, :], max_evals=evals, silent=True)
                    values.append(np.asarray(result.values, dtype="float64").reshape(len(self.features), -1))
                    base = np.asarray(result.base_values, dtype="float64").reshape(-1)
            finally:
                np.random.set_state(state)
        assert base is not None  # at least one row
        return np.stack(values), base

    def _task_outputs(self, values: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The estimator's outputs as the task's: the positive class (binary), the spec's class order."""
        spec = self.spec
        if spec.task == "regression":
            return values[:, :, :1], base[:1]
        classes = [str(c) for c in getattr(self._estimator, "classes_", spec.classes)]
        if values.shape[2] == 1:  # one margin (binary), of the estimator's second class
            if spec.task != "binary" or len(classes) != 2:
                raise ExplainerError(f"one output for a model of {len(classes)} classes")
            sign = 1.0 if str(spec.positive_class) == classes[1] else -1.0
            return sign * values, sign * base
        if values.shape[2] != len(classes):
            raise ExplainerError(f"{values.shape[2]} outputs for a model of {len(classes)} classes")
        wanted = [str(spec.positive_class)] if spec.task == "binary" else [str(c) for c in spec.classes]
        order = [classes.index(c) for c in wanted]
        return values[:, :, order], base[order]

    # the permutation explainer's input: categories as codes (SHAP masks numbers) ---------------------------
    def _codes(self, frame: pd.DataFrame) -> np.ndarray:
        out = np.empty((len(frame), len(self.features)), dtype="float64")
        for j, name in enumerate(self.features):
            column = frame[name]
            if name in self.categories:
                lookup = {c: i for i, c in enumerate(self.categories[name])}
                out[:, j] = [lookup.get(MISSING_CATEGORY if v is None else str(v), -1) for v in column]
            else:
                out[:, j] = column.to_numpy(dtype="float64", na_value=np.nan)
        return out

    def _coded_output(self, codes: np.ndarray) -> np.ndarray:
        frame = pd.DataFrame(codes, columns=self.features)
        for name, categories in self.categories.items():
            values = np.asarray(categories + ["(unseen)"], dtype=object)
            frame[name] = values[codes[:, self.features.index(name)].astype(int)]
        return predictions.output(self.pipeline, frame, self.spec)


def import_shap() -> Any:
    """`shap`, with its few numba-compiled helpers left as plain Python: they are small loops, as fast here either
    way, and compiling them costs ~10 s in every process that explains a model (the setting is restored at once, so
    other numba code in the process is compiled as usual)."""
    import sys

    if "shap" in sys.modules:
        return sys.modules["shap"]
    from numba.core import config

    previous = config.DISABLE_JIT  # type: ignore[attr-defined]  # set from the environment at import
    config.DISABLE_JIT = True  # type: ignore[attr-defined]
    try:
        import shap
    finally:
        config.DISABLE_JIT = previous  # type: ignore[attr-defined]
    return shap


def _as_columns(out: np.ndarray) -> np.ndarray:
    return out.reshape(len(out), -1)


def _unit(totals: np.ndarray, expected: np.ndarray, spec: Spec) -> str:
    """Which unit makes base + contributions the model's output ("" when none does)."""
    from scipy.special import expit, softmax

    def close(a: np.ndarray) -> bool:
        return a.shape == expected.shape and bool(np.allclose(a, expected, rtol=TOLERANCE, atol=TOLERANCE))

    if spec.task == "regression":
        return "value" if close(totals) else ""
    if close(totals):
        return "probability"
    if spec.task == "binary" and close(expit(totals)):
        return "log_odds"
    if spec.task == "multiclass" and close(softmax(totals, axis=1)):
        return "log_odds"
    return ""


def _dense(x: Any) -> np.ndarray:
    return np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype="float64")


def _split(pipeline: Any, features: list[str]) -> tuple[Any, Any, np.ndarray] | None:
    """(preprocessing, estimator, mapping) of a scikit-learn Pipeline whose preprocessing names its output columns
    after the model features (a (columns × features) 0/1 matrix: which feature each column encodes); None else."""
    from sklearn.pipeline import Pipeline

    if not isinstance(pipeline, Pipeline) or len(pipeline) < 2:
        return None
    pre, estimator = pipeline[:-1], pipeline[-1]
    try:
        names = [str(n) for n in pre.get_feature_names_out(features)]
    except Exception:  # a step that cannot name its outputs
        return None
    mapping = np.zeros((len(names), len(features)))
    by_length = sorted(features, key=len, reverse=True)
    for i, name in enumerate(names):
        bare = name.split("__", 1)[1] if "__" in name and name.split("__", 1)[0] not in features else name
        owner = next((f for f in by_length if bare == f or bare.startswith(f + "_")), None)
        if owner is None:
            return None
        mapping[i, features.index(owner)] = 1.0
    return pre, estimator, mapping
