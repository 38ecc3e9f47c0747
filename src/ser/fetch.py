"""Getting the corpora: verified downloads, safe extraction, or a copy from a local mirror."""

from __future__ import annotations

import concurrent.futures
import hashlib
import http.client
import json
import os
import re
import shutil
import stat
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from ser.audio import find_audio
from ser.corpora import CORPORA, ManifestReport, build_manifest, evenly_spaced
from ser.errors import UserError
from ser.io import atomic_path, write_csv
from ser.params import FetchParams, LfsSourceParams, SourceParams

MIRROR_ENV = "SER_DATA_MIRROR"  # names a folder holding one folder per corpus, used instead of the network
CHUNK_BYTES = 1 << 20
LFS_DOWNLOADS = 8  # files fetched at once from an LFS store: small files, so latency, not bandwidth, limits
# What one corpus archive may extract to, far above any corpus's: more, or a member named twice, is refused
# before anything is written (a decompression bomb, or not the archive it should be). zipfile never extracts a
# member beyond the size its header declares, so the declared sizes bound what is written.
ARCHIVE_MAX_MEMBERS = 100_000
ARCHIVE_MAX_BYTES = 64 << 30
# A Git LFS pointer file (https://github.com/git-lfs/git-lfs/blob/main/docs/spec.md), as committed to git.
LFS_POINTER = re.compile(r"version https://git-lfs\.github\.com/spec/v1\noid sha256:([0-9a-f]{64})\nsize (\d+)\n?")


class FetchError(UserError, RuntimeError):
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
                f"folder holding {', '.join(CORPORA)}."
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


def _get(url: str, timeout_s: float) -> bytes:
    """The whole body of a small HTTP(S) resource (a file list, a pointer)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.read()
    except (OSError, http.client.HTTPException) as error:
        raise FetchError(
            f"{url}: download failed ({error}). Check the network, or set {MIRROR_ENV} to a local copy."
        ) from error


def lfs_file_list(source: LfsSourceParams, timeout_s: float = 60.0) -> list[str]:
    """The repository paths of the corpus's .wav files, from the repository's file list (sorted)."""
    body = _get(source.tree, timeout_s)
    try:
        listing = json.loads(body)
        entries = listing["tree"]
    except (ValueError, KeyError, TypeError) as error:
        raise FetchError(
            f"{source.tree}: not a repository file list ({error!r}); check the tree URL in params.yaml"
        ) from None
    if listing.get("truncated"):
        raise FetchError(f"{source.tree}: the file list is truncated; list {source.folder} on its own")
    prefix = source.folder.strip("/") + "/"
    paths = sorted(
        entry["path"]
        for entry in entries
        if entry.get("type") == "blob" and entry["path"].startswith(prefix) and entry["path"].lower().endswith(".wav")
    )
    if not paths:
        raise FetchError(f"{source.tree}: no .wav files under {prefix}; check the folder in params.yaml")
    return paths


def parse_lfs_pointer(text: str, where: str) -> tuple[str, int]:
    """(sha256, size in bytes) of a Git LFS pointer file's text; `where` names it in the error."""
    match = LFS_POINTER.fullmatch(text)
    if match is None:
        raise FetchError(f"{where}: not a Git LFS pointer (expected version, oid sha256 and size lines)")
    return match[1], int(match[2])


