"""The pipelines the tests run: the demo project's `credit`, loaded from its YAML as a project loads it."""

from mlplatform.components.pipeline import load_spec
from mlplatform.settings import PROJECT

DEMO = PROJECT / "demo"
CREDIT = load_spec(DEMO / "defs" / "credit" / "defs.yaml")
