"""Deployment state of the embedded deployer: one record per environment, its history, and the audit log.

Layout under `$MLPLATFORM_HOME/deployments/`:
  <env>/record.json        what the environment serves now (written atomically: temp file, fsync, rename)
  <env>/history/<seq>.json every record ever applied, so a rollback can restore the one before
  <env>/api-keys           the environment's API keys (created with one random key, mode 0600, if absent)
  audit.jsonl              one line per deployment, promotion, rollback and strategy change (append + fsync)

A record that cannot be read or does not validate is refused with an error naming the file and the problem;
the processes serving the last good record keep serving.
"""

import getpass
import hashlib
import json
import os
import secrets
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mlplatform.settings import ENVIRONMENTS as SETTINGS_ENVIRONMENTS

ENVIRONMENTS = tuple(e for e in SETTINGS_ENVIRONMENTS if e != "local")  # the ones a deployer serves
STRATEGIES = ("blue_green", "canary", "shadow")
DEFAULT_PORTS = {"staging": 3100, "production": 3200}


class DeploymentError(RuntimeError):
    """A deployment could not be made or its state could not be read; what serves now keeps serving."""


class Backend(BaseModel):
    """One `bentoml serve` of one Bento: a local process (pid) or, in a container deployment, a compose service."""

    model_config = ConfigDict(extra="forbid")

    bento_tag: str
    bento_path: str
    model: str
    model_version: str
    host: str = "127.0.0.1"
    port: int = Field(gt=0, lt=65536)
    pid: int = Field(0, ge=0)  # 0: not a process of the embedded deployer (a container)
    lineage: dict[str, str] = {}


class Record(BaseModel):
    """What one environment serves: the primary (answers), under canary/shadow a candidate, and the warm standby
    (the previous primary, still running: it answers when the primary does not answer at all)."""

    model_config = ConfigDict(extra="forbid")

    env: Literal["staging", "production"]
    sequence: int = Field(ge=1)
    strategy: Literal["blue_green", "canary", "shadow"] = "blue_green"
    primary: Backend
    candidate: Backend | None = None
    standby: Backend | None = None
    canary_share: float = Field(default=0.0, ge=0.0, le=1.0)
    created_at: str
    created_by: str
    reason: str

    @model_validator(mode="after")
    def _candidate_matches_strategy(self) -> "Record":
        if self.strategy in ("canary", "shadow") and self.candidate is None:
            raise ValueError(f"strategy {self.strategy} needs a candidate backend")
        if self.strategy == "blue_green" and self.candidate is not None:
            raise ValueError("strategy blue_green serves one backend: candidate must be empty")
        return self

    def backends(self) -> list[Backend]:
        return [self.primary] + ([self.candidate] if self.candidate else [])

    def role_for(self, entity: str) -> str:
        """Who answers a request about `entity`: the candidate for a canary's share of entities, else the primary."""
        canary = self.strategy == "canary" and self.candidate is not None and self.canary_share > 0
        return "candidate" if canary and canary_bucket(entity) < self.canary_share else "primary"


