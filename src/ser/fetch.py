"""Getting the corpora: verified downloads, safe extraction, or a copy from a local mirror."""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import stat
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from ser.audio import find_audio
from ser.corpora import CORPORA, ManifestReport, build_manifest, evenly_spaced
from ser.io import atomic_path, write_csv
from ser.params import FetchParams, SourceParams

MIRROR_ENV = "SER_DATA_MIRROR"  # names a folder holding ravdess/ and tess/, used instead of the network
CHUNK_BYTES = 1 << 20


class FetchError(RuntimeError):
    """A download or archive that cannot be used; the message says which and what to do."""


class ChecksumError(FetchError):
    pass


class UnsafeArchiveError(FetchError):
    pass


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def verify_md5(path: Path, expected: str | None, name: str) -> str:
    """Return the file's MD5; raise ChecksumError naming `name` (what the file is) and both values when it is
    not `expected`."""
    actual = file_md5(path)
    if expected is not None and actual != expected.lower():
        raise ChecksumError(
            f"{name}: MD5 mismatch, expected {expected.lower()}, got {actual}. The download is corrupt "
            "or the archive changed upstream: fetch again, or check the URL in params.yaml."
        )
    return actual


def download(source: SourceParams, dest: Path, timeout_s: float = 60.0) -> Path:
    """Stream `source.url` to `dest` through a temporary file, with a progress bar, and verify its MD5.

    A file already at `dest` whose MD5 matches is reused; the result appears under `dest` only once verified.
    """
    if dest.exists() and source.md5 is not None and file_md5(dest) == source.md5.lower():
        return dest
    with atomic_path(dest) as tmp:
        try:
            with urllib.request.urlopen(source.url, timeout=timeout_s) as response, open(tmp, "wb") as out:
                declared = int(response.headers.get("Content-Length") or 0) or None
                received = 0
                with tqdm(total=declared or source.bytes, unit="B", unit_scale=True, desc=f"fetch: {dest.name}") as bar:
                    while chunk := response.read(CHUNK_BYTES):
                        out.write(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
        except (OSError, http.client.HTTPException) as error:  # URLError, HTTPError; IncompleteRead
            raise FetchError(
                f"{source.url}: download failed ({error}). Check the network, or set {MIRROR_ENV} to a "
                "folder holding ravdess/ and tess/."
            ) from error
        for expected, what in ((declared, "the server announced"), (source.bytes, "params.yaml expects")):
            if expected is not None and received != expected:
                raise FetchError(
                    f"{source.url}: received {received} bytes, {what} {expected}; the download was cut off or "
                    "the archive changed upstream. Fetch again, or check the URL and size in params.yaml."
                )
        actual = verify_md5(tmp, source.md5, f"{source.url} (for {dest})")
        if source.md5 is None:
            print(f"fetch: {dest.name} has MD5 {actual}; pin it in params.yaml to verify later downloads")
    return dest


def _member_target(target: Path, info: zipfile.ZipInfo) -> Path:
    """Where a zip member would land, refusing absolute paths, `..`, drive letters and symbolic links."""
    name = info.filename.replace("\\", "/")
    parts = PurePosixPath(name).parts
    if name.startswith("/") or ".." in parts or (parts and ":" in parts[0]):
        raise UnsafeArchiveError(f"archive member {info.filename!r} would land outside {target}; refusing")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise UnsafeArchiveError(f"archive member {info.filename!r} is a symbolic link; refusing")
    resolved = (target / name).resolve()
    if not resolved.is_relative_to(target.resolve()):
        raise UnsafeArchiveError(f"archive member {info.filename!r} would land outside {target}; refusing")
    return resolved


def safe_extract(archive: Path, target: Path) -> None:
    """Extract a zip archive into the folder `target` (replaced whole), after checking every member."""
    try:
        with zipfile.ZipFile(archive) as zf, atomic_path(target, directory=True) as tmp:
            members = zf.infolist()
            for info in members:
                _member_target(tmp, info)  # check all before writing any
            for info in tqdm(members, desc=f"fetch: extracting {archive.name}", unit="file"):
                zf.extract(info, tmp)
    except zipfile.BadZipFile as error:
        raise FetchError(f"{archive}: not a readable zip archive ({error}); delete it and fetch again") from error


def copy_from_mirror(mirror: Path, corpus: str, target: Path, limit: int | None) -> None:
    """Copy the audio of `mirror/<corpus>/` (all, or `limit` evenly spaced clips) into `target`."""
    source = mirror / corpus
    if not source.is_dir():
        raise FetchError(f"{source}: not a folder; {MIRROR_ENV} must name a folder holding {' and '.join(CORPORA)}")
    files = evenly_spaced(find_audio(source), limit)
    if not files:
        raise FetchError(f"{source}: no audio files found")
    with atomic_path(target, directory=True) as tmp:
        for path in tqdm(files, desc=f"fetch: copying {corpus} from mirror", unit="clip"):
            dest = tmp / path.relative_to(source)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)  # contents only: the mirror is read-only, our copy must not be


def subsample(folder: Path, limit: int | None) -> None:
    """Delete all but `limit` evenly spaced audio files below `folder` (for test slices)."""
    files = find_audio(folder)
    keep = set(evenly_spaced(files, limit))
    for path in files:
        if path not in keep:
            path.unlink()


def fetch_corpora(
    params: FetchParams,
    silence_dbfs: float,
    raw_dir: Path,
    manifest_path: Path,
    download_dir: Path,
    mirror: Path | None,
) -> ManifestReport:
    """Put both corpora under `raw_dir/<corpus>/`, then write the manifest of every usable clip (clips whose
    peak is below `silence_dbfs` are reported silent and left out).

    From `mirror` when given (never written to), otherwise from the official archives, downloaded into
    `download_dir` (kept there as a verified cache) and extracted.
    """
    raw_dir.mkdir(parents=True, exist_ok=True)
    for corpus in CORPORA:
        if mirror is not None:
            copy_from_mirror(mirror, corpus, raw_dir / corpus, params.limit_per_corpus)
        else:
            source: SourceParams = getattr(params, corpus)
            archive = download(source, download_dir / f"{corpus}.zip")
            safe_extract(archive, raw_dir / corpus)
            subsample(raw_dir / corpus, params.limit_per_corpus)
    manifest, report = build_manifest(raw_dir, CORPORA, silence_dbfs)
    write_csv(manifest, manifest_path)
    return report


def mirror_from_env() -> Path | None:
    value = os.environ.get(MIRROR_ENV)
    return Path(value).expanduser() if value else None
