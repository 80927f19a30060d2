"""Feast definitions of every spec, for the `feast` CLI; the platform applies the same objects from its registry
asset."""

from mlplatform.lib.features.feast_repo import feast_objects, offline_dir
from mlplatform.settings import get_settings
from mlplatform.specs import SPECS

for _spec in SPECS:
    for _obj in feast_objects(_spec, offline_dir(get_settings().feast_dir, _spec)):
        globals()[f"{_spec.name}_{type(_obj).__name__.lower()}"] = _obj
