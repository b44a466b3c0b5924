"""Readers that turn interaction files into a DataFrame with string ids.

Every reader returns the columns ``user`` and ``item`` (pandas ``str`` dtype, ids exactly
as written, so ``007`` stays ``007``) and, when the source has them, ``rating`` and
``timestamp`` as float64. Bad input raises :class:`DataError` with the file, the 1-based
line number as in the file (header line included) and a fix.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NoReturn

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict

from metarec.errors import DataError

logger = logging.getLogger(__name__)

FORMATS = ("movielens-100k", "movielens-dat", "recbole", "table")

_FIELDS = ("user", "item", "rating", "timestamp")
_FLOAT_FIELDS = ("rating", "timestamp")
_RECBOLE_COLUMNS = {
    "user_id": "user",
    "item_id": "item",
    "rating": "rating",
    "timestamp": "timestamp",
}
_COLUMN_ALIASES = {
    "user": ("user", "user_id", "userid", "uid"),
    "item": ("item", "item_id", "itemid", "movieid", "movie_id", "iid"),
    "rating": ("rating",),
    "timestamp": ("timestamp",),
}
_SEPARATOR_NAMES = {"::": "'::'", "\t": "TAB", ",": "comma", ";": "semicolon", "|": "pipe"}
_EXTENSION_SEPARATORS = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
_PARQUET_EXTENSIONS = (".parquet", ".pq")
_NO_ROWS_FIX = "Pass a file with interactions"
_NUMBER_FIX = (
    "Fix or delete the line. Ratings and timestamps must be numbers, "
    "with timestamps in Unix seconds"
)

_Quoting = Literal[0, 1, 2, 3]


class ColumnMap(BaseModel):
    """Names of the source columns that contain each interaction field."""

    model_config = ConfigDict(frozen=True)

    user: str = "user"
    item: str = "item"
    rating: str | None = None
    timestamp: str | None = None

    def source_columns(self) -> dict[str, str]:
        """Return ``{output field: source column}`` for the mapped fields."""
        pairs = {
            "user": self.user,
            "item": self.item,
            "rating": self.rating,
            "timestamp": self.timestamp,
        }
        return {field: column for field, column in pairs.items() if column is not None}


def load_interactions(
    path: str | Path,
    fmt: str = "auto",
    columns: ColumnMap | None = None,
    *,
    sep: str | None = None,
) -> pd.DataFrame:
    """Read interactions from a dataset folder or a single file.

    With ``fmt="auto"`` a folder goes through :func:`detect_format`. A file named
    ``u.data``, ``ratings.dat`` or ``*.inter`` uses its dataset reader, and any other file
    is read as a generic CSV, TSV or Parquet table with ``columns`` and ``sep``.
    """
    source = Path(path)
    if not source.exists():
        raise DataError("file or folder not found", path=source, fix="Check the path")
    chosen = _choose_format(source, fmt)
    if columns is not None and chosen != "table":
        raise DataError(
            f"a column mapping applies only to CSV, TSV and Parquet tables, "
            f"not to format {chosen!r}",
            path=source,
            fix="Drop the column mapping or pass a table file",
        )
    logger.info("Reading %s as %s", source, chosen)
    reader = _READERS.get(chosen)
    frame = read_table(source, columns, sep=sep) if reader is None else reader(source)
    logger.info("Read %d interactions from %s", len(frame), source)
    return frame


def detect_format(folder: str | Path) -> str:
    """Return the format of a dataset folder: ``movielens-100k``, ``movielens-dat`` or ``recbole``.

    GroupLens ``u.data`` wins over RecBole ``*.inter`` when a folder contains both.
    ``ratings.dat`` may sit in the folder or in one subfolder (ML-10M unpacks to ``ml-10M100K/``).
    """
    directory = Path(folder)
    if not directory.is_dir():
        raise DataError("folder not found", path=directory, fix="Check the dataset path")
    if (directory / "u.data").is_file():
        return "movielens-100k"
    if _find_ratings_dat(directory) is not None:
        return "movielens-dat"
    if any(directory.glob("*.inter")):
        return "recbole"
    found = sorted(entry.name for entry in directory.iterdir())
    raise DataError(
        f"no interaction file found (folder contains {found[:10]})",
        path=directory,
        fix="Expected u.data (MovieLens-100K), ratings.dat (MovieLens-1M/10M) "
        "or <name>.inter (RecBole)",
    )


def read_movielens_100k(path: str | Path) -> pd.DataFrame:
    """Read GroupLens ``u.data``: TAB-separated user, item, rating, timestamp, no header.

    ``path`` is the file or the folder that contains it.
    """
    file = _resolve_file(Path(path), "u.data")
    text = _TextFormat("\t")
    start = _scan_start(file, text, has_header=False)
    if start.width != 4:
        raise DataError(
            f"expected 4 TAB-separated fields (user, item, rating, timestamp) "
            f"but found {start.width}{_separator_hint(file)}",
            path=file,
            line=start.data_line,
            fix="Use TAB separators or read the file as a table",
        )
    frame = _read_rows(file, text, start, {field: i for i, field in enumerate(_FIELDS)})
    return _finish(frame, file, first_line=start.data_line)


def read_movielens_dat(path: str | Path) -> pd.DataFrame:
    """Read MovieLens-1M/10M ``ratings.dat``: ``user::item::rating::timestamp``, no header.

    ``path`` is the file, its folder, or a folder with the file one level down.
    """
    source = Path(path)
    file = _find_ratings_dat(source) if source.is_dir() else source
    if file is None:
        raise DataError("ratings.dat not found", path=source, fix="Point to the MovieLens folder")
    _check_file(file)
    # Splitting "a::b" on a single ":" gives "a", "", "b", which keeps pandas on its fast
    # C parser. The fields sit at even positions and odd positions must stay empty.
    text = _TextFormat(":")
    start = _scan_start(file, text, has_header=False)
    fix = "Write each line as user::item::rating::timestamp"
    if start.width != 7:
        raise DataError(
            f"expected 4 '::'-separated fields (user::item::rating::timestamp) "
            f"but found {(start.width + 1) // 2}{_separator_hint(file)}",
            path=file,
            line=start.data_line,
            fix=fix,
        )
    positions = {field: 2 * i for i, field in enumerate(_FIELDS)}
    positions.update({f"gap{i}": 2 * i + 1 for i in range(3)})
    frame = _read_rows(file, text, start, positions)
    gaps = frame[["gap0", "gap1", "gap2"]].notna().any(axis=1).to_numpy()
    if gaps.any():
        line = int(frame.index[int(np.argmax(gaps))]) + start.data_line
        message = "found a single ':' where '::' was expected"
        raise DataError(message, path=file, line=line, fix=fix)
    return _finish(frame[list(_FIELDS)], file, first_line=start.data_line)


def read_recbole(path: str | Path) -> pd.DataFrame:
    """Read a RecBole atomic ``.inter`` file whose header cells read ``name:type``.

    ``path`` is the file or its folder. Columns ``user_id``, ``item_id``, ``rating`` and
    ``timestamp`` become ``user``, ``item``, ``rating`` and ``timestamp``. Others are dropped.
    """
    file = _find_inter_file(Path(path))
    text = _TextFormat("\t")
    start = _scan_start(file, text, has_header=True)
    header = [cell.split(":", 1)[0] for cell in start.header]
    _require_columns(header, ["user_id", "item_id"], file, text.sep, start.header_line)
    positions = {
        field: header.index(column)
        for column, field in _RECBOLE_COLUMNS.items()
        if column in header
    }
    frame = _read_rows(file, text, start, positions)
    return _finish(frame, file, first_line=start.data_line)


def read_table(
    path: str | Path,
    columns: ColumnMap | None = None,
    *,
    sep: str | None = None,
    encoding: str = "utf-8",
) -> pd.DataFrame:
    """Read a CSV, TSV or Parquet table with a header line.

    ``sep`` is one character and defaults to the one implied by the extension (``.csv``,
    ``.tsv``, ``.tab``). Parquet is recognised by extension or by its magic bytes. Without
    ``columns`` the columns are found by common names, case-insensitive: ``user``,
    ``user_id``, ``userId``, ``item``, ``item_id``, ``movieId``, ``rating`` and ``timestamp``
    among others.
    """
    file = Path(path)
    _check_file(file)
    if _is_parquet(file):
        return _read_parquet(file, columns)
    text = _TextFormat(sep or _separator_from_extension(file), encoding, csv.QUOTE_MINIMAL)
    if len(text.sep) != 1:
        raise DataError(
            f"separator {text.sep!r} must be a single character",
            path=file,
            fix="Pass a one-character separator",
        )
    start = _scan_start(file, text, has_header=True)
    header = [cell.lstrip("\ufeff") if i == 0 else cell for i, cell in enumerate(start.header)]
    mapping = columns or _guess_columns(header, file, text.sep, start.header_line)
    source = mapping.source_columns()
    _require_columns(header, list(source.values()), file, text.sep, start.header_line)
    positions = {field: header.index(column) for field, column in source.items()}
    frame = _read_rows(file, text, start, positions)
    return _finish(frame, file, first_line=start.data_line)


def read_item_titles(folder: str | Path) -> dict[str, str]:
    """Read ``{item id: title}`` from ``u.item``, ``movies.dat`` or a RecBole ``.item`` file.

    Returns an empty dict when the folder has no title file. A title file that cannot be
    parsed raises DataError.
    """
    directory = Path(folder)
    if not directory.is_dir():
        raise DataError("folder not found", path=directory, fix="Check the dataset path")
    if (directory / "u.item").is_file():
        return _read_split_titles(directory / "u.item", "|", ("latin-1",))
    ratings = _find_ratings_dat(directory)
    movies = directory / "movies.dat" if ratings is None else ratings.parent / "movies.dat"
    if movies.is_file():
        # NOTE: ML-1M movies.dat is latin-1. Other releases may be UTF-8, so UTF-8 goes first.
        return _read_split_titles(movies, "::", ("utf-8", "latin-1"))
    item_files = sorted(directory.glob("*.item"))
    if item_files:
        return _read_recbole_titles(item_files[0])
    logger.info("No title file in %s, so items are shown by id", directory)
    return {}


# Locating files


def _choose_format(source: Path, fmt: str) -> str:
    if fmt != "auto":
        if fmt not in FORMATS:
            raise DataError(
                f"unknown format {fmt!r}", path=source, fix=f"Use 'auto' or one of {list(FORMATS)}"
            )
        return fmt
    if source.is_dir():
        return detect_format(source)
    if source.suffix == ".inter":
        return "recbole"
    if source.name == "u.data":
        return "movielens-100k"
    if source.name == "ratings.dat":
        return "movielens-dat"
    return "table"


def _find_ratings_dat(folder: Path) -> Path | None:
    if (folder / "ratings.dat").is_file():
        return folder / "ratings.dat"
    for child in sorted(folder.iterdir()):
        if child.is_dir() and (child / "ratings.dat").is_file():
            return child / "ratings.dat"
    return None


def _find_inter_file(source: Path) -> Path:
    if not source.is_dir():
        _check_file(source)
        return source
    preferred = source / f"{source.name}.inter"
    if preferred.is_file():
        return preferred
    candidates = sorted(source.glob("*.inter"))
    if len(candidates) == 1:
        return candidates[0]
    names = [candidate.name for candidate in candidates]
    raise DataError(
        f"expected one .inter file but found {len(candidates)} {names}",
        path=source,
        fix=f"Name it {preferred.name} or pass the file path",
    )


def _resolve_file(source: Path, filename: str) -> Path:
    file = source / filename if source.is_dir() else source
    _check_file(file)
    return file


def _check_file(file: Path) -> None:
    if not file.exists():
        raise DataError("file not found", path=file, fix="Check the path")
    if not file.is_file():
        raise DataError("not a regular file", path=file, fix="Pass a file path")
    if file.stat().st_size == 0:
        raise DataError("file is empty", path=file, fix=_NO_ROWS_FIX)


# Delimited text


@dataclass(frozen=True)
class _TextFormat:
    """Separator, encoding and quoting of a delimited text file."""

    sep: str
    encoding: str = "utf-8"
    quoting: _Quoting = csv.QUOTE_NONE


@dataclass(frozen=True)
class _TextStart:
    """Header cells (empty without a header) and the first non-blank data line."""

    header: list[str]
    header_line: int | None
    data_line: int
    width: int


def _scan_start(file: Path, text: _TextFormat, *, has_header: bool) -> _TextStart:
    """Find the header and the first data line, skipping blank lines."""
    header: list[str] | None = None
    header_line: int | None = None
    try:
        with file.open(encoding=text.encoding, newline="") as handle:
            reader = csv.reader(handle, delimiter=text.sep, quoting=text.quoting)
            for row in reader:
                if not row:
                    continue
                if has_header and header is None:
                    header, header_line = row, reader.line_num
                    continue
                return _TextStart(header or [], header_line, reader.line_num, len(row))
    except UnicodeDecodeError as error:
        _raise_undecodable(file, text.encoding, error)
    except csv.Error as error:
        raise DataError(
            f"cannot parse file ({error})", path=file, fix="Check the format"
        ) from error
    if header is None:
        raise DataError("file is empty", path=file, fix=_NO_ROWS_FIX)
    raise DataError("file has no data rows", path=file, fix=_NO_ROWS_FIX)


def _read_rows(
    file: Path, text: _TextFormat, start: _TextStart, positions: dict[str, int]
) -> pd.DataFrame:
    """Read the fields at ``positions`` (0-based) as columns named by the fields.

    The row labelled ``r`` comes from line ``start.data_line + r``. Blank lines are read
    as all-missing rows and dropped, so the labels of the other rows keep that relation.
    NOTE: a quoted CSV field that spans lines shifts the line numbers of later rows.
    """
    beyond = [field for field, position in positions.items() if position >= start.width]
    if beyond:
        raise DataError(
            f"line has {start.width} fields but the header has {len(start.header)}",
            path=file,
            line=start.data_line,
            fix="Give every line the fields of the header",
        )
    floats = {positions[field] for field in _FLOAT_FIELDS if field in positions}
    try:
        frame = _parse_text(file, text, start, floats)
    except ValueError:
        # A float column contains text. Re-read it as strings so the error can quote it.
        frame = _parse_text(file, text, start, set())
    frame = frame[frame.notna().any(axis=1)]
    if frame.empty:
        raise DataError("file has no data rows", path=file, fix=_NO_ROWS_FIX)
    selected = frame[list(positions.values())]
    selected.columns = pd.Index(list(positions))
    return selected


def _parse_text(file: Path, text: _TextFormat, start: _TextStart, floats: set[int]) -> pd.DataFrame:
    """Parse every field as a string except the float64 ``floats`` positions.

    Raises ValueError when a float position contains text, and DataError for other errors.
    """
    dtype = {i: ("float64" if i in floats else str) for i in range(start.width)}
    try:
        return pd.read_csv(
            file,
            sep=text.sep,
            header=None,
            skiprows=start.data_line - 1,
            dtype=dtype,
            keep_default_na=False,
            na_values=[""],
            skip_blank_lines=False,
            quoting=text.quoting,
            encoding=text.encoding,
            compression=None,
            engine="c",
        )
    except UnicodeDecodeError as error:
        _raise_undecodable(file, text.encoding, error)
    except pd.errors.ParserError as error:
        _raise_long_line(file, text, start, error)
    except pd.errors.EmptyDataError as error:
        raise DataError("file has no data rows", path=file, fix=_NO_ROWS_FIX) from error


def _raise_undecodable(file: Path, encoding: str, error: UnicodeDecodeError) -> NoReturn:
    raise DataError(
        f"cannot decode the line as {encoding}",
        path=file,
        line=_find_undecodable_line(file, encoding),
        fix="Re-save the file as UTF-8",
    ) from error


def _find_undecodable_line(file: Path, encoding: str) -> int | None:
    with file.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                raw.decode(encoding)
            except UnicodeDecodeError:
                return number
    return None


def _raise_long_line(
    file: Path, text: _TextFormat, start: _TextStart, error: pd.errors.ParserError
) -> NoReturn:
    line, found = _find_long_line(file, text, start)
    if line is None:
        fix = "Check the separator and the format"
        raise DataError(f"cannot parse file ({error})", path=file, fix=fix) from error
    raise DataError(
        f"line has {found} fields but the first data line has {start.width}",
        path=file,
        line=line,
        fix="Give every line the same fields, with the same separator",
    ) from error


def _find_long_line(file: Path, text: _TextFormat, start: _TextStart) -> tuple[int | None, int]:
    """Return the number and width of the first line wider than the first data line."""
    with file.open(encoding=text.encoding, newline="") as handle:
        reader = csv.reader(handle, delimiter=text.sep, quoting=text.quoting)
        for row in reader:
            if reader.line_num > start.data_line and len(row) > start.width:
                return reader.line_num, len(row)
    return None, 0


def _separator_hint(file: Path) -> str:
    with file.open(encoding="utf-8", errors="replace") as handle:
        first = next((line for line in handle if line.strip()), "")
    guessed = next((sep for sep in _SEPARATOR_NAMES if sep in first), None)
    if guessed is None:
        return ""
    return f", and the line looks {_SEPARATOR_NAMES[guessed]}-separated"


# Columns of tables


def _guess_columns(header: list[str], path: Path, sep: str | None, line: int | None) -> ColumnMap:
    by_lower = {column.lower(): column for column in header}
    found: dict[str, str] = {}
    for field, aliases in _COLUMN_ALIASES.items():
        match = next((by_lower[alias] for alias in aliases if alias in by_lower), None)
        if match is not None:
            found[field] = match
    if "user" not in found or "item" not in found:
        _raise_if_one_column(header, path, sep, line)
        raise DataError(
            f"no user or item column among {header}; expected one of "
            f"{list(_COLUMN_ALIASES['user'])} and one of {list(_COLUMN_ALIASES['item'])}",
            path=path,
            line=line,
            fix="Rename the columns, or map them with data.columns (--set data.columns.user=NAME)",
        )
    return ColumnMap(**found)


def _require_columns(
    found: list[str], expected: list[str], path: Path, sep: str | None, line: int | None
) -> None:
    missing = [column for column in expected if column not in found]
    if not missing:
        return
    _raise_if_one_column(found, path, sep, line)
    raise DataError(
        f"missing columns {missing}; found columns {found}, expected {expected}",
        path=path,
        line=line,
        fix="Rename the columns or change the column mapping",
    )


def _raise_if_one_column(header: list[str], path: Path, sep: str | None, line: int | None) -> None:
    if sep is None or len(header) != 1:
        return
    raise DataError(
        f"found 1 column {header} with separator {_SEPARATOR_NAMES.get(sep, repr(sep))}"
        f"{_separator_hint(path)}",
        path=path,
        line=line,
        fix="Set the separator the file uses with --set data.separator=';'",
    )


def _separator_from_extension(file: Path) -> str:
    sep = _EXTENSION_SEPARATORS.get(file.suffix.lower())
    if sep is None:
        raise DataError(
            f"cannot infer the separator from extension {file.suffix!r}",
            path=file,
            fix="Use .csv, .tsv or .parquet, or set data.separator",
        )
    return sep


def _is_parquet(file: Path) -> bool:
    if file.suffix.lower() in _PARQUET_EXTENSIONS:
        return True
    with file.open("rb") as handle:
        return handle.read(4) == b"PAR1"


def _read_parquet(file: Path, columns: ColumnMap | None) -> pd.DataFrame:
    try:
        names = list(pq.read_schema(file).names)
    except (pa.ArrowInvalid, OSError) as error:
        raise DataError(
            f"not a valid Parquet file ({error})", path=file, fix="Re-export the table"
        ) from error
    mapping = columns or _guess_columns(names, file, None, None)
    source = mapping.source_columns()
    _require_columns(names, list(source.values()), file, None, None)
    table = pd.read_parquet(file, columns=sorted(set(source.values())))
    selected = pd.DataFrame({field: table[column] for field, column in source.items()})
    return _finish(selected, file, first_line=None)


# Values


def _finish(frame: pd.DataFrame, file: Path, *, first_line: int | None) -> pd.DataFrame:
    """Check ids and numbers and return the standard columns with a fresh index.

    ``first_line`` is the line of the row labelled 0, or None for Parquet (rows are counted).
    """
    if frame.empty:
        raise DataError("file has no data rows", path=file, fix=_NO_ROWS_FIX)
    columns: dict[str, pd.Series] = {}
    for field in ("user", "item"):
        columns[field] = _require_ids(frame[field], field, file, first_line)
    for field in _FLOAT_FIELDS:
        if field in frame.columns:
            columns[field] = _parse_numbers(frame[field], field, file, first_line)
    return pd.DataFrame(columns).reset_index(drop=True)


def _require_ids(series: pd.Series, field: str, file: Path, first_line: int | None) -> pd.Series:
    missing = series.isna().to_numpy()
    if missing.any():
        label = int(series.index[int(np.argmax(missing))])
        fix = "Fill in or delete the line"
        _raise_at_row(file, label, first_line, f"missing {field} id", fix)
    # NOTE: Parquet float ids (from a column with nulls) become "7.0", not "7".
    return series.astype(str)


def _parse_numbers(series: pd.Series, field: str, file: Path, first_line: int | None) -> pd.Series:
    values = pd.to_numeric(series, errors="coerce").astype("float64")
    invalid = ~np.isfinite(values.to_numpy())
    if invalid.any():
        position = int(np.argmax(invalid))
        raw = series.iloc[position]
        if pd.isna(raw):
            message = f"missing {field}"
        else:
            value_text = raw if isinstance(raw, str) else str(raw)
            message = f"invalid {field} {value_text!r}, expected a finite number"
        _raise_at_row(file, int(series.index[position]), first_line, message, _NUMBER_FIX)
    return values


def _raise_at_row(
    file: Path, label: int, first_line: int | None, message: str, fix: str
) -> NoReturn:
    if first_line is None:
        raise DataError(f"row {label + 1}: {message}", path=file, fix=fix)
    raise DataError(message, path=file, line=label + first_line, fix=fix)


# Titles


def _read_split_titles(file: Path, sep: str, encodings: tuple[str, ...]) -> dict[str, str]:
    titles: dict[str, str] = {}
    lines = _decode_lines(file, encodings)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split(sep)
        if len(fields) < 2:
            raise DataError(
                f"expected an item id and a title separated by {_SEPARATOR_NAMES[sep]}",
                path=file,
                line=number,
                fix="Check the file format",
            )
        titles[fields[0]] = fields[1].strip()
    return titles


def _read_recbole_titles(file: Path) -> dict[str, str]:
    lines = _decode_lines(file, ("utf-8",))
    header = [cell.split(":", 1)[0] for cell in lines[0].split("\t")]
    _require_columns(header, ["item_id", "movie_title"], file, "\t", 1)
    id_column, title_column = header.index("item_id"), header.index("movie_title")
    titles: dict[str, str] = {}
    for line in lines[1:]:
        fields = line.split("\t")
        if len(fields) > max(id_column, title_column):
            titles[fields[id_column]] = fields[title_column].strip()
    return titles


def _decode_lines(file: Path, encodings: tuple[str, ...]) -> list[str]:
    """Decode with the first encoding that works and split on LF only.

    ``str.splitlines`` is avoided because it also splits on NEL (0x85), a latin-1 character.
    """
    data = file.read_bytes()
    for encoding in encodings:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        return [line.rstrip("\r") for line in text.split("\n")]
    raise DataError(
        f"cannot decode the line as {' or '.join(encodings)}",
        path=file,
        line=_find_undecodable_line(file, encodings[-1]),
        fix="Re-save the file as UTF-8",
    )


_READERS: dict[str, Callable[[Path], pd.DataFrame]] = {
    "movielens-100k": read_movielens_100k,
    "movielens-dat": read_movielens_dat,
    "recbole": read_recbole,
}
