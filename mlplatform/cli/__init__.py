"""The `mlplatform` console script (`app`), its commands split by topic."""

# Each module registers its commands on the app; `--help` lists them in this order: project, data, runs, deployment,
# services (the production profile's).
# isort: off
from mlplatform.cli import project, data, runs, deploy, services  # noqa: F401
# isort: on
from mlplatform.cli._common import app

__all__ = ["app"]
