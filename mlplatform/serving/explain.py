"""`/explain`: each feature's contribution to the model's output for the rows sent, from the SHAP explainer packaged
with the model (`explainer.json`, `lib/explanations.py`).

The same rows as `/predict` (typed, range-checked, unknown fields refused), at most `MAX_EXPLAIN_ROWS` per request:
a tree or linear explainer costs a few milliseconds per request, the model-agnostic one tens of milliseconds per
row (`benchmarks/bench_serving.py`, `bento_explain`). The explainer is built on the first request (SHAP's import
takes seconds), in a worker thread. Contributions that are not finite numbers are never answered with a 2xx.
"""

import asyncio
import threading
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from mlplatform.lib import explanations
from mlplatform.lib.features.featurize import featurize
from mlplatform.serving.answer import Unscorable, request_id, unscorable
from mlplatform.serving.scorer import Scorer
from mlplatform.specs import Spec

MAX_EXPLAIN_ROWS = 20


class Explained(BaseModel):
    """The answer of `/explain`."""

    request_id: str
    model: str
    model_version: str
    method: Literal["tree", "linear", "permutation"] = Field(
        description="SHAP's explainer: tree and linear exact for the model, permutation model-agnostic")
    unit: Literal["probability", "log_odds", "value"] = Field(
        description="What base + contributions add up to: the probability, its log-odds (binary: expit gives the "
                    "probability; multiclass: softmax over the classes), or the predicted value")
    outputs: list[str] = Field(description="binary: the positive class; multiclass: every class; regression: value")
    base: dict[str, float] = Field(description="Per output, the expected output over the background rows")
    contributions: list[dict[str, dict[str, float]]] = Field(
        description="Per row, per output, each feature's contribution")


class NoExplainer(RuntimeError):
    """The Bento carries no usable explainer (the reason is the message)."""


class Explanations:
    """The packaged explainer, built once on first use, and the answers of `/explain`."""

    def __init__(self, spec: Spec, scorer: Scorer, packed: Path, model_version: str) -> None:
        self.spec, self.scorer, self.packed, self.version = spec, scorer, packed, model_version
        self._explainer: explanations.Explainer | None = None
        self._problem = ""
        self._lock = threading.Lock()

    def explainer(self) -> explanations.Explainer:
        with self._lock:
            if self._explainer is None and not self._problem:
                self._problem = self._load()
            if self._explainer is None:
                raise NoExplainer(self._problem)
            return self._explainer

    def _load(self) -> str:
        import json

        if not self.packed.exists():
            return "this model was packaged without an explainer"
        text = self.packed.read_text()
        problem = json.loads(text).get("problem")
        if problem:
            return f"this model has no explainer: {problem}"
        try:
            self._explainer = explanations.unpacked(text, self.scorer.pipeline, self.spec)
        except explanations.ExplainerError as exc:
            return str(exc)
        return ""

    def answer(self, rows: list[dict[str, Any]]) -> Explained:
        """Contributions for validated request rows (raises `NoExplainer`, or `Unscorable` for rows the model
        refuses)."""
        explainer = self.explainer()
        try:
            if explainer.encoded and self.scorer.compiled:  # the scorer's preprocessing: no DataFrame
                explained = explainer.explain_encoded(self.scorer.matrix(rows))
            else:
                explained = explainer.explain(featurize(pd.DataFrame(rows), self.spec, keys=False))
        except ValueError as exc:  # the model refused the rows (e.g. a missing value its pipeline does not impute)
            raise unscorable(rows, exc) from exc
        finite = np.isfinite(explained.values).all(axis=(1, 2))
        if not finite.all() or not np.isfinite(explained.base).all():
            raise Unscorable(rows, np.flatnonzero(~finite).tolist() or list(range(len(rows))))
        return Explained(request_id=request_id(), model=self.spec.model_name, model_version=self.version,
                         method=explained.method, unit=explained.unit, outputs=explained.outputs,  # type: ignore[arg-type]
                         base=dict(zip(explained.outputs, explained.base.round(6).tolist(), strict=True)),
                         contributions=explained.rows())

    async def answer_async(self, rows: list[dict[str, Any]]) -> Explained:
        return await asyncio.to_thread(self.answer, rows)
