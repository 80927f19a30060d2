"""Feast definitions of every pipeline of the project (`--project`'s, or the one around the working directory),
for the `feast` CLI; the platform applies the same objects from its registry asset."""

import os
from pathlib import Path

from mlplatform.lib.features.feast_repo import feast_objects, offline_dir
from mlplatform.project import Project, specs
from mlplatform.settings import get_settings

_project = Project.find(Path(os.environ["MLPLATFORM_PROJECT"]) if "MLPLATFORM_PROJECT" in os.environ else None)
for _spec in specs(_project.definitions()):
    for _obj in feast_objects(_spec, offline_dir(get_settings().feast_dir, _spec)):
        globals()[f"{_spec.name}_{type(_obj).__name__.lower()}"] = _obj
