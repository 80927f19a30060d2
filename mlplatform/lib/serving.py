"""What a served model needs besides BentoML: request schemas from the spec, scoring, and API-key auth."""

import hmac
import json
import os
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, create_model

from scipy.special import expit

from mlplatform.lib.features import derive, featurize
from mlplatform.specs import Spec

MAX_ROWS = 1000
MAX_BODY_BYTES = 1_000_000
OPEN_PATHS = ("/livez", "/readyz", "/metrics", "/docs", "/docs.json")
API_KEY_HEADER = "x-api-key"


class Prediction(BaseModel):
    """The answer of `predict`: one probability and label per row, which model answered, a request id."""

    request_id: str
    model: str
    model_version: str
    probabilities: list[float]
    labels: list[int]


SAFEGUARDS = ("validation", "metrics")


def switch(name: str, env: str, environ: MutableMapping[str, str] | None = None, default: bool = True) -> bool:
    """An on/off serving switch (MLPLATFORM_<NAME>=on|off); switching a safeguard off is for `local` only."""
    environ = os.environ if environ is None else environ
    variable = f"MLPLATFORM_{name.upper()}"
    value = environ.get(variable, "on" if default else "off").strip().lower()
    if value not in ("on", "off"):
        raise ValueError(f"{variable}={value!r}: expected on or off")
    if value == "off" and name in SAFEGUARDS and env != "local":
        raise ValueError(f"{variable}=off is refused in {env}: only local may disable it")
    return value == "on"


def service_config(env: str, routes: tuple[str, ...], environ: MutableMapping[str, str] | None = None) -> dict[str, Any]:
    """BentoML service config for the hot path: no per-request access log or trace span unless asked for.

    Every answer is recorded by the platform's own prediction log and BentoML's Prometheus metrics; BentoML's
    access log line and OpenTelemetry span cost about a fifth of a request's server time, so they are opt-in
    (MLPLATFORM_ACCESS_LOG=on, MLPLATFORM_TRACING=on). MLPLATFORM_METRICS=off is for measuring their cost only.
    """
    tracing = switch("tracing", env, environ, default=False)
    config: dict[str, Any] = {"logging": {"access": {"enabled": switch("access_log", env, environ, default=False)}},
                              "metrics": {"enabled": switch("metrics", env, environ)}}
    if not tracing:
        config["tracing"] = {"excluded_urls": list(routes)}
    return config


def row_model(spec: Spec) -> type[BaseModel]:
    """One request row: every contract feature, typed and range-checked; unknown fields are rejected."""
    fields: dict[str, Any] = {}
    for col in spec.numeric:
        kind = int if col.integer else float
        kind = kind | None if col.nullable else kind
        fields[col.name] = (kind, Field(ge=col.min, le=col.max, allow_inf_nan=False, strict=False))
    for col in spec.categorical:
        kind = Literal[col.categories]  # type: ignore[valid-type]
        fields[col.name] = (kind | None if col.nullable else kind, ...)
    return create_model(f"{spec.name.title()}Row", __config__=ConfigDict(extra="forbid"), **fields)


def rows_field(spec: Spec, max_rows: int = MAX_ROWS) -> Any:
    """The `rows` parameter of `predict`: 1 to `max_rows` rows."""
    return list[row_model(spec)], Field(min_length=1, max_length=max_rows)


def request_model(spec: Spec, max_rows: int = MAX_ROWS) -> type[BaseModel]:
    """The body of `predict` ({"rows": [...]}), the same validation BentoML applies to the API's parameter."""
    rows_type, field = rows_field(spec, max_rows)
    return create_model(f"{spec.name.title()}PredictRequest", __config__=ConfigDict(extra="forbid"),
                        rows=(rows_type, field))


def unchecked_request() -> type[BaseModel]:
    """A `predict` body parsed without the spec's checks: only for measuring what validation costs (local)."""

    class Unchecked(BaseModel):
        rows: list[dict[str, Any]]

    return Unchecked


