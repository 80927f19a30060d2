"""Dagster-free logic: every function here is unit-testable on plain DataFrames and files."""
