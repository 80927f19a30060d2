"""The embedded deployer: `bentoml serve` processes on loopback ports behind one router per environment.

A deployment starts the new Bento's backend, waits until it is ready, runs the smoke test against it (a real
request set with the outputs the registered model gave for it), and only then writes the environment's record;
the router moves traffic, the deployer waits until the router serves the new record, and the backends that are
no longer in the record are stopped after a grace period. A backend that fails its health or smoke check is
stopped and nothing else changes (what served keeps serving): that is the automatic rollback.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from mlplatform.deploy.deployer import Candidate, Deployer
from mlplatform.deploy.packaging import bento_file
from mlplatform.deploy.processes import alive, cmdline, free_port, tail, terminate
from mlplatform.deploy.records import Backend, DeploymentError, Deployments, Record, now, who
from mlplatform.serving.predlog import TRAFFIC_HEADER, smoke_marker
from mlplatform.serving.request import flat_outputs

READY_TIMEOUT_S = 180
GRACE_S = 2.0
SMOKE_TOLERANCE = 1e-6


STARTUP_FAILED = "Application startup failed"  # what a service's worker logs when loading it raised


class EmbeddedDeployer(Deployer):
    """Starts, checks, switches and stops the serving processes of the staging and production environments."""

    def __init__(self, deployments: Deployments, bentoml_home: Path, ports: dict[str, int] | None = None,
                 environ: dict[str, str] | None = None, backend_env: dict[str, str] | None = None) -> None:
        super().__init__(deployments, ports)
        self.bentoml_home = Path(bentoml_home)
        self.environ = dict(os.environ if environ is None else environ)
        self.backend_env = backend_env or {}  # e.g. where the online store is, for predict_entity

    # --- processes -----------------------------------------------------------------------------------------
    def _spawn(self, argv: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env={**self.environ, **env}, start_new_session=True)

    def start_backend(self, env: str, candidate: Candidate) -> Backend:
        """A `bentoml serve` of the Bento on a free loopback port, with auth on and the environment's keys."""
        port = free_port()
        log = self.deployments.env_dir(env) / "logs" / f"{candidate.bento_tag.replace(':', '-')}-{port}.log"
        keys = self.deployments.api_keys_file(env)
        # `python -P -m bentoml`: the interpreter running the platform, wherever its scripts are installed, without
        # the working directory on its path (the Bento serves what it carries, not what lies around)
        proc = self._spawn([sys.executable, "-P", "-m", "bentoml", "serve", candidate.bento_path, "--host", "127.0.0.1",
                            "--port", str(port)], log,
                           {**self.backend_env, "BENTOML_HOME": str(self.bentoml_home), "BENTOML_DO_NOT_TRACK": "True",
                            "MLPLATFORM_ENV": env, "MLPLATFORM_AUTH": "on", "MLPLATFORM_API_KEYS_FILE": str(keys),
                            "MLPLATFORM_PREDICTION_LOG_DIR": str(self.deployments.predictions_dir(env)),
                            "MLPLATFORM_SMOKE_TOKEN": self.deployments.smoke_token(env),
                            "MLPLATFORM_API_KEYS": ""})
        backend = Backend(bento_tag=candidate.bento_tag, bento_path=candidate.bento_path, model=candidate.model,
                          model_version=candidate.model_version, port=port, pid=proc.pid, lineage=candidate.lineage)
        try:
            self._wait_ready(f"http://127.0.0.1:{port}/readyz", proc, log, f"backend {candidate.bento_tag}")
        except DeploymentError:
            self.stop(backend)
            raise
        return backend

    def _wait_ready(self, url: str, proc: subprocess.Popen | None, log: Path, what: str,
                    timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise DeploymentError(f"{what} exited with code {proc.returncode} before it was ready; "
                                      f"log {log}:\n{tail(log)}")
            if proc is not None and STARTUP_FAILED in tail(log):  # its supervisor lives on, the service never will
                raise DeploymentError(f"{what} failed to start; log {log}:\n{tail(log)}")
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise DeploymentError(f"{what} was not ready after {timeout:.0f} s; log {log}:\n{tail(log)}")

    def stop(self, backend: Backend) -> None:
        if serving(backend):
            terminate(backend.pid)

    # --- router --------------------------------------------------------------------------------------------
    def router_state(self, env: str) -> dict[str, Any] | None:
        """The router's state (it shows where it runs from only to a key of the environment: sent here)."""
        try:
            answer = httpx.get(f"{self.router_url(env)}/-/router", timeout=2, headers={"x-api-key": self.api_key(env)})
        except httpx.HTTPError:
            return None
        state = answer.json() if answer.status_code == 200 else None
        if not state or state.get("env") != env:
            return None
        if state.get("root") != str(self.deployments.root.resolve()):
            owner = state.get("root") or "another home (it does not take this home's API key)"
            raise DeploymentError(f"port {self.ports[env]} already serves the {env} router of {owner}; "
                                  f"give this home another port (MLPLATFORM_{env.upper()}_PORT)")
        return state

    def ensure_router(self, env: str) -> dict[str, Any]:
        state = self.router_state(env)
        if state is not None:
            return state
        log = self.deployments.env_dir(env) / "logs" / "router.log"
        pid_file = self.deployments.env_dir(env) / "router.pid"
        if pid_file.exists() and str(self.deployments.root).encode() in cmdline(int(pid_file.read_text())):
            # our router runs but was slow to answer (a loaded machine): wait for it, never start a second one (it
            # could not bind the port, and its pid would replace the live router's in router.pid)
            self._wait_ready(f"{self.router_url(env)}/-/router", None, log, f"router of {env}", timeout=60)
            return self.router_state(env) or {}
        proc = self._spawn([sys.executable, "-m", "mlplatform.deploy.router", "--root", str(self.deployments.root),
                            "--env", env, "--port", str(self.ports[env])], log, {})
        (self.deployments.env_dir(env) / "router.pid").write_text(str(proc.pid))
        self._wait_ready(f"{self.router_url(env)}/-/router", proc, log, f"router of {env}", timeout=60)
        return self.router_state(env) or {}

    def wait_applied(self, env: str, sequence: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.router_state(env)
            if state and state.get("sequence") == sequence:
                return
            time.sleep(0.05)
        state = self.router_state(env) or {}
        raise DeploymentError(f"the router of {env} did not take record {sequence} within {timeout:.0f} s "
                              f"(serves {state.get('sequence')}; {state.get('problem') or 'no problem reported'})")

    # --- checks --------------------------------------------------------------------------------------------
    def smoke(self, env: str, url: str, bento_path: str, role: str | None = None,
              entity: str | None = None) -> list[str]:
        """Problems of the smoke test against `url` (empty: passed): status, shape and expected outputs.

        Through the router, `entity` steers the request to `role`, and the answer must say that role answered.
        """
        path = bento_file(bento_path, "smoke.json")
        if not path.exists():
            return [f"the Bento at {bento_path} has no smoke set ({path.name})"]
        smoke = json.loads(path.read_text())
        headers = {"x-api-key": self.api_key(env), TRAFFIC_HEADER: smoke_marker(self.deployments.smoke_token(env))}
        headers |= {"x-entity-id": entity} if entity else {}
        try:
            answer = httpx.post(f"{url}/predict", json={"rows": smoke["rows"]}, timeout=30, headers=headers)
        except httpx.HTTPError as exc:
            return [f"smoke request failed: {type(exc).__name__}: {exc}"]
        if answer.status_code != 200:
            return [f"smoke request answered {answer.status_code}: {answer.text[:300]}"]
        answered = answer.headers.get("x-mlplatform-answered-by")
        if role is not None and answered != role:
            return [f"the router sent the {role}'s smoke request to {answered}"]
        got = flat_outputs(answer.json()) or []
        if len(got) != len(smoke["outputs"]):
            return [f"smoke answer has {len(got)} outputs for {len(smoke['rows'])} rows, "
                    f"expected {len(smoke['outputs'])}"]
        worst = max(abs(a - b) for a, b in zip(got, smoke["outputs"], strict=True))
        if worst > SMOKE_TOLERANCE:
            return [f"smoke answers differ from the registered model's by up to {worst:.2e} (> {SMOKE_TOLERANCE})"]
        return []

    def smoke_through_router(self, env: str, record: Record) -> list[str]:
        """The smoke test of every backend that answers under `record`, sent through the router."""
        problems = self.smoke(env, self.router_url(env), record.primary.bento_path, "primary",
                              steer(record, "primary"))
        if record.strategy == "canary" and record.candidate is not None and record.canary_share > 0:
            problems += self.smoke(env, self.router_url(env), record.candidate.bento_path, "candidate",
                                   steer(record, "candidate"))
        return problems

    # --- operations ----------------------------------------------------------------------------------------
    def deploy(self, env: str, candidate: Candidate, strategy: str = "blue_green", canary_share: float = 0.1,
               reason: str = "", action: str = "deploy", extra: dict[str, Any] | None = None) -> Record:
        """Deploy `candidate` to `env` with `strategy`; on a failed health or smoke check nothing changes."""
        before = self.deployments.read(env)  # a corrupt record is refused here, before anything starts
        if before is not None and before.primary.model != candidate.model:
            # the environments of a home serve one pipeline's model: another pipeline's must not replace it
            raise DeploymentError(f"{env} serves {before.primary.model}; {candidate.model} is another pipeline's "
                                  f"model and is not deployed over it (a project's environments serve one pipeline: "
                                  f"give the other its own MLPLATFORM_HOME)")
        if strategy in ("canary", "shadow") and before is None:
            raise DeploymentError(f"{strategy} needs a model already serving in {env} to compare with; deploy "
                                  "one with blue_green first")
        try:
            backend = self.start_backend(env, candidate)
        except DeploymentError as exc:
            self.deployments.audit("automatic_rollback", env, f"health check failed: {exc}"[:2000], before, before,
                                   attempted=candidate.bento_tag, attempted_version=candidate.model_version)
            raise
        try:
            problems = self.smoke(env, f"http://127.0.0.1:{backend.port}", candidate.bento_path)
        except Exception as exc:  # noqa: BLE001 - whatever broke the smoke test, the new backend must not stay up
            problems = [f"the smoke test could not run: {type(exc).__name__}: {exc}"]
        if problems:
            self.stop(backend)
            self.deployments.audit("automatic_rollback", env, "smoke test failed: " + "; ".join(problems), before,
                                   before, attempted=candidate.bento_tag, attempted_version=candidate.model_version)
            kept = "nothing was serving" if before is None else "the previous deployment keeps serving"
            raise DeploymentError(f"{candidate.bento_tag} failed the smoke test in {env}: "
                                  f"{'; '.join(problems)}; {kept}")
        # validated like a record read from disk: an unknown environment or strategy is refused here
        fields = {"env": env, "sequence": self.deployments.next_sequence(env), "strategy": strategy,
                  "created_at": now(), "created_by": who(), "reason": reason}
        if strategy == "blue_green":
            record = Record.model_validate({**fields, "primary": backend})
        else:
            assert before is not None
            record = Record.model_validate({**fields, "primary": before.primary, "candidate": backend,
                                            "canary_share": canary_share if strategy == "canary" else 0.0})
        return self._switch(env, before, record, action, reason, extra)

    def _switch(self, env: str, before: Record | None, record: Record, action: str, reason: str,
                extra: dict[str, Any] | None = None) -> Record:
        record = record.model_copy(update={"standby": warm_standby(before, record)})
        self.deployments.write(record)
        try:
            self.ensure_router(env)
            self.wait_applied(env, record.sequence)
            problems = self.smoke_through_router(env, record)
            if problems:
                raise DeploymentError("smoke test through the router failed: " + "; ".join(problems))
        except DeploymentError as exc:
            if before is not None and all(serving(b) for b in before.backends()):
                restored = before.model_copy(update={"sequence": self.deployments.next_sequence(env),
                                                     "created_at": now(), "reason": f"automatic rollback: {exc}"})
                self.deployments.write(restored)
                self.deployments.audit("automatic_rollback", env, str(exc), record, restored)
            for b in record.backends():
                if before is None or b not in before.backends():
                    self.stop(b)
            raise
        # The previous primary stays up as a warm standby (a rollback then moves traffic back at once, and the router
        # answers with it when the primary dies); every other backend the environment started that still runs stops.
        keep = {b.pid for b in record.backends()} | ({record.standby.pid} if record.standby else set())
        stale = [b for b in self.running(env) if b.pid not in keep]
        if stale:
            time.sleep(GRACE_S)  # requests already sent to the old backend finish there
            for b in stale:
                self.stop(b)
        self.deployments.audit(action, env, reason, before, record, **(extra or {}))
        self.write_compose(env, record)
        return record

    def write_compose(self, env: str, record: Record) -> Path:
        """The container deployment of what `env` serves now (docker-compose.yaml, validated; see lib.compose)."""
        from mlplatform.deploy.compose import write_project

        return write_project(record, self.deployments.api_keys_file(env), self.compose_dir(env), self.ports[env])

    def restore(self, env: str, target: Record, action: str, reason: str,
                extra: dict[str, Any] | None = None, current: bool = True) -> Record:
        """Serve `target`'s backends again (restarting any that stopped) as a new record (`current=False`: do not
        read the current record, it is lost)."""
        before = self.deployments.read(env) if current else None
        backends, started = [], []
        for b in target.backends():  # a warm standby is reused; a stopped backend is started again
            if not serving(b):
                b = self.start_backend(env, Candidate(b.bento_tag, b.bento_path, b.model, b.model_version, b.lineage))
                started.append(b)
            backends.append(b)
        record = target.model_copy(update={"sequence": self.deployments.next_sequence(env), "primary": backends[0],
                                           "candidate": backends[1] if len(backends) > 1 else None,
                                           "created_at": now(), "created_by": who(), "reason": reason})
        problems = self.smoke(env, f"http://127.0.0.1:{record.primary.port}", record.primary.bento_path)
        if problems:
            for b in started:
                self.stop(b)
            raise DeploymentError(f"restoring {env} to {target.primary.bento_tag} failed its smoke test: "
                                  + "; ".join(problems))
        return self._switch(env, before, record, action, reason, extra)

    def previous(self, env: str) -> Record:
        """The record that served before the current one (by model: the last one with another primary)."""
        current = self.deployments.read(env)
        if current is None:
            raise DeploymentError(f"nothing is deployed in {env}: nothing to roll back")
        for record in reversed(self.deployments.history(env)):
            if record.sequence < current.sequence and (record.primary.bento_tag, record.strategy) != (
                    current.primary.bento_tag, current.strategy):
                return record
        raise DeploymentError(f"{env} has no earlier deployment than record {current.sequence} to roll back to")

    def rollback(self, env: str, reason: str, extra: dict[str, Any] | None = None) -> Record:
        """Serve the previous deployment again (in production, use `promotion.rollback`: it moves the alias too)."""
        target = self.previous(env)
        return self.restore(env, target, "rollback", reason or f"rollback to record {target.sequence}", extra)

    def set_strategy(self, env: str, strategy: str, canary_share: float, reason: str) -> Record:
        """Change how traffic is split between the serving backends (no new backend)."""
        before = self.deployments.read(env)
        if before is None:
            raise DeploymentError(f"nothing is deployed in {env}")
        if strategy != "blue_green" and before.candidate is None:
            raise DeploymentError(f"{env} serves one model: {strategy} needs a candidate (deploy one with it)")
        candidate = before.candidate if strategy != "blue_green" else None
        record = before.model_copy(update={"sequence": self.deployments.next_sequence(env), "strategy": strategy,
                                           "candidate": candidate, "canary_share": canary_share
                                           if strategy == "canary" else 0.0, "created_at": now(),
                                           "created_by": who(), "reason": reason})
        return self._switch(env, before, record, "strategy", reason)

    def ensure_running(self, env: str) -> Record:
        """After a restart of the machine: bring up the router and the record's backends (a new record)."""
        record = self.deployments.read(env)  # a missing or corrupt record is refused here
        if record is None:
            raise DeploymentError(f"nothing is deployed in {env}")
        if all(serving(b) for b in record.backends()) and self.router_state(env) is not None:
            return record
        return self.restore(env, record, "restart", "serving processes were not running")

    def running(self, env: str) -> list[Backend]:
        """Every backend of the environment's history whose process still serves, newest first, once each."""
        seen: set[int] = set()
        out = []
        for record in reversed(self.deployments.history(env)):
            for b in record.backends():
                if b.pid not in seen and serving(b):
                    seen.add(b.pid)
                    out.append(b)
        return out

    def standby(self, env: str, record: Record) -> Backend | None:
        """The record's warm standby (the previous primary: a rollback moves traffic to it at once), or for a record
        written before standbys were recorded, the running backend outside it."""
        if record.standby is not None:
            return record.standby
        keep = {b.pid for b in record.backends()}
        return next((b for b in self.running(env) if b.pid not in keep), None)

    def recover(self, env: str) -> Record:
        """Serve the newest valid record of the history again, after record.json was lost or damaged."""
        last = self.deployments.last_good(env)
        if last is None:
            raise DeploymentError(f"{env} has no valid record in its history to recover")
        return self.restore(env, last, "recover", f"record.json was missing or invalid; record {last.sequence} again",
                            current=False)

    def stop_env(self, env: str) -> None:
        for b in self.running(env):
            self.stop(b)
        pid_file = self.deployments.env_dir(env) / "router.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text())
            if str(self.deployments.root).encode() in cmdline(pid):  # still our router, not a reused pid
                terminate(pid)
            pid_file.unlink()

    def status(self, env: str) -> dict[str, Any]:
        try:
            record = self.deployments.read(env)
            problem = None
        except DeploymentError as exc:
            record, problem = self.deployments.last_good(env), str(exc)
        router = self.router_state(env)
        out: dict[str, Any] = {"env": env, "url": self.router_url(env), "router": "up" if router else "down",
                               "problem": problem, "api_keys_file": str(self.deployments.env_dir(env) / "api-keys"),
                               "compose": str(self.compose_dir(env) / "docker-compose.yaml")}
        if record is None:
            return {**out, "deployed": None}
        out.update(sequence=record.sequence, strategy=record.strategy, canary_share=record.canary_share,
                   since=record.created_at, by=record.created_by, reason=record.reason,
                   serving_sequence=router.get("sequence") if router else None)
        out["backends"] = [{"role": role, "model": b.model, "model_version": b.model_version, "bento": b.bento_tag,
                            "port": b.port, "up": serving(b)}
                           for role, b in (("primary", record.primary), ("candidate", record.candidate),
                                           ("standby", self.standby(env, record))) if b]
        return out


def warm_standby(before: Record | None, record: Record) -> Backend | None:
    """What stays up next to `record`: the primary it replaces, else the standby before it, if still serving."""
    if before is None:
        return None
    taken = {b.pid for b in record.backends()}
    return next((b for b in (before.primary, before.standby) if b is not None and b.pid not in taken and serving(b)),
                None)


def serving(backend: Backend) -> bool:
    """The backend's process is alive and still the `bentoml serve` of its Bento (a pid can be reused)."""
    return backend.pid > 0 and alive(backend.pid) and backend.bento_path.encode() in cmdline(backend.pid)


def steer(record: Record, role: str) -> str:
    """An entity id the router sends to `role` under `record` (canary buckets are a pure function of the id)."""
    for i in range(100_000):
        if record.role_for(key := f"smoke-{i}") == role:
            return key
    raise DeploymentError(f"no entity id routes to the {role} at canary share {record.canary_share}")


