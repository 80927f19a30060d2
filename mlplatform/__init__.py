"""mlplatform: CI/CD for machine-learning models, built on Dagster."""

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """`mlplatform.MLPipeline` (the component a project's `defs.yaml` names), imported only when asked for: the
    Bento and the CLI import `mlplatform` without Dagster."""
    if name == "MLPipeline":
        from mlplatform.components import MLPipeline

        return MLPipeline
    raise AttributeError(f"module 'mlplatform' has no attribute {name!r}")
