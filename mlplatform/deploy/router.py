"""The embedded deployer's front door: one process per environment on a fixed loopback port.

It forwards every request to the backends of the environment's deployment record (`bentoml serve` processes on
loopback ports) and re-reads the record whenever it changes, so traffic moves between backends without a
restart and without dropping a request (in-flight requests finish on the backend they started on).
Strategies: blue_green (everything to the primary), canary (a share of entities to the candidate, sticky by
entity id), shadow (the primary answers; the candidate scores a copy in the background, logged, never returned).
Answers carry `x-mlplatform-answered-by` (primary | candidate) and `x-mlplatform-model-version`.
`GET /-/router` reports the record sequence it serves. A record that does not validate is logged and ignored.

Run: `python -m mlplatform.deploy.router --root DEPLOYMENTS --env staging --port 3100` (the deployer starts it).
"""

import argparse
import asyncio
import json
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from mlplatform.deploy.records import Backend, DeploymentError, Deployments, Record
from mlplatform.serving.asgi import read_body, send_json
from mlplatform.serving.auth import API_KEY_HEADER, key_matches
from mlplatform.serving.predlog import ROLE_HEADER as PREDICTION_LOG_ROLE_HEADER
from mlplatform.serving.settings import load_api_keys

log = logging.getLogger("mlplatform.router")
CLIENT_IDLE_S = 75  # > what clients keep an idle connection for
HOP_BY_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"te", b"upgrade", b"host", b"content-length",
              b"proxy-connection", b"trailer"}
SHADOW_QUEUE = 256
SHADOWED = ("/predict", "/predict_entity")  # what the shadow scores a copy of (not /explain or /info)
ROLE = PREDICTION_LOG_ROLE_HEADER.encode()  # tells the backend how it was asked, for its prediction log


def entity_key(headers: dict[bytes, bytes], body: bytes) -> str | None:
    """The entity a request is about: the `x-entity-id` header, else the first of `entity_ids` in the body."""
    if b"x-entity-id" in headers:
        return headers[b"x-entity-id"].decode(errors="replace")
    if b'"entity_ids"' in body:
        try:
            ids = json.loads(body).get("entity_ids") or []
        except (ValueError, AttributeError):
            return None
        return str(ids[0]) if ids else None
    return None


