"""Code versions from the code itself: an asset's version hashes the modules (or single functions) it is computed
by and the spec fields it reads. Editing that code or those fields marks that asset stale, and only it; nothing
is bumped by hand.

Sources are named by dotted module (`mlplatform.lib.data.landing`, or `module:function` for one function or class)
and resolved with `importlib.util.find_spec`, which locates a module without importing it (only its parent
packages, whose `__init__` files are docstrings): the code location loads without pandas or scikit-learn, and a
module that moved makes loading fail with its name instead of silently versioning nothing. Files that are not
Python modules (the Bento's service and bentofile, the lock file) are named by path under the project root.
"""

import ast
import hashlib
import importlib.util
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from mlplatform.settings import PROJECT


class UnknownSource(LookupError):
    """A code version names a module, function or file that does not exist."""


def module_file(name: str) -> Path:
    """The source file of a dotted module name, found without importing the module itself."""
    try:
        spec = importlib.util.find_spec(name)
    except ModuleNotFoundError as err:
        raise UnknownSource(f"code version source {name!r}: no such module ({err})") from err
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise UnknownSource(f"code version source {name!r}: no such module")
    return Path(spec.origin).resolve()


@dataclass(frozen=True)
class Sources:
    """Reads the named sources from the checkout at `root` (a copy of the project, in tests: edited like a pull
    request would edit it), as text, never imported."""

    root: Path = PROJECT

    def version(self, *modules: str, files: tuple[str, ...] = (), config: object = ()) -> str:
        digest = hashlib.sha256(repr(config).encode())
        for source in modules:
            name, _, function = source.partition(":")
            found = module_file(name)  # a user's module outside the project is hashed where it is
            file = self.root / found.relative_to(PROJECT) if found.is_relative_to(PROJECT) else found
            digest.update(f"{source}\n".encode() + _source(file, function, _mtime(file)).encode())
        for relative in files:
            file = self.root / relative
            digest.update(f"{relative}\n".encode() + _source(file, "", _mtime(file)).encode())
        return digest.hexdigest()[:12]


CHECKOUT = Sources()  # this checkout


def _mtime(file: Path) -> int:
    try:
        return file.stat().st_mtime_ns
    except FileNotFoundError as err:
        raise UnknownSource(f"code version source {file}: no such file") from err


@cache
def _source(path: Path, function: str, _modified: int) -> str:
    text = path.read_text()
    if not function:
        return text
    for node in ast.parse(text).body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef) and node.name == function:
            return ast.get_source_segment(text, node) or ""
    raise UnknownSource(f"{path}: no function or class {function!r} to version")
