from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import logging
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from metarec.data.download import (
    CACHE_DIR_ENV,
    DATA_DIR_ENV,
    DATASETS,
    DOWNLOAD_BASE_URL_ENV,
    DatasetSpec,
    cache_root,
    resolve_dataset,
)
from metarec.data.loaders import load_interactions
from metarec.errors import DataError

logger = logging.getLogger(__name__)

SLICE_LINES = 200


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Static file handler that logs requests through logging instead of stderr."""

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("test server: " + format, *args)


@pytest.fixture
def served_dir(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """Serve a fresh folder over HTTP on 127.0.0.1 and return (folder, base URL)."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    serve = functools.partial(server.serve_forever, poll_interval=0.02)
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (DATA_DIR_ENV, CACHE_DIR_ENV, DOWNLOAD_BASE_URL_ENV):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def u_data_slice(ml100k_raw_dir: Path) -> bytes:
    with (ml100k_raw_dir / "u.data").open("rb") as handle:
        return b"".join(handle.readline() for _ in range(SLICE_LINES))


def build_zip(path: Path, folder: str, u_data: bytes) -> str:
    """Write a GroupLens-style zip with ``folder/u.data`` and return its md5 hex digest."""
    with zipfile.ZipFile(path, "w") as bundle:
        bundle.writestr(f"{folder}/u.data", u_data)
        bundle.writestr(f"{folder}/README", "test archive\n")
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def make_dataset(root: Path, name: str, u_data: bytes) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "u.data").write_bytes(u_data)
    return folder


def test_registry_movielens_entries() -> None:
    assert DATASETS["ml-100k"].checksum == "md5:0e33842e24a9c977be4e0107933c0723"
    assert DATASETS["ml-1m"].url.endswith("/datasets/movielens/ml-1m.zip")
    assert DATASETS["ml-10m"].archive_folder == "ml-10M100K"


def test_download_verify_extract(
    served_dir: tuple[Path, str], tmp_path: Path, u_data_slice: bytes
) -> None:
    root, base_url = served_dir
    digest = build_zip(root / "slice.zip", "ml-100k", u_data_slice)
    spec = dataclasses.replace(
        DATASETS["ml-100k"], url=f"{base_url}/slice.zip", checksum=f"md5:{digest}"
    )
    cache = tmp_path / "cache"
    folder = resolve_dataset(spec, cache_dir=cache)
    assert folder == cache / "ml-100k"
    assert sorted(entry.name for entry in folder.iterdir()) == ["README", "u.data"]
    assert len(load_interactions(folder)) == SLICE_LINES
    assert [entry.name for entry in cache.iterdir()] == ["ml-100k"]


def test_second_resolve_uses_cache(
    served_dir: tuple[Path, str], tmp_path: Path, u_data_slice: bytes
) -> None:
    root, base_url = served_dir
    digest = build_zip(root / "slice.zip", "ml-100k", u_data_slice)
    spec = dataclasses.replace(
        DATASETS["ml-100k"], url=f"{base_url}/slice.zip", checksum=f"md5:{digest}"
    )
    first = resolve_dataset(spec, cache_dir=tmp_path / "cache")
    (root / "slice.zip").unlink()
    assert resolve_dataset(spec, cache_dir=tmp_path / "cache") == first


def test_sha256_checksum(served_dir: tuple[Path, str], tmp_path: Path, u_data_slice: bytes) -> None:
    root, base_url = served_dir
    build_zip(root / "slice.zip", "ml-100k", u_data_slice)
    digest = hashlib.sha256((root / "slice.zip").read_bytes()).hexdigest()
    spec = DatasetSpec("slice", f"{base_url}/slice.zip", f"sha256:{digest}", "ml-100k", "")
    assert resolve_dataset(spec, cache_dir=tmp_path).name == "slice"


