"""The Dagster instance of a platform home, made ready before several processes share it."""

import dagster as dg

from mlplatform.settings import Settings


def prepare_instance(settings: Settings) -> None:
    """Export the settings, then open the Dagster instance once, so that its stores (sqlite files, or the
    production profile's tables on PostgreSQL) are created and stamped by one process. The daemon, the UI and the
    code server each create a missing store when they start; started together on a fresh home they race, and two
    stamps of different revisions leave a store no process can open again ("more than one head present").
    Production: Feast's SQL registry makes its tables here too, before runs in parallel open it."""
    settings.export()
    with dg.DagsterInstance.get() as instance:
        instance.get_runs_count()
    if settings.production:
        settings.run_lock.mkdir(parents=True, exist_ok=True)
        from mlplatform.definitions import resources

        registry = resources(settings)["feast"].store().registry  # the SQL registry creates its tables as it opens
        registry.refresh()
