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


def reference_problem(reference: str) -> str | None:
    """Why `package.module.Name` or `package.module:name` does not name a class or function, found from the
    source without importing anything (the code location loads without the user's libraries): None when it does.
    A module defining `__getattr__` or built as an extension is taken at its word."""
    module, sep, name = reference.partition(":")
    if not sep:
        module, _, name = reference.rpartition(".")
    if not module or not name.isidentifier():
        return f"{reference!r} is not package.module.Class or package.module:function"
    parts = module.split(".")
    try:
        top = importlib.util.find_spec(parts[0])  # a top-level name is found without importing it
    except (ImportError, ValueError):
        top = None
    if top is None:
        return f"{reference!r}: no module {parts[0]!r} is installed or on the project's path"
    locations, origin = list(top.submodule_search_locations or []), top.origin
    for depth, part in enumerate(parts[1:], start=2):
        package = next((Path(d, part) for d in locations if Path(d, part, "__init__.py").is_file()), None)
        source = next((Path(d, f"{part}.py") for d in locations if Path(d, f"{part}.py").is_file()), None)
        namespace = next((Path(d, part) for d in locations if Path(d, part).is_dir()), None)
        if package is not None:
            locations, origin = [str(package)], str(package / "__init__.py")
        elif source is not None:
            locations, origin = [], str(source)
        elif namespace is not None:
            locations, origin = [str(namespace)], None
        elif any(any(Path(d).glob(f"{part}.*.so")) for d in locations):
            return None  # an extension module: its names are not in a source
        else:
            return f"{reference!r}: no module {'.'.join(parts[:depth])!r}"
    if origin is None or not origin.endswith(".py"):
        return None
    names = _module_names(ast.parse(Path(origin).read_text()))
    if names is None:
        return None  # `from x import *` or a module `__getattr__`: its names are not all in its source
    return None if name in names else f"{reference!r}: {module} has no class or function {name!r}"


def _module_names(tree: ast.Module) -> set[str] | None:
    """The names a module defines at its top level (also inside top-level if/try/with blocks), or None when they
    cannot be known from the source alone (a star import, a module `__getattr__`)."""
    names: set[str] = set()
    statements = list(tree.body)
    while statements:
        node = statements.pop()
        if isinstance(node, ast.If | ast.Try | ast.With):
            statements += [*node.body, *getattr(node, "orelse", []), *getattr(node, "finalbody", []),
                           *(h for handler in getattr(node, "handlers", []) for h in handler.body)]
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.name == "__getattr__":
                return None
            names.add(node.name)
        elif isinstance(node, ast.ImportFrom | ast.Import):
            if any(a.name == "*" for a in node.names):
                return None
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for leaf in ast.walk(target):
                    if isinstance(leaf, ast.Name):
                        if leaf.id == "__getattr__":
                            return None
                        names.add(leaf.id)
    return names


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