def test_checksum_mismatch_leaves_nothing(
    served_dir: tuple[Path, str],
    tmp_path: Path,
    u_data_slice: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, base_url = served_dir
    (root / "mirror").mkdir()
    actual = build_zip(root / "mirror" / "ml-100k.zip", "ml-100k", u_data_slice)
    monkeypatch.setenv(DOWNLOAD_BASE_URL_ENV, f"{base_url}/mirror/")
    cache = tmp_path / "cache"
    pattern = (
        rf"checksum mismatch for {base_url}/mirror/ml-100k\.zip: "
        rf"expected md5:0e33842e24a9c977be4e0107933c0723, got md5:{actual}"
    )
    with pytest.raises(DataError, match=pattern):
        resolve_dataset("ml-100k", cache_dir=cache)
    assert list(cache.iterdir()) == []


def test_archive_without_folder(
    served_dir: tuple[Path, str], tmp_path: Path, u_data_slice: bytes
) -> None:
    root, base_url = served_dir
    digest = build_zip(root / "slice.zip", "other-name", u_data_slice)
    spec = dataclasses.replace(
        DATASETS["ml-100k"], url=f"{base_url}/slice.zip", checksum=f"md5:{digest}"
    )
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=r"archive has no folder 'ml-100k'.*other-name"):
        resolve_dataset(spec, cache_dir=cache)
    assert list(cache.iterdir()) == []


def test_http_404(served_dir: tuple[Path, str], tmp_path: Path) -> None:
    _, base_url = served_dir
    spec = dataclasses.replace(DATASETS["ml-100k"], url=f"{base_url}/missing.zip")
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=r"download of .*/missing\.zip failed: HTTP 404"):
        resolve_dataset(spec, cache_dir=cache)
    assert list(cache.iterdir()) == []


def test_search_order(tmp_path: Path, u_data_slice: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit = make_dataset(tmp_path / "explicit", "ml-100k", u_data_slice)
    from_env = make_dataset(tmp_path / "env", "ml-100k", u_data_slice)
    cached = make_dataset(tmp_path / "cache", "ml-100k", u_data_slice)
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "env"))
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    assert resolve_dataset("ml-100k", tmp_path / "explicit", download=False) == explicit
    assert resolve_dataset("ml-100k", download=False) == from_env
    monkeypatch.delenv(DATA_DIR_ENV)
    assert resolve_dataset("ml-100k", download=False) == cached


def test_cache_dir_argument_beats_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "env-cache"))
    assert cache_root(tmp_path / "given") == tmp_path / "given"
    assert cache_root() == tmp_path / "env-cache"


def test_local_folder_of_any_name(tmp_path: Path, u_data_slice: bytes) -> None:
    folder = make_dataset(tmp_path, "my-ratings", u_data_slice)
    assert resolve_dataset("my-ratings", tmp_path, cache_dir=tmp_path / "cache") == folder


def test_unknown_dataset_lists_known(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"unknown dataset 'ml-5k'.*'ml-100k', 'ml-10m', 'ml-1m'"):
        resolve_dataset("ml-5k", tmp_path, cache_dir=tmp_path / "cache")


def test_not_found_without_download(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"dataset 'ml-1m' not found at .*downloading is off"):
        resolve_dataset("ml-1m", tmp_path, cache_dir=tmp_path / "cache", download=False)


def test_unloadable_folder_named(tmp_path: Path) -> None:
    (tmp_path / "ml-100k").mkdir()
    (tmp_path / "ml-100k" / "notes.txt").write_text("nothing here\n")
    with pytest.raises(DataError, match=r"ml-100k: dataset folder has no loadable interaction"):
        resolve_dataset("ml-100k", tmp_path, cache_dir=tmp_path / "cache", download=False)


def test_bad_checksum_spec() -> None:
    with pytest.raises(ValueError, match=r"must read 'md5:<hex>' or 'sha256:<hex>'"):
        DatasetSpec("x", "http://127.0.0.1/x.zip", "crc32:1234", "x", "recbole")