class Router:
    """ASGI app: forwards to the record's backends, following the record file."""

    def __init__(self, deployments: Deployments, env: str, poll_s: float = 0.1) -> None:
        self.deployments, self.env, self.poll_s = deployments, env, poll_s
        self.path = deployments.record_path(env)
        self.record: Record | None = None
        self.session: aiohttp.ClientSession | None = None  # one keep-alive pool for every backend
        self.fresh: aiohttp.ClientSession | None = None  # a new connection per request (the retry of a dropped one)
        self.seen: tuple[int, int] | None = None
        self.problem: str | None = None
        self.shadow_log = deployments.env_dir(env) / "shadow.jsonl"
        self.shadow_slots = asyncio.Semaphore(SHADOW_QUEUE)
        self.shadow_dropped = 0
        self.failed_over = 0  # the record sequence the router last failed over for

    # --- record ----------------------------------------------------------------------------------------------
    def reload(self) -> None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return
        marker = (stat.st_mtime_ns, stat.st_size)
        if marker == self.seen:
            return
        self.seen = marker
        try:
            record = self.deployments.read(self.env)
        except DeploymentError as exc:
            self.problem = str(exc)
            log.error("%s", exc)
            return
        if record is None or (self.record is not None and record.sequence == self.record.sequence):
            return
        self.record, self.problem = record, None
        log.info("serving record %s of %s: %s", record.sequence, self.env, record.strategy)

    async def watch(self) -> None:
        while True:
            self.reload()
            await asyncio.sleep(self.poll_s)

    # --- ASGI ------------------------------------------------------------------------------------------------
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return await self._lifespan(receive, send)
        if scope["type"] != "http":
            return
        if scope["path"] == "/-/router":
            return await send_json(send, 200, self.state(dict(scope.get("headers") or [])))
        record = self.record
        if record is None:
            return await send_json(send, 503, {"error": f"nothing is deployed in {self.env}"})
        body = await read_body(receive)
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        canary = record.strategy == "canary"  # only then does the entity decide (and the body get looked into)
        role = record.role_for(entity_key(headers, body) or uuid.uuid4().hex) if canary else "primary"
        backend = record.candidate if role == "candidate" else record.primary
        assert backend is not None  # a canary record has a candidate (the record validates it)
        try:
            status, answer_headers, content = await self._answer(backend, scope, headers, body, role)
        except aiohttp.ClientConnectionError as exc:  # refused, reset or dropped: no answer at all (or timed out)
            if isinstance(exc, TimeoutError) or role != "primary" or record.standby is None:
                return await send_json(send, 502, {"error": f"backend {backend.bento_tag} on port {backend.port} "
                                                         f"did not answer: {type(exc).__name__}"})
            # the primary is gone (refused, or dropped the connection): the warm standby answers instead
            backend, role = record.standby, "standby"
            self._failed_over(record, exc)
            try:
                status, answer_headers, content = await self._answer(backend, scope, headers, body, role)
            except (TimeoutError, aiohttp.ClientError) as again:
                return await send_json(send, 502, {"error": f"neither the primary nor the standby of {self.env} "
                                                         f"answered: {type(exc).__name__}, {type(again).__name__}"})
        except (TimeoutError, aiohttp.ClientError) as exc:
            return await send_json(send, 502, {"error": f"backend {backend.bento_tag} on port {backend.port} did not "
                                                     f"answer: {type(exc).__name__}"})
        out_headers = [(k, v) for k, v in answer_headers if k.lower() not in HOP_BY_HOP] + [
            (b"x-mlplatform-answered-by", role.encode()),
            (b"x-mlplatform-model-version", backend.model_version.encode()),
            (b"content-length", str(len(content)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": out_headers})
        await send({"type": "http.response.body", "body": content})
        if (record.strategy == "shadow" and record.candidate is not None and scope["method"] == "POST"
                and scope["path"] in SHADOWED):
            self._mirror(record.candidate, scope, headers, body, content)

    def _failed_over(self, record: Record, exc: Exception) -> None:
        """The first failover of a record is logged and audited (`mlplatform audit`); `mlplatform status` shows
        the primary DOWN until `mlplatform serve` restarts it."""
        if self.failed_over == record.sequence:
            return
        self.failed_over = record.sequence
        assert record.standby is not None
        reason = (f"primary {record.primary.bento_tag} (v{record.primary.model_version}, port {record.primary.port}) "
                  f"does not answer ({type(exc).__name__}): the standby v{record.standby.model_version} answers")
        log.error("%s", reason)
        try:
            self.deployments.audit("failover", self.env, reason, record, record.model_copy(
                update={"primary": record.standby, "standby": None}), who="router")
        except OSError as err:  # the answer matters more than the audit line
            log.error("could not write the failover to the audit log: %s", err)

    def state(self, headers: dict[bytes, bytes]) -> dict[str, Any]:
        """What the router serves; where it runs from (home, pid) and its problem only for a key of the
        environment (the deployer sends one): they name paths of the machine."""
        record = self.record
        public = {"env": self.env, "sequence": record.sequence if record else None,
                  "strategy": record.strategy if record else None}
        given = headers.get(API_KEY_HEADER.encode(), b"").decode(errors="replace") or None
        keys_file = self.deployments.env_dir(self.env) / "api-keys"
        keys = load_api_keys({"MLPLATFORM_API_KEYS_FILE": str(keys_file)}) if keys_file.exists() else []
        if not key_matches(given, keys):
            return public
        return public | {"root": str(self.deployments.root), "pid": os.getpid(), "problem": self.problem,
                         "shadow_dropped": self.shadow_dropped}

    async def _answer(self, backend: Backend, scope: dict[str, Any], headers: dict[bytes, bytes], body: bytes,
                      role: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """`_forward`, tried once more on a fresh connection when the backend dropped the one it was sent on (a
        keep-alive connection it had just closed); a backend that refuses connections is not tried again."""
        try:
            return await self._forward(backend, scope, headers, body, role)
        except aiohttp.ClientConnectorError:
            raise  # refused: no process listens there any more
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):  # a reused connection, dropped
            return await self._forward(backend, scope, headers, body, role, fresh=True)

    async def _forward(self, backend: Backend, scope: dict[str, Any], headers: dict[bytes, bytes],
                       body: bytes, role: str, fresh: bool = False) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """The backend's status, headers and body for the request (aiohttp: httpx's async client cost ~2 ms here)."""
        session = self.fresh if fresh else self.session
        assert session is not None
        url = f"http://{backend.host}:{backend.port}{scope['path']}"
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode()
        forwarded = {k.decode(): v.decode(errors="replace") for k, v in headers.items()
                     if k not in HOP_BY_HOP and k != ROLE} | {PREDICTION_LOG_ROLE_HEADER: role}
        async with session.request(scope["method"], url, data=body, headers=forwarded) as answer:
            return answer.status, list(answer.raw_headers), await answer.read()

    def _mirror(self, candidate: Backend, scope: dict[str, Any], headers: dict[bytes, bytes], body: bytes,
                primary: bytes) -> None:
        if self.shadow_slots.locked():  # never let the shadow fall behind without bound
            self.shadow_dropped += 1
            return

        async def run() -> None:
            async with self.shadow_slots:
                start = time.perf_counter()
                entry: dict[str, Any] = {"at": time.time(), "path": scope["path"]}
                try:
                    primary_body = json.loads(primary)
                    entry.update(request_id=primary_body.get("request_id"),
                                 primary_version=primary_body.get("model_version"),
                                 primary=_outputs(primary_body))
                except ValueError:
                    pass
                try:
                    status, _, shadow = await self._forward(candidate, scope, headers, body, "shadow")
                    entry.update(status=status, shadow_version=candidate.model_version,
                                 shadow=_outputs(json.loads(shadow)) if status == 200 else None)
                except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
                    entry.update(status=None, error=type(exc).__name__, shadow_version=candidate.model_version)
                entry["shadow_ms"] = round((time.perf_counter() - start) * 1e3, 3)
                with self.shadow_log.open("a") as out:
                    out.write(json.dumps(entry) + "\n")

        asyncio.get_running_loop().create_task(run())

    async def _lifespan(self, receive: Any, send: Any) -> None:
        watcher: asyncio.Task | None = None
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.session = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=256, limit_per_host=128, keepalive_timeout=30),
                    timeout=aiohttp.ClientTimeout(total=30), auto_decompress=False, skip_auto_headers=("User-Agent",))
                self.fresh = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(force_close=True), timeout=aiohttp.ClientTimeout(total=30),
                    auto_decompress=False, skip_auto_headers=("User-Agent",))
                self.reload()
                watcher = asyncio.get_running_loop().create_task(self.watch())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if watcher:
                    watcher.cancel()
                for session in (self.session, self.fresh):
                    if session is not None:
                        await session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _outputs(answer: dict[str, Any]) -> Any:
    """An answer's numbers: probabilities (binary, multiclass) or values (regression)."""
    return answer.get("probabilities", answer.get("values"))


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="mlplatform router for one environment")
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--env", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # a client's idle connection is kept longer than clients keep theirs (httpx, aiohttp, browsers: 5-60 s), so a
    # client never sends a request on a connection the router is closing at that moment
    uvicorn.run(Router(Deployments(args.root), args.env), host=args.host, port=args.port, log_level="warning",
                access_log=False, lifespan="on", timeout_keep_alive=CLIENT_IDLE_S)


if __name__ == "__main__":
    main()