class PredictionMetrics:
    """Prometheus series of the service's answers, exported on BentoML's /metrics next to its own.

    mlplatform_predictions_total{model, model_version, predicted_class}: rows answered, by predicted label;
    mlplatform_prediction_score{model, model_version}: histogram of the positive-class probability;
    mlplatform_request_rows{model, model_version}: histogram of rows per request.
    """

    SCORE_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    ROW_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)

    def __init__(self, model: str, enabled: bool = True) -> None:
        self.model, self.enabled = model, enabled
        if not enabled:
            return
        import bentoml

        labels = ["model", "model_version"]
        self.predictions = bentoml.metrics.Counter(name="mlplatform_predictions", documentation="Rows answered by "
                                                   "predicted class", labelnames=[*labels, "predicted_class"])
        self.scores = bentoml.metrics.Histogram(name="mlplatform_prediction_score", labelnames=labels,
                                                documentation="Positive-class probability per answered row",
                                                buckets=self.SCORE_BUCKETS)
        self.rows = bentoml.metrics.Histogram(name="mlplatform_request_rows", labelnames=labels,
                                              documentation="Rows per prediction request", buckets=self.ROW_BUCKETS)

    def record(self, version: str, proba: list[float], labels: list[int]) -> None:
        if not self.enabled:
            return
        positives = sum(labels)
        if positives:
            self.predictions.labels(self.model, version, "1").inc(positives)
        if positives < len(labels):
            self.predictions.labels(self.model, version, "0").inc(len(labels) - positives)
        scores = self.scores.labels(self.model, version)
        for p in proba:
            scores.observe(p)
        self.rows.labels(self.model, version).observe(len(labels))


class Scorer:
    """A fitted pipeline compiled for requests: rows straight into the model's input matrix, no DataFrame.

    The scaler's and one-hot encoder's fitted state is applied with numpy (for a request of a few rows pandas
    and the ColumnTransformer cost ~50x the model itself); derived features go through the training code
    (`features.derive`). A pipeline of another shape is scored through `featurize` and the pipeline itself.
    """

    def __init__(self, pipeline: Any, spec: Spec) -> None:
        self.pipeline, self.spec = pipeline, spec
        self.numeric = [c.name for c in spec.numeric]
        self.derived = [d.name for d in spec.derived]
        self.categorical = spec.categorical_feature_names
        self.compiled = self._compile(pipeline)

    def _compile(self, pipeline: Any) -> bool:
        from sklearn.compose import ColumnTransformer
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        pre, self.estimator = pipeline[0], pipeline[-1]
        if len(pipeline) != 2 or not isinstance(pre, ColumnTransformer) or pre.remainder != "drop":
            return False
        parts = {name: (step, list(cols)) for name, step, cols in pre.transformers_ if name != "remainder"}
        scaler, numeric_cols = parts.get("numeric", (None, []))
        encoder, categorical_cols = parts.get("categorical", (None, []))
        if (not isinstance(scaler, StandardScaler) or not isinstance(encoder, OneHotEncoder)
                or numeric_cols != self.numeric + self.derived or categorical_cols != self.categorical
                or encoder.handle_unknown != "ignore" or encoder.drop is not None or getattr(encoder, "sparse_output", True)
                or getattr(encoder, "_infrequent_enabled", False) or set(parts) != {"numeric", "categorical"}):
            return False
        self.mean = scaler.mean_ if scaler.with_mean else np.zeros(len(numeric_cols))
        self.scale = scaler.scale_ if scaler.with_std else np.ones(len(numeric_cols))
        self.offsets, width = [], len(numeric_cols)
        for cats in encoder.categories_:
            self.offsets.append({str(c): width + i for i, c in enumerate(cats)})
            width += len(cats)
        self.width = width
        self.linear = (isinstance(self.estimator, LogisticRegression) and len(self.estimator.classes_) == 2)
        return True

    def matrix(self, rows: list[dict[str, Any]]) -> np.ndarray:
        """The model's input for contract rows (validated dicts), exactly as the fitted preprocessing makes it."""
        n = len(rows)
        numeric = np.array([[np.nan if r[c] is None else r[c] for c in self.numeric] for r in rows], dtype="float64")
        numeric = numeric.reshape(n, len(self.numeric))
        columns = {c: numeric[:, i] for i, c in enumerate(self.numeric)}
        out = np.zeros((n, self.width))
        out[:, :len(self.numeric)] = numeric
        for j, feature in enumerate(self.spec.derived):
            out[:, len(self.numeric) + j] = derive(columns, feature)
        k = len(self.numeric) + len(self.derived)
        out[:, :k] -= self.mean
        out[:, :k] /= self.scale
        for offsets, name in zip(self.offsets, self.categorical, strict=True):
            for i, row in enumerate(rows):
                column = offsets.get(str(row[name]))
                if column is not None:  # a category not seen in training is all zeros (handle_unknown="ignore")
                    out[i, column] = 1.0
        return out

    def proba(self, rows: list[dict[str, Any]]) -> np.ndarray:
        """Probability of the positive class per row."""
        if not self.compiled:
            frame = featurize(pd.DataFrame(rows), self.spec, keys=False)[self.spec.feature_names]
            return np.asarray(self.pipeline.predict_proba(frame))[:, 1]
        x = self.matrix(rows)
        if self.linear:  # LogisticRegression.predict_proba for two classes, without its per-call input checks
            return expit(x @ self.estimator.coef_[0] + self.estimator.intercept_[0])
        return np.asarray(self.estimator.predict_proba(x))[:, 1]

    def score(self, rows: list[dict[str, Any]], threshold: float) -> tuple[list[float], list[int]]:
        proba = self.proba(rows)
        return proba.round(6).tolist(), (proba >= threshold).astype(int).tolist()


