"""mlplatform: CI/CD for machine-learning models, built on Dagster."""

__version__ = "0.1.0"
