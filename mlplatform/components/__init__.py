"""The platform's public Dagster components, declared in a project's YAML
(`type: mlplatform.components.MLPipeline`)."""

from mlplatform.components.pipeline import MLPipeline

__all__ = ["MLPipeline"]