def score(model: Any, spec: Spec, rows: list[BaseModel] | pd.DataFrame, threshold: float) -> tuple[list[float], list[int]]:
    """Probabilities of the positive class and labels at `threshold`, through the training feature code."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame([r.model_dump() for r in rows])
    x = featurize(frame, spec, keys=False)[spec.feature_names]
    proba = np.asarray(model.predict_proba(x))[:, 1]
    return proba.round(6).tolist(), (proba >= threshold).astype(int).tolist()


def request_id() -> str:
    return uuid.uuid4().hex


def load_api_keys(environ: MutableMapping[str, str] | None = None) -> list[bytes]:
    """Keys from MLPLATFORM_API_KEYS (comma-separated) and/or the file named by MLPLATFORM_API_KEYS_FILE."""
    environ = os.environ if environ is None else environ
    keys = [k.strip() for k in environ.get("MLPLATFORM_API_KEYS", "").split(",") if k.strip()]
    path = environ.get("MLPLATFORM_API_KEYS_FILE")
    if path:
        keys += [line.strip() for line in Path(path).read_text().splitlines() if line.strip() and not line.startswith("#")]
    return [k.encode() for k in keys]


def auth_required(env: str, environ: MutableMapping[str, str] | None = None) -> bool:
    """Auth is on in staging and production; only `local` may switch it off (MLPLATFORM_AUTH=off)."""
    environ = os.environ if environ is None else environ
    setting = environ.get("MLPLATFORM_AUTH", "off" if env == "local" else "on")
    if setting == "off" and env != "local":
        raise ValueError(f"MLPLATFORM_AUTH=off is refused in {env}: only local may disable auth")
    return setting != "off"


def key_matches(given: str | None, keys: list[bytes]) -> bool:
    """Constant-time comparison against every configured key (no early exit on the first match)."""
    if not given:
        return False
    candidate, found = given.encode(), False
    for key in keys:
        found |= hmac.compare_digest(candidate, key)
    return found


Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


class Guard:
    """ASGI middleware: API key check and request body size limit; health and metrics stay open."""

    def __init__(self, app: ASGIApp, keys: list[bytes], required: bool, max_body: int = MAX_BODY_BYTES) -> None:
        self.app, self.keys, self.required, self.max_body = app, keys, required, max_body

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        if self.required and not key_matches(headers.get(API_KEY_HEADER.encode(), b"").decode() or None, self.keys):
            return await _reply(send, 401, f"missing or invalid API key (header {API_KEY_HEADER})")
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            return await _reply(send, 413, f"request body of {int(length)} bytes exceeds the limit of {self.max_body}")
        if length is None:  # chunked: read up to the limit here, so an oversized body is a 413, not an app error
            messages = await _read_body(receive, self.max_body)
            if messages is None:
                return await _reply(send, 413, f"request body exceeds the limit of {self.max_body} bytes")
            receive = _replay(messages, receive)
        return await self.app(scope, receive, send)


async def _read_body(receive: Callable[[], Awaitable[Any]], limit: int) -> list[Any] | None:
    """Every body message of a request, or None once they add up to more than `limit` bytes."""
    messages, seen = [], 0
    while True:
        message = await receive()
        messages.append(message)
        seen += len(message.get("body", b""))
        if seen > limit:
            return None
        if message["type"] != "http.request" or not message.get("more_body", False):
            return messages


def _replay(messages: list[Any], receive: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
    """A receive that hands the app the messages already read, then the live channel (disconnects)."""
    pending = list(messages)

    async def wrapped() -> Any:
        return pending.pop(0) if pending else await receive()

    return wrapped


async def _reply(send: Callable[[Any], Awaitable[None]], status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
