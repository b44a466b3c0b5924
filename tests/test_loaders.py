from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from metarec.data.loaders import (
    ColumnMap,
    detect_format,
    load_interactions,
    read_item_titles,
    read_movielens_dat,
    read_table,
)
from metarec.errors import DataError

DAT_LINES = "007::42::4::978300760\n7::0042::5::978302109\n12::42::3.5::978301968\n"


@pytest.fixture(scope="module")
def recbole_frame(ml100k_recbole_dir: Path) -> pd.DataFrame:
    return load_interactions(ml100k_recbole_dir)


@pytest.fixture(scope="module")
def raw_frame(ml100k_raw_dir: Path) -> pd.DataFrame:
    return load_interactions(ml100k_raw_dir)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# Real files


def test_detect_format_real_folders(ml100k_recbole_dir: Path, ml100k_raw_dir: Path) -> None:
    assert detect_format(ml100k_recbole_dir) == "recbole"
    assert detect_format(ml100k_raw_dir) == "movielens-100k"


@pytest.mark.parametrize("frame_name", ["recbole_frame", "raw_frame"])
def test_ml100k_counts(frame_name: str, request: pytest.FixtureRequest) -> None:
    frame: pd.DataFrame = request.getfixturevalue(frame_name)
    assert list(frame.columns) == ["user", "item", "rating", "timestamp"]
    assert len(frame) == 100_000
    assert frame["user"].nunique() == 943
    assert frame["item"].nunique() == 1_682
    assert frame["rating"].dtype == "float64"
    assert frame["timestamp"].dtype == "float64"
    assert pd.api.types.is_string_dtype(frame["user"])
    assert pd.api.types.is_string_dtype(frame["item"])
    assert frame["rating"].value_counts()[4.0] == 34_174


def test_ml100k_formats_give_same_rows(
    recbole_frame: pd.DataFrame, raw_frame: pd.DataFrame
) -> None:
    pd.testing.assert_frame_equal(recbole_frame, raw_frame)
    assert recbole_frame.iloc[0].tolist() == ["196", "242", 3.0, 881250949.0]


def test_single_file_paths_use_dataset_readers(
    ml100k_recbole_dir: Path, ml100k_raw_dir: Path
) -> None:
    from_inter = load_interactions(ml100k_recbole_dir / "ml-100k.inter")
    from_u_data = load_interactions(ml100k_raw_dir / "u.data")
    assert len(from_inter) == 100_000
    assert len(from_u_data) == 100_000


def test_titles_grouplens_latin1(ml100k_raw_dir: Path) -> None:
    titles = read_item_titles(ml100k_raw_dir)
    assert len(titles) == 1_682
    assert titles["543"] == "Misérables, Les (1995)"
    assert titles["1633"] == "Á köldum klaka (Cold Fever) (1994)"
    assert titles["1635"] == "Two Friends (1986)"
    assert titles["267"] == "unknown"


def test_titles_recbole_utf8(ml100k_recbole_dir: Path) -> None:
    titles = read_item_titles(ml100k_recbole_dir)
    assert len(titles) == 1_682
    assert titles["543"] == "Misérables, Les"
    assert titles["1"] == "Toy Story"


def test_titles_movies_dat_latin1(shared_data_dir: Path, tmp_path: Path) -> None:
    movies = shared_data_dir / "ml-1m-partial" / "movies.dat"
    if not movies.is_file():
        pytest.skip(f"{movies} not found")
    (tmp_path / "movies.dat").symlink_to(movies)
    write(tmp_path / "ratings.dat", DAT_LINES)
    titles = read_item_titles(tmp_path)
    assert len(titles) == 3_883
    assert titles["73"] == "Misérables, Les (1995)"
    assert titles["1320"] == "Alien³ (1992)"


def test_titles_missing_file_gives_empty(tmp_path: Path) -> None:
    write(tmp_path / "u.data", "1\t2\t3\t4\n")
    assert read_item_titles(tmp_path) == {}


# MovieLens-1M/10M ratings.dat


def test_dat_keeps_string_ids(tmp_path: Path) -> None:
    frame = read_movielens_dat(write(tmp_path / "ratings.dat", DAT_LINES))
    assert frame["user"].tolist() == ["007", "7", "12"]
    assert frame["item"].tolist() == ["42", "0042", "42"]
    assert frame["rating"].tolist() == [4.0, 5.0, 3.5]
    assert frame["timestamp"].tolist() == [978300760.0, 978302109.0, 978301968.0]


