"""The one settings object of the served Bento: every MLPLATFORM_* variable it reads, read once at start-up.

| variable | default | what |
|---|---|---|
| MLPLATFORM_ENV | local | the environment the Bento serves in (the deployer sets it) |
| MLPLATFORM_AUTH | on (off allowed in local only) | require an API key on everything but health and metrics |
| MLPLATFORM_API_KEYS, MLPLATFORM_API_KEYS_FILE | none | the accepted keys (comma-separated; a file of one per line) |
| MLPLATFORM_HOT_PATH | on | answer `POST /predict` through the hot path (off: BentoML's API dispatch) |
| MLPLATFORM_VALIDATION | on (off allowed in local only) | request validation |
| MLPLATFORM_METRICS | on (off allowed in local only) | the service's metrics |
| MLPLATFORM_ACCESS_LOG, MLPLATFORM_TRACING | off | BentoML's access log line and trace span per request |
| MLPLATFORM_BENTOML_BATCHING | off | the `/predict_batched` API (BentoML's adaptive batching; for benchmarks) |
| MLPLATFORM_PREDICTION_LOG_DIR | none | where answered requests are logged (the deployer sets it) |
| MLPLATFORM_SMOKE_TOKEN | none | the secret the deployer's smoke requests carry (logged as role `smoke`, not traffic) |
| MLPLATFORM_FEAST_DIR, MLPLATFORM_FEAST_ONLINE_STORE | none, sqlite | the online store `predict_entity` reads |
| MLPLATFORM_REDIS | 127.0.0.1:6379 | that store's Redis server (online store `redis`) |
| MLPLATFORM_FEAST_REGISTRY | none (a file) | Feast's SQL registry (a SQLAlchemy URL; production profile) |
| MLPLATFORM_FEAST_PROJECT | mlplatform | Feast's project (production: the database prefix) |

Served outside local (MLPLATFORM_ENV), or built for staging or production, the safeguards cannot be switched off.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SAFEGUARDS = ("validation", "metrics")


def switch(name: str, env: str, environ: Mapping[str, str] | None = None, default: bool = True) -> bool:
    """An on/off serving switch (MLPLATFORM_<NAME>=on|off); switching a safeguard off is for `local` only."""
    environ = os.environ if environ is None else environ
    variable = f"MLPLATFORM_{name.upper()}"
    value = environ.get(variable, "on" if default else "off").strip().lower()
    if value not in ("on", "off"):
        raise ValueError(f"{variable}={value!r}: expected on or off")
    if value == "off" and name in SAFEGUARDS and env != "local":
        raise ValueError(f"{variable}=off is refused in {env}: only local may disable it")
    return value == "on"


def load_api_keys(environ: Mapping[str, str] | None = None) -> list[bytes]:
    """Keys from MLPLATFORM_API_KEYS (comma-separated) and/or the file named by MLPLATFORM_API_KEYS_FILE."""
    environ = os.environ if environ is None else environ
    keys = [k.strip() for k in environ.get("MLPLATFORM_API_KEYS", "").split(",") if k.strip()]
    path = environ.get("MLPLATFORM_API_KEYS_FILE")
    if path:
        keys += [line.strip() for line in Path(path).read_text().splitlines()
                 if line.strip() and not line.startswith("#")]
    return [k.encode() for k in keys]


def auth_required(env: str, environ: Mapping[str, str] | None = None) -> bool:
    """Auth is on in staging and production; only `local` may switch it off (MLPLATFORM_AUTH=off)."""
    environ = os.environ if environ is None else environ
    setting = environ.get("MLPLATFORM_AUTH", "off" if env == "local" else "on")
    if setting == "off" and env != "local":
        raise ValueError(f"MLPLATFORM_AUTH=off is refused in {env}: only local may disable auth")
    return setting != "off"


@dataclass(frozen=True)
class ServingSettings:
    """What the service reads from its environment; `env` is the environment the Bento was built for."""

    env: str
    auth_required: bool
    api_keys: tuple[bytes, ...]
    hot_path: bool
    validation: bool
    metrics: bool
    access_log: bool
    tracing: bool
    bentoml_batching: bool
    prediction_log_dir: str | None
    smoke_token: str
    feast_dir: str | None
    feast_online_store: str
    redis: str
    feast_registry: str = ""
    feast_project: str = "mlplatform"

    @classmethod
    def from_env(cls, env: str, environ: Mapping[str, str] | None = None) -> "ServingSettings":
        """`env` is the environment the Bento was built for; MLPLATFORM_ENV the one it is deployed to (the
        deployer sets it). Either one outside `local` makes the safeguards (auth, validation, metrics) mandatory."""
        environ = os.environ if environ is None else environ
        deployed = environ.get("MLPLATFORM_ENV", "local")
        env = env if env != "local" or deployed not in ("staging", "production") else deployed
        return cls(env=env, auth_required=auth_required(env, environ), api_keys=tuple(load_api_keys(environ)),
                   hot_path=switch("hot_path", env, environ), validation=switch("validation", env, environ),
                   metrics=switch("metrics", env, environ),
                   access_log=switch("access_log", env, environ, default=False),
                   tracing=switch("tracing", env, environ, default=False),
                   bentoml_batching=switch("bentoml_batching", env, environ, default=False),
                   prediction_log_dir=environ.get("MLPLATFORM_PREDICTION_LOG_DIR") or None,
                   smoke_token=environ.get("MLPLATFORM_SMOKE_TOKEN", ""),
                   feast_dir=environ.get("MLPLATFORM_FEAST_DIR") or None,
                   feast_online_store=environ.get("MLPLATFORM_FEAST_ONLINE_STORE", "sqlite"),
                   redis=environ.get("MLPLATFORM_REDIS", "127.0.0.1:6379"),
                   feast_registry=environ.get("MLPLATFORM_FEAST_REGISTRY", ""),
                   feast_project=environ.get("MLPLATFORM_FEAST_PROJECT", "mlplatform"))

    def service_config(self, routes: tuple[str, ...]) -> dict[str, Any]:
        """BentoML service config for the hot path: no per-request access log or trace span unless asked for.

        Every answer is counted in BentoML's and the platform's Prometheus metrics; BentoML's access log line and
        OpenTelemetry span cost about a fifth of a request's server time (measured with py-spy), so they are opt-in
        (MLPLATFORM_ACCESS_LOG=on, MLPLATFORM_TRACING=on). MLPLATFORM_METRICS=off is for measuring their cost only.
        """
        config: dict[str, Any] = {"logging": {"access": {"enabled": self.access_log}},
                                  "metrics": {"enabled": self.metrics}}
        if not self.tracing:
            config["tracing"] = {"excluded_urls": list(routes)}
        return config