def canary_bucket(key: str) -> float:
    """A stable number in [0, 1) for an entity id: the same entity always lands on the same side of a canary."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def who() -> str:
    """Who acts: MLPLATFORM_USER, else the OS user."""
    try:
        return os.environ.get("MLPLATFORM_USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


class Deployments:
    """The deployment records, their history and the audit log under one folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    def env_dir(self, env: str) -> Path:
        if env not in ENVIRONMENTS:
            raise DeploymentError(f"unknown environment {env!r}: expected one of {', '.join(ENVIRONMENTS)}")
        return self.root / env

    def predictions_dir(self, env: str) -> Path:
        """Where the environment's backends write their prediction logs (see lib.predlog)."""
        return self.env_dir(env) / "predictions"

    def record_path(self, env: str) -> Path:
        return self.env_dir(env) / "record.json"

    def read(self, env: str) -> Record | None:
        """The current record, None if the environment never had a deployment; refuses a corrupt or missing one."""
        path = self.record_path(env)
        if not path.exists():
            last = self.last_good(env)
            if last is None:
                return None
            raise DeploymentError(f"deployment record {path} is missing although {env} has served record "
                                  f"{last.sequence}; nothing is changed until it is back (`mlplatform serve --env "
                                  f"{env} --recover` serves the last good record again)")
        return _parse(path)

    def history(self, env: str) -> list[Record]:
        folder = self.env_dir(env) / "history"
        paths = sorted(folder.glob("*.json"), key=lambda p: int(p.stem)) if folder.exists() else []
        return [_parse(p) for p in paths]

    def last_good(self, env: str) -> Record | None:
        """The newest record of the history that still validates (what serves if record.json is damaged)."""
        folder = self.env_dir(env) / "history"
        for path in sorted(folder.glob("*.json"), key=lambda p: int(p.stem), reverse=True) if folder.exists() else []:
            try:
                return _parse(path)
            except DeploymentError:
                continue
        return None

    def next_sequence(self, env: str) -> int:
        folder = self.env_dir(env) / "history"
        return 1 + max((int(p.stem) for p in folder.glob("*.json")), default=0) if folder.exists() else 1

    def write(self, record: Record) -> Path:
        """Atomically replace the environment's record and keep a copy in its history."""
        folder = self.env_dir(record.env)
        text = record.model_dump_json(indent=2)
        _atomic_write(folder / "history" / f"{record.sequence}.json", text)
        return _atomic_write(folder / "record.json", text)

    def api_keys_file(self, env: str) -> Path:
        """The environment's API key file; created with one random key (mode 0600) the first time."""
        path = self.env_dir(env) / "api-keys"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(f"# API keys of {env}, one per line (header x-api-key)\n{secrets.token_urlsafe(24)}\n")
        return path

    def smoke_token(self, env: str) -> str:
        """The environment's smoke token (mode 0600, made the first time): the deployer's smoke requests carry it,
        the backends know it, clients do not, so no client can pass its traffic off as a smoke test."""
        path = self.env_dir(env) / "smoke-token"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(24))
        return path.read_text().strip()

    # --- audit ---------------------------------------------------------------------------------------------
    @property
    def audit_path(self) -> Path:
        return self.root / "audit.jsonl"

    def audit(self, action: str, env: str, reason: str, before: Record | None, after: Record | None,
              **extra: Any) -> dict[str, Any]:
        """Append one entry (who, when, why, from/to versions, lineage) and flush it to disk."""
        entry = {"at": now(), "who": who(), "action": action, "env": env, "reason": reason,
                 "from": _summary(before), "to": _summary(after), **extra}
        self.root.mkdir(parents=True, exist_ok=True)
        with self.audit_path.open("a") as out:
            out.write(json.dumps(entry, sort_keys=True) + "\n")
            out.flush()
            os.fsync(out.fileno())
        return entry

    def audit_entries(self, env: str | None = None) -> list[dict[str, Any]]:
        if not self.audit_path.exists():
            return []
        entries = []
        for number, line in enumerate(self.audit_path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DeploymentError(f"{self.audit_path} line {number} is not JSON: {exc}") from exc
            if env is None or entry.get("env") == env:
                entries.append(entry)
        return entries


def _summary(record: Record | None) -> dict[str, Any] | None:
    if record is None:
        return None
    out: dict[str, Any] = {"sequence": record.sequence, "strategy": record.strategy,
                           "model_version": record.primary.model_version, "bento": record.primary.bento_tag,
                           "lineage": record.primary.lineage}
    if record.candidate:
        out["candidate_version"] = record.candidate.model_version
        out["candidate_bento"] = record.candidate.bento_tag
    if record.strategy == "canary":
        out["canary_share"] = record.canary_share
    return out


def _parse(path: Path) -> Record:
    try:
        return Record.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(document)'}: {e['msg']}" for e in exc.errors())
        raise DeploymentError(f"deployment record {path} is invalid ({problems}); it is not used, "
                              "what serves now keeps serving") from exc
    except OSError as exc:
        raise DeploymentError(f"deployment record {path} cannot be read: {exc}") from exc


def _atomic_write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return path