def test_dat_nested_ml10m_folder(tmp_path: Path) -> None:
    nested = tmp_path / "ml-10m" / "ml-10M100K"
    nested.mkdir(parents=True)
    write(nested / "ratings.dat", DAT_LINES)
    write(nested / "movies.dat", "42::Hitchhiker's Guide (2005)::Comedy|Sci-Fi\n")
    assert detect_format(tmp_path / "ml-10m") == "movielens-dat"
    frame = load_interactions(tmp_path / "ml-10m")
    assert len(frame) == 3
    assert read_item_titles(tmp_path / "ml-10m") == {"42": "Hitchhiker's Guide (2005)"}


# Generic tables

TABLE_ROWS = [("007", "i1", 4.0, 100.0), ("7", "i2", 2.5, 90.0), ("007", "i3", 5.0, 80.0)]
MAPPING = ColumnMap(user="uid", item="sku", rating="stars", timestamp="when")


def expected_table() -> pd.DataFrame:
    return pd.DataFrame(TABLE_ROWS, columns=["user", "item", "rating", "timestamp"])


def table_text(sep: str) -> str:
    lines = [sep.join(["uid", "sku", "stars", "when", "extra"])]
    lines += [
        sep.join([user, item, f"{rating}", f"{int(ts)}", "x"])
        for user, item, rating, ts in TABLE_ROWS
    ]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(("file_name", "sep"), [("log.csv", ","), ("log.tsv", "\t")])
def test_table_text_with_mapping(tmp_path: Path, file_name: str, sep: str) -> None:
    path = write(tmp_path / file_name, table_text(sep))
    frame = load_interactions(path, columns=MAPPING)
    pd.testing.assert_frame_equal(frame, expected_table(), check_dtype=False)
    assert pd.api.types.is_string_dtype(frame["user"])


def test_table_parquet_with_mapping(tmp_path: Path) -> None:
    source = pd.DataFrame(TABLE_ROWS, columns=["uid", "sku", "stars", "when"])
    source.to_parquet(tmp_path / "log.parquet")
    frame = load_interactions(tmp_path / "log.parquet", columns=MAPPING)
    pd.testing.assert_frame_equal(frame, expected_table(), check_dtype=False)
    assert frame["user"].tolist() == ["007", "7", "007"]


def test_table_parquet_integer_ids(tmp_path: Path) -> None:
    pd.DataFrame({"user_id": [1, 2], "item_id": [10, 20]}).to_parquet(tmp_path / "log.pq")
    frame = load_interactions(tmp_path / "log.pq")
    assert frame["user"].tolist() == ["1", "2"]
    assert frame["item"].tolist() == ["10", "20"]


def test_table_guesses_movielens_csv_names(tmp_path: Path) -> None:
    path = write(tmp_path / "ratings.csv", "userId,movieId,rating,timestamp\n1,31,2.5,1260759144\n")
    frame = load_interactions(path)
    assert frame.iloc[0].tolist() == ["1", "31", 2.5, 1260759144.0]


def test_table_rating_only_mapping(tmp_path: Path) -> None:
    path = write(tmp_path / "log.txt", "a;b;r\nu1;i1;3\n")
    frame = read_table(path, ColumnMap(user="a", item="b", rating="r"), sep=";")
    assert list(frame.columns) == ["user", "item", "rating"]


def test_table_keeps_na_strings_as_ids(tmp_path: Path) -> None:
    path = write(tmp_path / "log.csv", "user,item\nNA,null\n")
    frame = load_interactions(path)
    assert frame.iloc[0].tolist() == ["NA", "null"]


def test_table_quoted_field_with_separator(tmp_path: Path) -> None:
    path = write(tmp_path / "log.csv", 'user,item\n"a,b",x\n')
    assert load_interactions(path).iloc[0].tolist() == ["a,b", "x"]


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = write(tmp_path / "u.data", "\n\n1\t2\t3\t4\n\n5\t6\t7\t8\n\n")
    frame = load_interactions(path)
    assert frame["user"].tolist() == ["1", "5"]
    assert frame["timestamp"].tolist() == [4.0, 8.0]


def test_blank_lines_after_header(tmp_path: Path) -> None:
    path = write(tmp_path / "log.csv", "\nuser,item,rating\n\n1,2,x\n")
    with pytest.raises(DataError, match=r"log\.csv:4: invalid rating 'x'"):
        load_interactions(path, columns=ColumnMap(rating="rating"))


