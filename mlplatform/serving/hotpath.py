"""The service's hot path: `POST /predict` answered by one lean ASGI handler, with loop-tick micro-batching.

Per request BentoML's API dispatch (routing, request object, IO descriptors, signature inspection, context and
exception middlewares) costs more server CPU than parsing, validating and scoring a row. The handler runs inside
the BentoML service as ASGI middleware, so BentoML still serves it (workers, health, Prometheus request metrics,
timeouts, concurrency limits) and the service's `@bentoml.api predict` stays its documented contract: the same
pydantic request model, the same `Scorer`, the same answer and the same 400 for bad input. Requests that arrive
together (those the event loop reads in one pass) are scored in one call: no timer, so a lone request waits for
nothing.
"""

import asyncio
import json
from typing import Any

import numpy as np
from pydantic import BaseModel, ValidationError

from mlplatform.serving.answer import Answers, Unscorable, unscorable
from mlplatform.serving.asgi import ASGIApp, Receive, Scope, Send, read_body, send_json
from mlplatform.serving.predlog import PredictionLog, role_of
from mlplatform.serving.request import Prediction
from mlplatform.serving.scorer import Scorer

MAX_BATCH_ROWS = 4096


class MicroBatcher:
    """Scores the rows of every request submitted in one event-loop pass with a single model call."""

    def __init__(self, scorer: Scorer, max_rows: int = MAX_BATCH_ROWS) -> None:
        self.scorer, self.max_rows = scorer, max_rows
        self.pending: list[tuple[list[dict[str, Any]], asyncio.Future[np.ndarray]]] = []
        self.pending_rows = 0
        self.batches = 0
        self.requests = 0

    async def output(self, rows: list[dict[str, Any]]) -> np.ndarray:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if not self.pending:
            loop.call_soon(self.flush)  # after every request already read in this pass of the loop
        self.pending.append((rows, future))
        self.pending_rows += len(rows)
        if self.pending_rows >= self.max_rows:
            self.flush()
        return await future

    def flush(self) -> None:
        batch, self.pending, self.pending_rows = self.pending, [], 0
        if not batch:
            return
        self.batches += 1
        self.requests += len(batch)
        try:
            proba = self.scorer.output([row for rows, _ in batch for row in rows])
        except Exception:  # noqa: BLE001 - one request's rows may be what the model refuses: score each alone
            for rows, future in batch:
                try:
                    alone = self.scorer.output(rows)
                except Exception as exc:  # noqa: BLE001 - that request gets the error
                    if not future.done():
                        future.set_exception(exc)
                    continue
                if not future.done():
                    future.set_result(alone)
            return
        start = 0
        for rows, future in batch:
            if not future.done():
                future.set_result(proba[start:start + len(rows)])
            start += len(rows)


class Target:
    """What the hot path answers with: bound by the service instance once its model is loaded."""

    def __init__(self) -> None:
        self.batcher: MicroBatcher | None = None
        self.answers: Answers | None = None
        self.log = PredictionLog(None, "", "")
        self.enabled = True

    def bind(self, scorer: Scorer, answers: Answers, log: PredictionLog) -> None:
        self.batcher, self.answers, self.log = MicroBatcher(scorer), answers, log

    async def answer(self, rows: list[dict[str, Any]]) -> Prediction:
        assert self.batcher is not None and self.answers is not None
        try:
            out = await self.batcher.output(rows)
        except ValueError as exc:
            raise unscorable(rows, exc) from exc
        return self.answers.build(out, rows)


class HotPath:
    """ASGI middleware: answers `POST <path>` through `target`; everything else goes to the BentoML app."""

    def __init__(self, app: ASGIApp, target: Target, request_model: type[BaseModel], path: str = "/predict") -> None:
        self.app, self.target, self.request_model, self.path = app, target, request_model, path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST"
                or not self.target.enabled or self.target.batcher is None):
            return await self.app(scope, receive, send)
        body = await read_body(receive)  # the guard in front has already refused bodies over the size limit
        try:
            request = self.request_model.model_validate_json(body)
        except ValidationError as exc:
            return await send_json(send, 400, _invalid(exc))
        rows = request.rows  # type: ignore[attr-defined]
        try:
            prediction = await self.target.answer([r if isinstance(r, dict) else r.model_dump() for r in rows])
        except Unscorable as exc:
            return await send_json(send, 422, {"error": str(exc)})
        answer = prediction.model_dump_json().encode()
        log = self.target.log  # before the answer leaves
        log.append_raw(body, answer, role_of(scope.get("headers", []), log.smoke_token))
        await send_json(send, 200, answer)


def _invalid(exc: ValidationError) -> bytes:
    """The 400 body BentoML gives for an invalid API input: a summary and pydantic's errors (loc names the field)."""
    count = exc.error_count()
    detail = exc.errors(include_input=False, include_context=False)
    return json.dumps({"error": f"{count} validation error{'s' if count > 1 else ''} for Input", "detail": detail},
                      default=str).encode()
