"""Readers of item attributes, and item slices of a log by attribute.

``read_item_genres`` reads the genres of MovieLens-100K items from either form the
project reads interactions from: GroupLens ``u.item`` with its 19 genre flags (names in
``u.genre``) or a RecBole ``.item`` file with a ``class`` or ``genre`` column. Both give
``{original item id: genre names}``, with genre names as the source writes them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from metarec.data.interactions import InteractionLog
from metarec.errors import DataError

logger = logging.getLogger(__name__)

ItemGenres = dict[str, tuple[str, ...]]

# u.item fields before the genre flags: id, title, release date, video release date, IMDb URL.
_U_ITEM_LEADING_FIELDS = 5
_RECBOLE_GENRE_COLUMNS = ("class", "genre")


def read_item_genres(path: str | Path) -> ItemGenres:
    """Read ``{item id: genre names}`` from a MovieLens-100K folder or item file.

    ``path`` is a folder with ``u.item`` (and ``u.genre``) or a RecBole ``*.item`` file, or
    one of those files. ``u.item`` wins when a folder contains both forms. Items without
    a genre flag map to an empty tuple.
    """
    source = Path(path)
    if not source.exists():
        raise DataError("file or folder not found", path=source, fix="Check the dataset path")
    if source.is_dir():
        return _read_folder(source)
    if source.name == "u.item":
        return read_grouplens_genres(source, source.parent / "u.genre")
    if source.suffix == ".item":
        return read_recbole_genres(source)
    raise DataError(
        "not an item file",
        path=source,
        fix="Pass u.item (GroupLens) or a RecBole <name>.item file, or the folder with it",
    )


def read_grouplens_genres(item_file: str | Path, genre_file: str | Path) -> ItemGenres:
    """Read GroupLens ``u.item`` (latin-1, ``|``-separated) with genre names from ``u.genre``.

    Each ``u.item`` line has 5 leading fields and then one 0/1 flag per genre, in the
    order of the genre indices in ``u.genre``.
    """
    items = Path(item_file)
    names = read_genre_names(genre_file)
    expected = _U_ITEM_LEADING_FIELDS + len(names)
    genres: ItemGenres = {}
    for number, line in _numbered_lines(items, "latin-1"):
        fields = line.split("|")
        if len(fields) != expected:
            raise DataError(
                f"expected {expected} '|'-separated fields ({_U_ITEM_LEADING_FIELDS} item "
                f"fields and {len(names)} genre flags) but found {len(fields)}",
                path=items,
                line=number,
                fix="Use the u.item and u.genre files of one MovieLens-100K release",
            )
        flags = fields[_U_ITEM_LEADING_FIELDS:]
        invalid = next((flag for flag in flags if flag not in ("0", "1")), None)
        if invalid is not None:
            raise DataError(
                f"invalid genre flag {invalid!r}, expected 0 or 1",
                path=items,
                line=number,
                fix="Fix the flags of the line",
            )
        chosen = tuple(name for name, flag in zip(names, flags, strict=True) if flag == "1")
        _store(genres, fields[0], chosen, items, number)
    return _checked_nonempty(genres, items)


def read_genre_names(genre_file: str | Path) -> tuple[str, ...]:
    """Read ``u.genre``: ``name|index`` lines, indices 0..n-1 in any order."""
    file = Path(genre_file)
    if not file.is_file():
        raise DataError(
            "genre names file u.genre not found",
            path=file,
            fix="Put u.genre from the MovieLens-100K archive next to u.item",
        )
    by_index: dict[int, str] = {}
    for number, line in _numbered_lines(file, "latin-1"):
        name, separator, index_text = line.rpartition("|")
        if not separator or not name or not index_text.strip().isdigit():
            raise DataError(
                f"expected 'name|index' but found {line!r}",
                path=file,
                line=number,
                fix="Write each genre as its name, '|' and its 0-based index",
            )
        index = int(index_text)
        if index in by_index:
            raise DataError(
                f"genre index {index} appears twice ({by_index[index]!r} and {name!r})",
                path=file,
                line=number,
                fix="Give each genre its own index",
            )
        by_index[index] = name
    if not by_index:
        raise DataError("file has no genres", path=file, fix="Pass the u.genre of the release")
    missing = sorted(set(range(len(by_index))) - set(by_index))
    if missing:
        raise DataError(
            f"genre indices must run from 0 to {len(by_index) - 1}, but {missing} are missing",
            path=file,
            fix="Number the genres 0, 1, 2, ... without gaps",
        )
    return tuple(by_index[index] for index in range(len(by_index)))


def read_recbole_genres(item_file: str | Path) -> ItemGenres:
    """Read a RecBole ``.item`` file whose ``class`` or ``genre`` column lists genres.

    The header cells read ``name:type``, and genres are separated by single spaces
    (``Animation Children's Comedy``).
    """
    file = Path(item_file)
    lines = _numbered_lines(file, "utf-8")
    header_number, header_line = lines[0]
    header = [cell.split(":", 1)[0] for cell in header_line.split("\t")]
    genre_column = next((name for name in _RECBOLE_GENRE_COLUMNS if name in header), None)
    if "item_id" not in header or genre_column is None:
        raise DataError(
            f"expected columns item_id and one of {list(_RECBOLE_GENRE_COLUMNS)}, found {header}",
            path=file,
            line=header_number,
            fix="Pass a RecBole item file with genres, such as ml-100k.item",
        )
    id_position, genre_position = header.index("item_id"), header.index(genre_column)
    genres: ItemGenres = {}
    for number, line in lines[1:]:
        fields = line.split("\t")
        if len(fields) != len(header):
            raise DataError(
                f"line has {len(fields)} TAB-separated fields but the header has {len(header)}",
                path=file,
                line=number,
                fix="Give every line the fields of the header",
            )
        _store(genres, fields[id_position], tuple(fields[genre_position].split()), file, number)
    return _checked_nonempty(genres, file)


def genre_slices(
    log: InteractionLog, item_genres: Mapping[str, tuple[str, ...]]
) -> dict[str, np.ndarray]:
    """Return ``{genre: sorted item indices of the log with that genre}``.

    Items of the log that ``item_genres`` lacks belong to no slice, and their count is logged.
    """
    members: dict[str, list[int]] = {}
    unknown = 0
    for index, item_id in enumerate(log.item_ids):
        names = item_genres.get(item_id)
        if names is None:
            unknown += 1
            continue
        for name in names:
            members.setdefault(name, []).append(index)
    if unknown:
        logger.info("%d of %d items of %s have no genre entry", unknown, log.n_items, log.name)
    return {name: np.array(indices, dtype=np.int64) for name, indices in sorted(members.items())}


def _read_folder(directory: Path) -> ItemGenres:
    if (directory / "u.item").is_file():
        return read_grouplens_genres(directory / "u.item", directory / "u.genre")
    item_files = sorted(directory.glob("*.item"))
    if len(item_files) == 1:
        return read_recbole_genres(item_files[0])
    if item_files:
        names = [file.name for file in item_files]
        raise DataError(
            f"expected one .item file but found {len(item_files)} {names}",
            path=directory,
            fix="Pass the path of the item file",
        )
    raise DataError(
        "no item file found",
        path=directory,
        fix="Expected u.item with u.genre (MovieLens-100K) or <name>.item (RecBole)",
    )


def _numbered_lines(file: Path, encoding: str) -> list[tuple[int, str]]:
    """Return the non-blank lines of a file with their 1-based numbers.

    Lines are split on LF only, because ``str.splitlines`` also splits on NEL (0x85),
    which is a latin-1 character.
    """
    if not file.is_file():
        raise DataError("file not found", path=file, fix="Check the path")
    data = file.read_bytes()
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise DataError(
            f"cannot decode the line as {encoding}",
            path=file,
            line=line,
            fix=f"Re-save the file as {encoding}",
        ) from error
    lines = [(number, line.rstrip("\r")) for number, line in enumerate(text.split("\n"), 1)]
    kept = [(number, line) for number, line in lines if line.strip()]
    if not kept:
        raise DataError("file is empty", path=file, fix="Pass a file with items")
    return kept


def _store(genres: ItemGenres, item_id: str, names: tuple[str, ...], file: Path, line: int) -> None:
    if not item_id:
        raise DataError("missing item id", path=file, line=line, fix="Fill in or delete the line")
    if item_id in genres:
        raise DataError(
            f"item id {item_id!r} appears twice",
            path=file,
            line=line,
            fix="Keep one line per item",
        )
    genres[item_id] = names


def _checked_nonempty(genres: ItemGenres, file: Path) -> ItemGenres:
    if not genres:
        raise DataError("file has no item rows", path=file, fix="Pass a file with items")
    return genres
