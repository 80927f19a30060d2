"""Partitions: one dynamic partition per landed file of a spec."""

from functools import cache

import dagster as dg

from mlplatform.specs import Spec


@cache
def file_partitions(spec: Spec) -> dg.DynamicPartitionsDefinition:
    """The partitions of `spec`: keys are landed file names without their suffix."""
    return dg.DynamicPartitionsDefinition(name=f"{spec.name}_files")


SERVING_DAYS = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_offset=1)  # today's partition included
