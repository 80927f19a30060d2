"""Landed files: finding them, naming their partitions, hashing and reading them with clear errors."""

import gzip
import hashlib
import io
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")


class LandedFileError(ValueError):
    """A landed file cannot be read as a table; the message names the file and the reason."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path.name}: {reason}")
        self.path = path
        self.reason = reason


SUFFIXES = {"csv": (".csv", ".csv.gz"), "parquet": (".parquet",)}  # matched case-insensitively


def landed_format(path: Path, formats: tuple[str, ...] = tuple(SUFFIXES)) -> tuple[str, str] | None:
    """(format, name without its suffix) of a landed file's name, or None when it is not one of `formats`."""
    lower = path.name.lower()
    for fmt in formats:
        for suffix in sorted(SUFFIXES.get(fmt, ()), key=len, reverse=True):
            if lower.endswith(suffix) and len(lower) > len(suffix):
                return fmt, path.name[: -len(suffix)]
    return None


def partition_key(path: Path) -> str:
    """The partition key of a landed file: its name without the suffix, made safe for Dagster."""
    found = landed_format(path)
    return _KEY_UNSAFE.sub("_", found[1] if found else path.stem)


NOT_REGULAR = ("not a regular file: symbolic links (and devices, pipes, folders) are never followed or read; "
               "land the file itself")


@dataclass(frozen=True)
class Listing:
    """A landing folder read once: its landed files by partition key, and every other entry with why it is not one."""

    files: dict[str, Path]
    refused: dict[str, str]  # named like a landed file, but never read (not a regular file, a partition twice)
    ignored: dict[str, str]  # not landed files at all (hidden while being written, another type)


def _regular(path: Path) -> bool:
    """A regular file in its own right (a symbolic link is not, whatever it points at)."""
    return not path.is_symlink() and path.is_file()


def list_landing(folder: Path, formats: tuple[str, ...]) -> Listing:
    """Every entry of the landing folder: a landed file, refused (with why) or ignored (with why)."""
    listing = Listing({}, {}, {})
    if not folder.is_dir():
        return listing
    claimed: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            listing.ignored[path.name] = "hidden: a file being written is named with a leading '.' until complete"
        elif landed_format(path, formats) is None:
            kinds = ", ".join(s for f in formats for s in SUFFIXES.get(f, ()))
            listing.ignored[path.name] = f"not a landed file type (expected {kinds}, in any case)"
        elif not _regular(path):
            listing.refused[path.name] = NOT_REGULAR
        else:
            claimed.setdefault(partition_key(path), []).append(path)
    for key, paths in claimed.items():
        if len(paths) == 1:
            listing.files[key] = paths[0]
            continue
        names = ", ".join(p.name for p in paths)
        for path in paths:  # only these are held back; every other file is ingested
            listing.refused[path.name] = f"{names} map to one partition {key!r}: rename all but one"
    return listing


def landed_files(folder: Path, formats: tuple[str, ...]) -> dict[str, Path]:
    """Landed files by partition key (see `list_landing` for the entries that are not)."""
    return list_landing(folder, formats).files


def refused_files(folder: Path, formats: tuple[str, ...]) -> dict[str, str]:
    """Entries named like landed files that are never read, by name, with the reason."""
    return list_landing(folder, formats).refused


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
    found = landed_format(path)
    if found is None:
        raise LandedFileError(path, f"unsupported file type {path.suffix!r}: expected .csv, .csv.gz or .parquet")
    if found[0] == "parquet":
        return _read_parquet(path)
    if path.name.lower().endswith(".gz"):
        return _read_gzip_csv(path)
    return _read_csv(path)


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
    _check_text(path, head, last)
    return _csv_frame(path, path)


def _read_gzip_csv(path: Path) -> pd.DataFrame:
    try:
        data = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, zlib.error) as exc:
        raise LandedFileError(path, f"not a complete gzip file: {exc}") from exc
    if not data:
        raise LandedFileError(path, "file is empty once decompressed")
    _check_text(path, data[:8192], data[-1:])
    return _csv_frame(path, io.BytesIO(data))


def _check_text(path: Path, head: bytes, last: bytes) -> None:
    """UTF-8 text that ends with a line end (the start of the file and its last byte)."""
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


def _csv_frame(path: Path, source: Path | io.BytesIO) -> pd.DataFrame:
    try:
        frame = pd.read_csv(source)
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
