"""Training stage: fitting the pipeline, MLflow tracking and registry, reproduction of a version."""
