"""Landed files: finding them, naming their partitions, hashing and reading them with clear errors."""

import hashlib
import re
from pathlib import Path

import pandas as pd

_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")


class LandedFileError(ValueError):
    """A landed file cannot be read as a table; the message names the file and the reason."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path.name}: {reason}")
        self.path = path
        self.reason = reason


def partition_key(path: Path) -> str:
    """The partition key of a landed file: its name without the suffix, made safe for Dagster."""
    return _KEY_UNSAFE.sub("_", path.stem)


NOT_REGULAR = ("not a regular file: symbolic links (and devices, pipes, folders) are never followed or read; "
               "land the file itself")


def refused_files(folder: Path, formats: tuple[str, ...]) -> dict[str, str]:
    """Entries of the landing folder named like landed files that are never read, by name, with the reason."""
    if not folder.is_dir():
        return {}
    return {path.name: NOT_REGULAR for path in sorted(folder.iterdir())
            if not path.name.startswith(".") and path.suffix.lstrip(".") in formats and not _regular(path)}


def _regular(path: Path) -> bool:
    """A regular file in its own right (a symbolic link is not, whatever it points at)."""
    return not path.is_symlink() and path.is_file()


def landed_files(folder: Path, formats: tuple[str, ...]) -> dict[str, Path]:
    """Landed files by partition key; hidden and temporary files (being written) are ignored, and anything but a
    regular file is refused (`refused_files`)."""
    if not folder.is_dir():
        return {}
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not _regular(path) or path.suffix.lstrip(".") not in formats:
            continue
        key = partition_key(path)
        if key in files:
            raise LandedFileError(path, f"two landed files map to partition {key!r}: {files[key].name}, {path.name}")
        files[key] = path
    return files


def content_hash(path: Path) -> str:
    """sha256 of the file's bytes: the raw partition's data version and the sensor's run key."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_landed(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet file; anything that is not a readable table raises LandedFileError."""
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise LandedFileError(path, NOT_REGULAR)
    if not path.exists():
        raise LandedFileError(path, "file not found in the landing zone")
    if path.stat().st_size == 0:
        raise LandedFileError(path, "file is empty (0 bytes)")
    if path.suffix == ".parquet":
        return _read_parquet(path)
    if path.suffix == ".csv":
        return _read_csv(path)
    raise LandedFileError(path, f"unsupported file type {path.suffix!r}: expected .csv or .parquet")


def _read_parquet(path: Path) -> pd.DataFrame:
    import pyarrow.parquet as pq

    with path.open("rb") as handle:
        head = handle.read(4)
        handle.seek(-4, 2)
        tail = handle.read(4)
    if head != b"PAR1" or tail != b"PAR1":
        raise LandedFileError(path, "not a complete Parquet file (missing PAR1 magic bytes: truncated or corrupt)")
    try:
        frame = pq.read_table(path).to_pandas()
    except Exception as exc:  # pyarrow raises several types for corrupt pages
        raise LandedFileError(path, f"corrupt Parquet file: {exc}") from exc
    if frame.empty:
        raise LandedFileError(path, "Parquet file has no rows")
    return frame


def _read_csv(path: Path) -> pd.DataFrame:
    with path.open("rb") as handle:
        head = handle.read(8192)
        handle.seek(-1, 2)
        last = handle.read(1)
    if b"\x00" in head:
        raise LandedFileError(path, "binary content, not a CSV text file")
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # a multi-byte character cut at the block edge is fine
            raise LandedFileError(path, f"not UTF-8 text at byte {exc.start}: not a CSV file") from exc
    if last not in (b"\n", b"\r"):  # a file cut off (or still being written) ends inside a line
        raise LandedFileError(path, "the last line has no line end: the file is incomplete (cut off, or still being "
                                    "written: land it under a name starting with '.' and rename it when complete)")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise LandedFileError(path, f"malformed CSV: {str(exc).strip()}") from exc
    except pd.errors.EmptyDataError as exc:
        raise LandedFileError(path, "CSV has no header and no rows") from exc
    if not isinstance(frame.index, pd.RangeIndex):
        raise LandedFileError(path, f"rows have more fields than the header ({len(frame.columns)} names):"
                                    " bad header or delimiter")
    if frame.empty:
        raise LandedFileError(path, "CSV has a header but no rows")
    return frame