def test_crlf_line_endings(tmp_path: Path) -> None:
    path = tmp_path / "log.tsv"
    path.write_bytes(b"user\titem\ttimestamp\r\n1\t2\t30\r\n")
    frame = load_interactions(path, columns=ColumnMap(timestamp="timestamp"))
    assert frame.iloc[0].tolist() == ["1", "2", 30.0]


# Bad input


def test_missing_file_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.csv: file or folder not found"):
        load_interactions(tmp_path / "nope.csv")


def test_missing_u_data_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"u\.data: file not found"):
        load_interactions(tmp_path, fmt="movielens-100k")


def test_comma_file_read_as_tab(tmp_path: Path) -> None:
    write(tmp_path / "u.data", "196,242,3,881250949\n186,302,3,891717742\n")
    with pytest.raises(DataError, match=r"u\.data:1: expected 4 TAB-separated .* found 1.*comma"):
        load_interactions(tmp_path)


def test_comma_file_read_as_tsv(tmp_path: Path) -> None:
    path = write(tmp_path / "log.tsv", "user,item\n1,2\n")
    with pytest.raises(DataError, match=r"log\.tsv:1: found 1 column .*comma-separated"):
        load_interactions(path)


def test_misnamed_columns_listed(tmp_path: Path) -> None:
    path = write(tmp_path / "log.csv", "usr,item,stars\n1,2,3\n")
    mapping = ColumnMap(user="user", item="item", rating="rating")
    pattern = (
        r"log\.csv:1: missing columns \['user', 'rating'\]; "
        r"found columns \['usr', 'item', 'stars'\], expected \['user', 'item', 'rating'\]"
    )
    with pytest.raises(DataError, match=pattern):
        load_interactions(path, columns=mapping)


def test_unguessable_columns_listed(tmp_path: Path) -> None:
    path = write(tmp_path / "log.csv", "a,b\n1,2\n")
    with pytest.raises(DataError, match=r"log\.csv:1: no user or item column among \['a', 'b'\]"):
        load_interactions(path)


def test_recbole_missing_item_column(tmp_path: Path) -> None:
    path = write(tmp_path / "x.inter", "user_id:token\tmovie:token\n1\t2\n")
    with pytest.raises(DataError, match=r"x\.inter:1: missing columns \['item_id'\]"):
        load_interactions(path)


def test_non_numeric_rating_line(tmp_path: Path) -> None:
    text = "user,item,rating\n1,2,4\n\n3,4,five\n5,6,x\n"
    path = write(tmp_path / "log.csv", text)
    with pytest.raises(
        DataError, match=r"log\.csv:4: invalid rating 'five', expected a finite number"
    ):
        load_interactions(path, columns=ColumnMap(rating="rating"))


def test_non_numeric_timestamp_line(tmp_path: Path) -> None:
    write(tmp_path / "u.data", "1\t2\t3\t4\n1\t3\t3\t2020-01-01\n")
    with pytest.raises(DataError, match=r"u\.data:2: invalid timestamp '2020-01-01'"):
        load_interactions(tmp_path)


def test_non_numeric_recbole_line(tmp_path: Path) -> None:
    text = "user_id:token\titem_id:token\trating:float\n1\t2\t3\n1\t3\tbad\n"
    write(tmp_path / "x.inter", text)
    with pytest.raises(DataError, match=r"x\.inter:3: invalid rating 'bad'"):
        load_interactions(tmp_path)


def test_missing_field_line(tmp_path: Path) -> None:
    path = write(tmp_path / "u.data", "1\t2\t3\t4\n1\t3\t3\n")
    with pytest.raises(DataError, match=r"u\.data:2: missing timestamp"):
        load_interactions(path)


def test_missing_id_line(tmp_path: Path) -> None:
    path = write(tmp_path / "log.csv", "user,item\n1,2\n,3\n")
    with pytest.raises(DataError, match=r"log\.csv:3: missing user id"):
        load_interactions(path)


def test_extra_field_line(tmp_path: Path) -> None:
    path = write(tmp_path / "u.data", "1\t2\t3\t4\n1\t3\t3\t5\n\n1\t4\t3\t5\t9\n")
    with pytest.raises(
        DataError, match=r"u\.data:4: line has 5 fields but the first data line has 4"
    ):
        load_interactions(path)


def test_data_shorter_than_header(tmp_path: Path) -> None:
    path = write(tmp_path / "log.csv", "x,user,item\n1,2\n")
    with pytest.raises(DataError, match=r"log\.csv:2: line has 2 fields but the header has 3"):
        load_interactions(path)


