"""Reading item genres from GroupLens and RecBole MovieLens-100K files, good and malformed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from metarec.data.interactions import InteractionLog
from metarec.data.items import genre_slices, read_genre_names, read_item_genres
from metarec.errors import DataError

GENRES = "unknown|0\nAction|1\nComedy|2\n"
RECBOLE_HEADER = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"


def _write(folder: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = folder / name
    path.write_text(text, encoding=encoding)
    return path


def _u_item_line(item_id: str, flags: str, title: str = "Movie (1995)") -> str:
    return f"{item_id}|{title}|01-Jan-1995||http://example.invalid/{item_id}|{flags}\n"


# Real MovieLens-100K files


def test_grouplens_genres_of_ml100k(ml100k_raw_dir: Path) -> None:
    genres = read_item_genres(ml100k_raw_dir)
    assert len(genres) == 1682
    assert genres["1"] == ("Animation", "Children's", "Comedy")
    assert genres["2"] == ("Action", "Adventure", "Thriller")
    assert genres["267"] == ("unknown",)
    names = {name for item_genres in genres.values() for name in item_genres}
    assert len(names) == 19
    assert sum("Drama" in item_genres for item_genres in genres.values()) == 725


def test_recbole_genres_of_ml100k(ml100k_recbole_dir: Path) -> None:
    genres = read_item_genres(ml100k_recbole_dir)
    assert len(genres) == 1682
    assert genres["1"] == ("Animation", "Children's", "Comedy")
    assert genres["1373"] == ("unknown",)
    assert sum("Film-Noir" in item_genres for item_genres in genres.values()) == 24


def test_both_formats_agree(ml100k_raw_dir: Path, ml100k_recbole_dir: Path) -> None:
    assert read_item_genres(ml100k_raw_dir) == read_item_genres(ml100k_recbole_dir)


def test_grouplens_accepts_file_path(ml100k_raw_dir: Path) -> None:
    genres = read_item_genres(ml100k_raw_dir / "u.item")
    assert genres["50"] == ("Action", "Adventure", "Romance", "Sci-Fi", "War")


def test_genre_slices_of_ml100k(ml100k_log: InteractionLog, ml100k_raw_dir: Path) -> None:
    slices = genre_slices(ml100k_log, read_item_genres(ml100k_raw_dir))
    assert slices["Drama"].shape[0] == 725
    drama_ids = {ml100k_log.item_ids[index] for index in slices["Drama"]}
    assert "1" not in drama_ids
    assert np.all(np.diff(slices["Drama"]) > 0)


# Small files


def test_grouplens_latin1_title(tmp_path: Path) -> None:
    _write(tmp_path, "u.genre", GENRES)
    text = _u_item_line("7", "0|1|1", title="Misérables, Les (1995)")
    _write(tmp_path, "u.item", text, encoding="latin-1")
    assert read_item_genres(tmp_path) == {"7": ("Action", "Comedy")}


def test_item_without_genre_flags(tmp_path: Path) -> None:
    _write(tmp_path, "u.genre", GENRES)
    _write(tmp_path, "u.item", _u_item_line("7", "0|0|0"))
    assert read_item_genres(tmp_path) == {"7": ()}


def test_genre_slices_skip_unlisted_items(build_log: Callable[..., InteractionLog]) -> None:
    log = build_log([[0, 1, 2]], item_ids=["a", "b", "c"])
    slices = genre_slices(log, {"a": ("Action",), "c": ("Action", "Comedy")})
    assert sorted(slices) == ["Action", "Comedy"]
    assert slices["Action"].tolist() == [0, 2]
    assert slices["Comedy"].tolist() == [2]


def test_recbole_genre_column(tmp_path: Path) -> None:
    header = "item_id:token\tgenre:token_seq\n"
    _write(tmp_path, "ml-1m.item", header + "1\tAnimation Comedy\n2\tDrama\n")
    assert read_item_genres(tmp_path) == {"1": ("Animation", "Comedy"), "2": ("Drama",)}


# Malformed files


def test_grouplens_flag_count_mismatch(tmp_path: Path) -> None:
    _write(tmp_path, "u.genre", GENRES)
    _write(tmp_path, "u.item", _u_item_line("1", "0|1|0") + _u_item_line("2", "0|1"))
    with pytest.raises(DataError, match=r"u\.item:2: expected 8 '\|'-separated fields") as error:
        read_item_genres(tmp_path)
    assert "found 7" in str(error.value)


def test_grouplens_invalid_flag(tmp_path: Path) -> None:
    _write(tmp_path, "u.genre", GENRES)
    _write(tmp_path, "u.item", _u_item_line("1", "0|yes|0"))
    with pytest.raises(DataError, match=r"u\.item:1: invalid genre flag 'yes', expected 0 or 1"):
        read_item_genres(tmp_path)


def test_grouplens_missing_genre_file(tmp_path: Path) -> None:
    _write(tmp_path, "u.item", _u_item_line("1", "0|1|0"))
    with pytest.raises(DataError, match=r"u\.genre: genre names file u\.genre not found"):
        read_item_genres(tmp_path)


def test_grouplens_duplicate_item(tmp_path: Path) -> None:
    _write(tmp_path, "u.genre", GENRES)
    _write(tmp_path, "u.item", _u_item_line("1", "0|1|0") + _u_item_line("1", "0|0|1"))
    with pytest.raises(DataError, match=r"u\.item:2: item id '1' appears twice"):
        read_item_genres(tmp_path)


def test_recbole_undecodable_line(tmp_path: Path) -> None:
    recbole = tmp_path / "bad.item"
    recbole.write_bytes(RECBOLE_HEADER.encode() + b"1\t\xff\t1995\tDrama\n")
    with pytest.raises(DataError, match=r"bad\.item:2: cannot decode the line as utf-8"):
        read_item_genres(recbole)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Action\n", r"u\.genre:1: expected 'name\|index' but found 'Action'"),
        ("Action|x\n", r"u\.genre:1: expected 'name\|index'"),
        ("Action|0\nComedy|0\n", r"u\.genre:2: genre index 0 appears twice"),
        ("Action|0\nComedy|2\n", r"genre indices must run from 0 to 1, but \[1\] are missing"),
        ("\n\n", r"u\.genre: file is empty"),
    ],
)
def test_malformed_genre_names(tmp_path: Path, text: str, message: str) -> None:
    _write(tmp_path, "u.genre", text)
    with pytest.raises(DataError, match=message):
        read_genre_names(tmp_path / "u.genre")


def test_recbole_missing_genre_column(tmp_path: Path) -> None:
    _write(tmp_path, "items.item", "item_id:token\tmovie_title:token_seq\n1\tToy Story\n")
    with pytest.raises(DataError, match=r"items\.item:1: expected columns item_id and one of"):
        read_item_genres(tmp_path)


def test_recbole_short_line(tmp_path: Path) -> None:
    _write(tmp_path, "ml.item", RECBOLE_HEADER + "1\tToy Story\t1995\tComedy\n2\tHeat\n")
    with pytest.raises(DataError, match=r"ml\.item:3: line has 2 TAB-separated fields"):
        read_item_genres(tmp_path)


def test_recbole_header_only(tmp_path: Path) -> None:
    _write(tmp_path, "ml.item", RECBOLE_HEADER)
    with pytest.raises(DataError, match=r"ml\.item: file has no item rows"):
        read_item_genres(tmp_path)


def test_folder_without_item_file(tmp_path: Path) -> None:
    _write(tmp_path, "u.data", "1\t1\t5\t0\n")
    with pytest.raises(DataError, match="no item file found") as error:
        read_item_genres(tmp_path)
    assert "u.item with u.genre" in str(error.value)


def test_folder_with_two_recbole_item_files(tmp_path: Path) -> None:
    _write(tmp_path, "a.item", RECBOLE_HEADER)
    _write(tmp_path, "b.item", RECBOLE_HEADER)
    with pytest.raises(DataError, match=r"expected one \.item file but found 2"):
        read_item_genres(tmp_path)


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file or folder not found"):
        read_item_genres(tmp_path / "absent")


def test_unsupported_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "items.csv", "item,genre\n")
    with pytest.raises(DataError, match="not an item file"):
        read_item_genres(path)
