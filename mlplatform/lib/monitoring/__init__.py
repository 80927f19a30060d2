"""Monitoring stage: drift, live performance and the retraining and rollback decisions."""
