"""What runs inside the served Bento: request schema, scorer, auth guard, metrics, hot path, online features,
prediction log and the one settings object for the MLPLATFORM_* switches it reads. Imports nothing of Dagster."""
