"""The Deployer interface: what the assets, sensors and CLI ask of a deployment backend, whatever runs the models.

A backend serves each environment (staging, production) behind one router on a fixed port and keeps the
environment's state in `Deployments` (records, history, audit log, API keys). The embedded backend
(`deploy/embedded.py`) runs `bentoml serve` processes on this machine; `deploy/compose.py` writes the same record
as a container project.
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlplatform.deploy.records import DEFAULT_PORTS, Deployments, Record


@dataclass(frozen=True)
class Candidate:
    """A built Bento to deploy, with what it was built from."""

    bento_tag: str
    bento_path: str
    model: str
    model_version: str
    lineage: dict[str, str]


class Deployer(ABC):
    """Deploys, promotes, rolls back and stops what an environment serves; `deployments` is its state."""

    def __init__(self, deployments: Deployments, ports: dict[str, int] | None = None) -> None:
        self.deployments = deployments
        self.ports = {**DEFAULT_PORTS, **(ports or {})}

    def router_url(self, env: str) -> str:
        return f"http://127.0.0.1:{self.ports[env]}"

    def api_key(self, env: str) -> str:
        lines = self.deployments.api_keys_file(env).read_text().splitlines()
        return next(line.strip() for line in lines if line.strip() and not line.startswith("#"))

    def compose_dir(self, env: str) -> Path:
        return self.deployments.env_dir(env) / "compose"

    @abstractmethod
    def deploy(self, env: str, candidate: Candidate, strategy: str = "blue_green", canary_share: float = 0.1,
               reason: str = "", action: str = "deploy", extra: dict[str, Any] | None = None) -> Record:
        """Serve `candidate` in `env` with `strategy` once its health and smoke checks pass; else nothing changes."""

    @abstractmethod
    def previous(self, env: str) -> Record:
        """The record that served before the current one (the one a rollback restores)."""

    @abstractmethod
    def rollback(self, env: str, reason: str, extra: dict[str, Any] | None = None) -> Record:
        """Serve the previous deployment again."""

    @abstractmethod
    def set_strategy(self, env: str, strategy: str, canary_share: float, reason: str) -> Record:
        """Change how traffic is split between the serving backends (no new backend)."""

    @abstractmethod
    def ensure_running(self, env: str) -> Record:
        """Bring up the router and the record's backends if they are not running (e.g. after a reboot)."""

    @abstractmethod
    def recover(self, env: str) -> Record:
        """Serve the newest valid record of the history again, after the current one was lost or damaged."""

    @abstractmethod
    def stop_env(self, env: str) -> None:
        """Stop the environment's router and backends; the record stays."""

    @abstractmethod
    def status(self, env: str) -> dict[str, Any]:
        """What the environment serves, for `mlplatform status`."""
