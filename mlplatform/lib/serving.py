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

from mlplatform.lib.features import featurize
from mlplatform.specs import Spec

MAX_ROWS = 1000
MAX_BODY_BYTES = 1_000_000
OPEN_PATHS = ("/livez", "/readyz", "/metrics", "/docs", "/docs.json")
API_KEY_HEADER = "x-api-key"


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