def test_infinite_rating_line(tmp_path: Path) -> None:
    path = write(tmp_path / "u.data", "1\t2\t3\t4\n1\t3\tinf\t5\n")
    with pytest.raises(DataError, match=r"u\.data:2: invalid rating 'inf'"):
        load_interactions(path)


def test_multi_character_separator_rejected(tmp_path: Path) -> None:
    path = write(tmp_path / "log.txt", "user::item\n1::2\n")
    with pytest.raises(DataError, match=r"log\.txt: separator '::' must be a single character"):
        read_table(path, sep="::")


def test_empty_file(tmp_path: Path) -> None:
    path = write(tmp_path / "log.csv", "")
    with pytest.raises(DataError, match=r"log\.csv: file is empty"):
        load_interactions(path)


def test_blank_lines_only(tmp_path: Path) -> None:
    write(tmp_path / "u.data", "\n\n")
    with pytest.raises(DataError, match=r"u\.data: file is empty"):
        load_interactions(tmp_path)


def test_header_only(tmp_path: Path) -> None:
    path = write(tmp_path / "log.csv", "user,item\n")
    with pytest.raises(DataError, match=r"log\.csv: file has no data rows"):
        load_interactions(path)


def test_undecodable_bytes_line(tmp_path: Path) -> None:
    path = tmp_path / "x.inter"
    path.write_bytes(b"user_id:token\titem_id:token\n1\t2\n1\tcaf\xe9\n")
    with pytest.raises(DataError, match=r"x\.inter:3: cannot decode the line as utf-8"):
        load_interactions(path)


def test_single_colon_dat(tmp_path: Path) -> None:
    write(tmp_path / "ratings.dat", "1:2:3:4\n")
    with pytest.raises(DataError, match=r"ratings\.dat:1: expected 4 '::'-separated fields"):
        load_interactions(tmp_path)


def test_mixed_colon_dat_line(tmp_path: Path) -> None:
    write(tmp_path / "ratings.dat", "1::2::3::4\n1::3:3::4:\n")
    with pytest.raises(DataError, match=r"ratings\.dat:2: found a single ':'"):
        load_interactions(tmp_path)


def test_tab_file_read_as_dat(tmp_path: Path) -> None:
    write(tmp_path / "ratings.dat", "1\t2\t3\t4\n")
    with pytest.raises(DataError, match=r"ratings\.dat:1: .* found 1.*TAB-separated"):
        load_interactions(tmp_path)


def test_parquet_bad_value_row(tmp_path: Path) -> None:
    frame = pd.DataFrame({"user": ["1", "2"], "item": ["a", "b"], "rating": ["4", "oops"]})
    frame.to_parquet(tmp_path / "log.parquet")
    with pytest.raises(DataError, match=r"log\.parquet: row 2: invalid rating 'oops'"):
        load_interactions(tmp_path / "log.parquet")


def test_parquet_missing_column(tmp_path: Path) -> None:
    pd.DataFrame({"user": ["1"], "thing": ["a"]}).to_parquet(tmp_path / "log.parquet")
    mapping = ColumnMap(user="user", item="item")
    with pytest.raises(DataError, match=r"log\.parquet: missing columns \['item'\]"):
        load_interactions(tmp_path / "log.parquet", columns=mapping)


def test_corrupt_parquet(tmp_path: Path) -> None:
    path = write(tmp_path / "log.parquet", "not parquet at all")
    with pytest.raises(DataError, match=r"log\.parquet: not a valid Parquet file"):
        load_interactions(path)


def test_unknown_extension(tmp_path: Path) -> None:
    path = write(tmp_path / "log.txt", "user,item\n1,2\n")
    with pytest.raises(DataError, match=r"log\.txt: cannot infer the separator from extension"):
        load_interactions(path)


def test_unknown_format_name(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"unknown format 'excel'"):
        load_interactions(tmp_path, fmt="excel")


def test_folder_without_interactions(tmp_path: Path) -> None:
    write(tmp_path / "notes.txt", "hello\n")
    with pytest.raises(DataError, match=r"no interaction file found .*notes\.txt"):
        detect_format(tmp_path)


def test_mapping_rejected_for_folders(ml100k_raw_dir: Path) -> None:
    with pytest.raises(DataError, match=r"column mapping applies only to"):
        load_interactions(ml100k_raw_dir, columns=ColumnMap())
