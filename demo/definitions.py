"""The demo project's code location: its pipelines (`defs/`) on the platform's resources."""

from mlplatform.project import definitions

defs = definitions(__file__)
