"""Evaluation stage: metrics, gates, the report and model card, and the assessment that ties them together."""