def _file_digest(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def fetch_lfs_file(source: LfsSourceParams, path: str, download_dir: Path, timeout_s: float = 60.0) -> Path:
    """Download one file of an LFS repository into `download_dir/<path>` and verify it against its pointer.

    The pointer is kept beside it (`<path>.pointer`), so a fetch that was interrupted, or run again, skips
    every file already verified and downloads only the rest. A file that does not match its pointer is an
    error naming it and both checksums (or both sizes, when it was cut off); nothing unverified is kept.
    """
    dest = download_dir / path
    pointer_path = dest.with_name(dest.name + ".pointer")
    if pointer_path.is_file():
        pointer = pointer_path.read_text()
    else:
        pointer = _get(source.pointers + urllib.parse.quote(path), timeout_s).decode("utf-8", "replace")
    sha256, size = parse_lfs_pointer(pointer, source.pointers + path)
    if not pointer_path.is_file():
        with atomic_path(pointer_path) as tmp:
            tmp.write_text(pointer)
    if dest.is_file() and dest.stat().st_size == size and _file_digest(dest) == (sha256, size):
        return dest
    url = source.media + urllib.parse.quote(path)
    with atomic_path(dest) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response, open(tmp, "wb") as out:
                while chunk := response.read(CHUNK_BYTES):
                    out.write(chunk)
        except (OSError, http.client.HTTPException) as error:
            raise FetchError(f"{url}: download failed ({error}); run fetch again to resume") from error
        actual_sha256, actual_size = _file_digest(tmp)
        if actual_size != size:
            raise ChecksumError(
                f"{path}: received {actual_size} bytes, its LFS pointer says {size}; the download was cut off. "
                "Run fetch again to resume."
            )
        if actual_sha256 != sha256:
            raise ChecksumError(
                f"{path}: sha256 mismatch, its LFS pointer says {sha256}, got {actual_sha256}. The download is "
                "corrupt or the file changed upstream: run fetch again."
            )
    return dest


def fetch_lfs_corpus(
    source: LfsSourceParams, download_dir: Path, limit: int | None = None, timeout_s: float = 60.0
) -> list[Path]:
    """The .wav files of `source.folder` (all, or `limit` evenly spaced ones: only those are downloaded),
    each verified against its pointer, under `download_dir/<folder>/`; returns their paths."""
    paths = evenly_spaced(lfs_file_list(source, timeout_s), limit)
    with concurrent.futures.ThreadPoolExecutor(LFS_DOWNLOADS) as pool:
        jobs = [pool.submit(fetch_lfs_file, source, path, download_dir, timeout_s) for path in paths]
        try:
            for job in tqdm(
                concurrent.futures.as_completed(jobs), total=len(jobs), desc=f"fetch: {source.folder}", unit="file"
            ):
                job.result()
        except BaseException:
            for job in jobs:
                job.cancel()
            raise
    return [download_dir / path for path in paths]


def copy_files(files: list[Path], source: Path, target: Path, desc: str) -> None:
    """Copy `files` (below the folder `source`) into the folder `target`, keeping their paths below `source`;
    `target` is replaced whole, once complete."""
    if not files:
        raise FetchError(f"{source}: no audio files found")
    with atomic_path(target, directory=True) as tmp:
        for path in tqdm(files, desc=desc, unit="clip"):
            dest = tmp / path.relative_to(source)
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                shutil.copyfile(path, dest)  # contents only: the mirror is read-only, our copy must not be
            except OSError as error:  # a broken link, a FIFO, no permission: named, never skipped
                why = "a broken link" if path.is_symlink() and not path.exists() else error.strerror or error
                raise FetchError(f"{path}: cannot copy it ({why}); fix or remove it in the mirror") from None


def _member_target(archive: Path, target: Path, info: zipfile.ZipInfo) -> Path:
    """Where a member of `archive` would land below `target`, refusing absolute paths, `..`, drive letters and
    symbolic links."""
    name = info.filename.replace("\\", "/")
    parts = PurePosixPath(name).parts
    outside = UnsafeArchiveError(f"{archive}: member {info.filename!r} would land outside its folder; refusing")
    if name.startswith("/") or ".." in parts or (parts and ":" in parts[0]):
        raise outside
    if stat.S_ISLNK(info.external_attr >> 16):
        raise UnsafeArchiveError(f"{archive}: member {info.filename!r} is a symbolic link; refusing")
    resolved = (target / name).resolve()
    if not resolved.is_relative_to(target.resolve()):
        raise outside
    return resolved


def check_members(archive: Path, members: list[zipfile.ZipInfo], target: Path) -> None:
    """UnsafeArchiveError unless every member lands inside `target` (_member_target), no two land on the same
    path, and there are at most ARCHIVE_MAX_MEMBERS of them declaring at most ARCHIVE_MAX_BYTES in all."""
    if len(members) > ARCHIVE_MAX_MEMBERS:
        raise UnsafeArchiveError(
            f"{archive}: {len(members)} members, more than the {ARCHIVE_MAX_MEMBERS} a corpus archive may hold; "
            "refusing (delete it and fetch again)"
        )
    total = sum(info.file_size for info in members)
    if total > ARCHIVE_MAX_BYTES:
        raise UnsafeArchiveError(
            f"{archive}: would extract {total / 2**20:,.0f} MiB, more than the {ARCHIVE_MAX_BYTES / 2**20:,.0f} MiB "
            "a corpus archive may; refusing (a decompression bomb?)"
        )
    landed: dict[Path, str] = {}
    for info in members:
        path = _member_target(archive, target, info)
        if path in landed:
            raise UnsafeArchiveError(
                f"{archive}: members {landed[path]!r} and {info.filename!r} land on the same path; refusing"
            )
        landed[path] = info.filename


def safe_extract(archive: Path, target: Path) -> None:
    """Extract a zip archive into the folder `target` (replaced whole), after checking every member."""
    try:
        with zipfile.ZipFile(archive) as zf, atomic_path(target, directory=True) as tmp:
            members = zf.infolist()
            check_members(archive, members, tmp)  # all before writing any
            for info in tqdm(members, desc=f"fetch: extracting {archive.name}", unit="file"):
                zf.extract(info, tmp)
    except zipfile.BadZipFile as error:
        raise FetchError(f"{archive}: not a readable zip archive ({error}); delete it and fetch again") from error


def copy_from_mirror(mirror: Path, corpus: str, target: Path, limit: int | None) -> None:
    """Copy the audio of `mirror/<corpus>/` (all, or `limit` evenly spaced clips) into `target`."""
    source = mirror / corpus
    if not source.is_dir():
        raise FetchError(f"{source}: not a folder; {MIRROR_ENV} must name a folder holding {', '.join(CORPORA)}")
    copy_files(evenly_spaced(find_audio(source), limit), source, target, f"fetch: copying {corpus} from mirror")


def subsample(folder: Path, limit: int | None) -> None:
    """Delete all but `limit` evenly spaced audio files below `folder` (for test slices)."""
    files = find_audio(folder)
    keep = set(evenly_spaced(files, limit))
    for path in files:
        if path not in keep:
            path.unlink()


def fetch_zip(source: SourceParams, download_dir: Path, target: Path, limit: int | None) -> None:
    """A corpus published as one zip archive: downloaded and verified, extracted into `target`."""
    archive = download(source, download_dir / f"{target.name}.zip")
    safe_extract(archive, target)
    subsample(target, limit)


def fetch_lfs(source: LfsSourceParams, download_dir: Path, target: Path, limit: int | None) -> None:
    """A corpus kept in a Git LFS repository: its files downloaded one by one, verified, copied into `target`."""
    files = fetch_lfs_corpus(source, download_dir / target.name, limit)
    copy_files(files, download_dir / target.name, target, f"fetch: copying {target.name}")


FETCHERS = {"zip": fetch_zip, "lfs": fetch_lfs}  # a Corpus's `source` -> how to get it


def fetch_corpora(
    params: FetchParams,
    silence_dbfs: float,
    raw_dir: Path,
    manifest_path: Path,
    download_dir: Path,
    mirror: Path | None,
) -> ManifestReport:
    """Put every corpus under `raw_dir/<corpus>/`, then write the manifest of every usable clip (clips whose
    peak is below `silence_dbfs` are reported silent and left out).

    From `mirror` when given (never written to), otherwise from the official sources into `download_dir`
    (kept there as a verified cache): a zip archive, extracted; or a Git LFS store, file by file.
    """
    raw_dir.mkdir(parents=True, exist_ok=True)
    for corpus, spec in CORPORA.items():
        if mirror is not None:
            copy_from_mirror(mirror, corpus, raw_dir / corpus, params.limit_per_corpus)
        else:
            FETCHERS[spec.source](getattr(params, corpus), download_dir, raw_dir / corpus, params.limit_per_corpus)
    manifest, report = build_manifest(raw_dir, CORPORA, silence_dbfs)
    write_csv(manifest, manifest_path)
    return report


def mirror_from_env() -> Path | None:
    """The folder $SER_DATA_MIRROR names, made absolute (None when unset). A relative path is taken from the
    current folder, and must exist there: DVC runs stages, and queued experiments, in folders of its own."""
    value = os.environ.get(MIRROR_ENV)
    if not value:
        return None
    path = Path(value).expanduser().absolute()
    if not path.is_dir():
        raise FetchError(
            f"{MIRROR_ENV}={value}: {path} is not a folder; name the mirror by its absolute path "
            "(queued DVC experiments run in a temporary copy of the repository)"
        )
    return path
