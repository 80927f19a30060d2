"""A user's project: the folder that holds their pipelines, found by its `pyproject.toml`.

A project is a Dagster (`dg`) project: `[tool.dg.project] root_module` names its package, whose `defs/` folder holds
one `defs.yaml` per pipeline (`type: mlplatform.components.MLPipeline`) and whose `definitions.py` is

    from mlplatform.project import definitions
    defs = definitions(__file__)

Its state lives under `<project>/.mlplatform` and its landed files under `<project>/landing/<pipeline>/`, unless
MLPLATFORM_HOME / MLPLATFORM_LANDING say otherwise. The code location (`dagster dev`, `dagster job execute`, the
daemon), the `mlplatform` CLI (`--project PATH`, or the project around the working directory) and the Bento builder
all read the pipelines from these definitions; a built Bento carries its own pipeline's spec.
"""

import importlib
import os
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from mlplatform.specs import Spec, spec_from_json, spec_to_json

# Definitions metadata key of each pipeline's spec (as `spec_to_json`), so whoever loads a project's definitions
# (the CLI, a re-executed run) finds its pipelines without reading the YAML again.
SPEC_METADATA = "mlplatform/pipeline/"


class ProjectError(ValueError):
    """No project where one was expected, or a project whose definitions cannot be used."""


class NotAProject(ProjectError):
    """A pyproject.toml that declares no Dagster project (a folder `find` looks past)."""


@dataclass(frozen=True)
class Project:
    root: Path
    module: str  # the code location's module, `<root_module>.definitions` unless the pyproject names another

    @classmethod
    def at(cls, root: Path) -> "Project":
        """The project whose `pyproject.toml` is in `root`."""
        root = root.expanduser().resolve()
        config = root / "pyproject.toml"
        if not config.is_file():
            raise ProjectError(f"{root}: no pyproject.toml (a project is made by `mlplatform init PATH`)")
        try:
            tool = tomllib.loads(config.read_text()).get("tool", {})
        except tomllib.TOMLDecodeError as err:
            raise ProjectError(f"{config}: not valid TOML ({err})") from err
        dg_project = tool.get("dg", {}).get("project", {})
        module = dg_project.get("code_location_target_module") or tool.get("dagster", {}).get("module_name")
        if not module and dg_project.get("root_module"):
            module = f"{dg_project['root_module']}.definitions"
        if not module:
            raise NotAProject(f"{config}: no [tool.dg.project] root_module (nor [tool.dagster] module_name): "
                              "not an mlplatform project")
        return cls(root, module)

    @classmethod
    def find(cls, start: Path | None = None) -> "Project":
        """The project around `start` (default: the working directory): the nearest folder upwards whose
        pyproject.toml declares a Dagster project."""
        here = (start or Path.cwd()).expanduser().resolve()
        for folder in [here, *here.parents] if here.is_dir() else list(here.parents):
            if (folder / "pyproject.toml").is_file():
                try:
                    return cls.at(folder)
                except NotAProject:  # another tool's pyproject; one with a TOML error is said, not looked past
                    continue
        raise ProjectError(f"no mlplatform project in {here} or above: run from inside one, give --project PATH, "
                           "or make one with `mlplatform init PATH`")

    def activate(self) -> None:
        """The project's home and landing folder unless MLPLATFORM_HOME is set (then landing is under that home, as
        everywhere), its package importable, and its root passed on to child processes. Before settings are read."""
        if "MLPLATFORM_HOME" not in os.environ:
            os.environ["MLPLATFORM_HOME"] = str(self.root / ".mlplatform")
            os.environ.setdefault("MLPLATFORM_LANDING", str(self.root / "landing"))
        os.environ["MLPLATFORM_PROJECT"] = str(self.root)
        if str(self.root) not in sys.path:
            sys.path.insert(0, str(self.root))

    def definitions(self) -> dg.Definitions:
        """The project's code location, imported as Dagster imports it."""
        self.activate()
        try:
            module = importlib.import_module(self.module)
        except ImportError as err:
            raise ProjectError(f"{self.root}: cannot import its definitions module {self.module!r}: {err}") from err
        found = [v for v in vars(module).values() if isinstance(v, dg.Definitions)]
        if len(found) != 1:
            raise ProjectError(f"{self.module}: expected one Definitions object (`defs = definitions(__file__)`), "
                               f"found {len(found)}")
        return found[0]


def specs(defs: dg.Definitions) -> list[Spec]:
    """The pipelines a project's definitions hold, in the order they were loaded."""
    return [spec_from_json(str(value.value if isinstance(value, dg.TextMetadataValue) else value))
            for name, value in (defs.metadata or {}).items() if name.startswith(SPEC_METADATA)]


def spec_metadata(spec: Spec) -> dict[str, str]:
    return {f"{SPEC_METADATA}{spec.name}": spec_to_json(spec)}


def definitions(path_within_project: str | Path) -> dg.Definitions:
    """A project's code location: every pipeline of its defs folder, and the platform's resources and sensors on
    the settings of the project's home."""
    from mlplatform.definitions import platform_definitions
    from mlplatform.settings import get_settings, protect_created_files

    path = Path(path_within_project).resolve()
    Project.find(path).activate()
    protect_created_files()  # in every process that loads the code location: the daemon's, a run's, the UI's
    pipelines = dg.load_from_defs_folder(path_within_project=path if path.is_dir() else path.parent)
    return dg.Definitions.merge(pipelines, platform_definitions(get_settings()))

