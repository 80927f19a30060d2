"""Dagster-free ML logic, one subpackage per stage (mirrors `mlplatform/assets/`); shared helpers at this level."""
