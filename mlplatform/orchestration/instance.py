"""The Dagster instance of a platform home, made ready before several processes share it."""

import dagster as dg

from mlplatform.settings import Settings


def prepare_instance(settings: Settings) -> None:
    """Export the settings, then open the Dagster instance once, so that its sqlite stores are created and stamped
    by one process. The daemon, the UI and the code server each create a missing store when they start; started
    together on a fresh home they race, and two stamps of different revisions leave a store no process can open
    again ("more than one head present")."""
    settings.export()
    with dg.DagsterInstance.get() as instance:
        instance.get_runs_count()
