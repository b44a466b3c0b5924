"""Registry of public datasets, and lookup or download of their folders.

:func:`resolve_dataset` searches ``data_dir``, then ``$METAREC_DATA_DIR``, then the user
cache, and downloads the official archive only when no folder is found.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import platformdirs

from metarec.data.loaders import detect_format
from metarec.errors import DataError

logger = logging.getLogger(__name__)

DATA_DIR_ENV = "METAREC_DATA_DIR"
CACHE_DIR_ENV = "METAREC_CACHE_DIR"
DOWNLOAD_BASE_URL_ENV = "METAREC_DOWNLOAD_BASE_URL"

_CHUNK_BYTES = 1 << 20
_TIMEOUT_S = 60.0
_CHECKSUM_ALGORITHMS = ("md5", "sha256")


@dataclass(frozen=True)
class DatasetSpec:
    """Public dataset archive: where to fetch it and how to check and unpack it.

    ``checksum`` is ``"md5:<hex>"`` or ``"sha256:<hex>"`` of the zip file, and
    ``archive_folder`` is the folder inside the zip that becomes the dataset folder.
    ``format`` is the :func:`metarec.data.loaders.detect_format` name of its files.
    """

    name: str
    url: str
    checksum: str
    archive_folder: str
    format: str

    def __post_init__(self) -> None:
        algorithm, _, digest = self.checksum.partition(":")
        if algorithm not in _CHECKSUM_ALGORITHMS or not digest:
            raise ValueError(
                f"checksum of dataset {self.name!r} must read 'md5:<hex>' or 'sha256:<hex>', "
                f"got {self.checksum!r}"
            )


_GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens"

# The MD5 digests are the ones GroupLens publishes for its official archives.
DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            name="ml-100k",
            url=f"{_GROUPLENS_URL}/ml-100k.zip",
            checksum="md5:0e33842e24a9c977be4e0107933c0723",
            archive_folder="ml-100k",
            format="movielens-100k",
        ),
        DatasetSpec(
            name="ml-1m",
            url=f"{_GROUPLENS_URL}/ml-1m.zip",
            checksum="md5:c4d9eecfca2ab87c1945afe126590906",
            archive_folder="ml-1m",
            format="movielens-dat",
        ),
        DatasetSpec(
            name="ml-10m",
            url=f"{_GROUPLENS_URL}/ml-10m.zip",
            checksum="md5:ce571fd55effeba0271552578f2648bd",
            archive_folder="ml-10M100K",
            format="movielens-dat",
        ),
    )
}


def resolve_dataset(
    name: str | DatasetSpec,
    data_dir: str | Path | None = None,
    *,
    cache_dir: str | Path | None = None,
    download: bool = True,
) -> Path:
    """Return the folder of a dataset, downloading it into the cache when no copy exists.

    The folder ``<name>`` is searched in ``data_dir``, then in ``$METAREC_DATA_DIR``, then
    in the cache (``cache_dir``, else ``$METAREC_CACHE_DIR``, else the platform user cache).
    The first folder found must contain loadable files. A folder of any name is
    accepted when found, and only downloads need a registry entry.
    ``name`` may also be a DatasetSpec, for example to fetch from another URL.
    """
    spec = name if isinstance(name, DatasetSpec) else DATASETS.get(name)
    dataset = name.name if isinstance(name, DatasetSpec) else name
    cache = cache_root(cache_dir)
    searched = _search_roots(data_dir, cache)
    for root in searched:
        candidate = root / dataset
        if candidate.is_dir():
            _check_loadable(candidate)
            logger.info("Using dataset %s at %s", dataset, candidate)
            return candidate
    places = ", ".join(str(root / dataset) for root in searched)
    if spec is None:
        raise DataError(
            f"unknown dataset {dataset!r}, and no folder of that name at {places}",
            fix=f"Use one of {sorted(DATASETS)} or put the dataset folder in the data directory",
        )
    if not download:
        raise DataError(
            f"dataset {dataset!r} not found at {places}, and downloading is off",
            fix=f"Allow the download or extract {spec.url} into one of those places",
        )
    return download_dataset(spec, cache / dataset)


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """Return ``cache_dir``, else ``$METAREC_CACHE_DIR``, else the platform user cache folder."""
    if cache_dir is not None:
        return Path(cache_dir)
    from_env = os.environ.get(CACHE_DIR_ENV)
    if from_env:
        return Path(from_env)
    return Path(platformdirs.user_cache_dir("metarec"))


def download_dataset(spec: DatasetSpec, target: Path) -> Path:
    """Download, verify and extract ``spec`` into the new folder ``target``.

    Everything happens in a temporary folder next to ``target``, which is moved into place
    with one ``os.replace``, so an interrupted run never leaves a partial ``target``.
    A killed process leaves its hidden ``.<name>.*.partial`` folder, which is safe to delete.
    """
    url = download_url(spec)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(
        tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    )
    try:
        archive = staging / (Path(urlsplit(url).path).name or f"{spec.name}.zip")
        _download(url, archive)
        _verify_checksum(archive, spec.checksum, url)
        unpacked = _extract(archive, staging / "unpacked", spec.archive_folder)
        _move_into_place(unpacked, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _check_loadable(target)
    logger.info("Dataset %s is ready at %s", spec.name, target)
    return target


def download_url(spec: DatasetSpec) -> str:
    """Return ``spec.url``, or its file name under ``$METAREC_DOWNLOAD_BASE_URL`` when set."""
    base = os.environ.get(DOWNLOAD_BASE_URL_ENV)
    if not base:
        return spec.url
    file_name = spec.url.rsplit("/", 1)[-1]
    return f"{base.rstrip('/')}/{file_name}"


def _search_roots(data_dir: str | Path | None, cache: Path) -> list[Path]:
    roots = [] if data_dir is None else [Path(data_dir)]
    from_env = os.environ.get(DATA_DIR_ENV)
    if from_env:
        roots.append(Path(from_env))
    roots.append(cache)
    return roots


def _check_loadable(folder: Path) -> None:
    try:
        detect_format(folder)
    except DataError as error:
        found = sorted(entry.name for entry in folder.iterdir())
        raise DataError(
            f"dataset folder has no loadable interaction file (it contains {found[:10]})",
            path=folder,
            fix="Add u.data (MovieLens-100K), ratings.dat (MovieLens-1M/10M) or "
            "<name>.inter (RecBole), or delete the folder so that it is downloaded again",
        ) from error


def _download(url: str, destination: Path) -> None:
    scheme = urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise DataError(f"download URL {url!r} must use http or https", fix="Fix the URL")
    logger.info("Downloading %s", url)
    fix = f"Check the URL and ${DOWNLOAD_BASE_URL_ENV}, or download the archive by hand"
    try:
        # NOTE: the timeout bounds each read, not the whole download, so a server that
        # trickles bytes can hold a run for longer than _TIMEOUT_S.
        with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response:
            size = _copy_stream(response, destination)
    except urllib.error.HTTPError as error:
        message = f"download of {url} failed: HTTP {error.code} {error.reason}"
        raise DataError(message, fix=fix) from error
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        raise DataError(f"download of {url} failed: {error}", fix=fix) from error
    logger.info("Downloaded %d bytes from %s", size, url)


def _copy_stream(response: BinaryIO, destination: Path) -> int:
    size = 0
    with destination.open("wb") as handle:
        while chunk := response.read(_CHUNK_BYTES):
            handle.write(chunk)
            size += len(chunk)
    return size


def _verify_checksum(archive: Path, checksum: str, url: str) -> None:
    algorithm, _, expected = checksum.partition(":")
    actual = _file_digest(archive, algorithm)
    if actual != expected.lower():
        archive.unlink()
        raise DataError(
            f"checksum mismatch for {url}: expected {algorithm}:{expected}, "
            f"got {algorithm}:{actual}",
            fix="The download is corrupt or the file changed upstream. "
            "The archive was deleted, so retry or check the URL",
        )
    logger.info("Verified %s checksum of %s", algorithm, archive.name)


def _file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm, usedforsecurity=False)
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _extract(archive: Path, destination: Path, folder: str) -> Path:
    """Unpack the zip into ``destination`` and return the path of its ``folder``."""
    logger.info("Extracting %s", archive.name)
    try:
        with zipfile.ZipFile(archive) as bundle:
            _check_member_paths(bundle, destination, archive)
            bundle.extractall(destination)
    except zipfile.BadZipFile as error:
        raise DataError(f"not a valid zip archive ({error})", path=archive) from error
    unpacked = destination / folder
    if not unpacked.is_dir():
        found = sorted(entry.name for entry in destination.iterdir())
        raise DataError(
            f"archive has no folder {folder!r}; its top level contains {found}",
            path=archive,
            fix="Check the archive_folder of the dataset spec",
        )
    return unpacked


def _check_member_paths(bundle: zipfile.ZipFile, destination: Path, archive: Path) -> None:
    root = destination.resolve()
    for member in bundle.namelist():
        resolved = (root / member).resolve()
        if not resolved.is_relative_to(root):
            raise DataError(f"archive member {member!r} points outside the archive", path=archive)


def _move_into_place(unpacked: Path, target: Path) -> None:
    try:
        os.replace(unpacked, target)
    except OSError as error:
        # Another process may have finished the same download first, and its copy is fine.
        if target.is_dir():
            logger.info("Dataset folder %s appeared during the download, so it is kept", target)
            return
        raise DataError(f"cannot move the dataset into place ({error})", path=target) from error
