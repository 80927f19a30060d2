"""The `mlplatform` console script (`app`), its commands split by topic."""

from mlplatform.cli import data, deploy, runs  # noqa: F401  (each module registers its commands on the app)
from mlplatform.cli._common import app

__all__ = ["app"]
