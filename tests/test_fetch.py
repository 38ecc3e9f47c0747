"""Verified downloads from a local HTTP server, safe extraction, mirror copies, and the whole fetch."""

from __future__ import annotations

import dataclasses
import filecmp
import hashlib
import http.server
import os
import shutil
import socket
import stat
import threading
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from ser.corpora import MANIFEST_COLUMNS
from ser.fetch import (
    ChecksumError,
    FetchError,
    UnsafeArchiveError,
    copy_from_mirror,
    download,
    fetch_corpora,
    safe_extract,
)
from ser.params import FetchParams, SourceParams

RAVDESS_MEMBERS = {  # name inside the zip -> tone frequency
    "Actor_01/03-01-01-01-01-01-01.wav": 220,
    "Actor_01/03-01-05-02-02-01-01.wav": 330,
    "Actor_02/03-01-03-01-01-02-02.wav": 440,
    "Actor_02/03-01-08-02-02-02-02.wav": 550,
}
TESS_MEMBERS = {
    "TESS Toronto emotional speech set data/OAF_angry/OAF_back_angry.wav": 260,
    "TESS Toronto emotional speech set data/OAF_Pleasant_surprise/OAF_back_ps.wav": 370,
    "TESS Toronto emotional speech set data/YAF_fear/YAF_dog_fear.wav": 480,
}


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def source(url: str, md5: str | None = None) -> SourceParams:
    """An archive on the test server: no size expected (params.yaml's sizes are those of the real archives)."""
    return SourceParams(url=url, md5=md5, bytes=None)


def listing(folder: Path, dir_mtimes: bool = True) -> dict[str, tuple]:
    """Every entry below `folder` with its size, mode and mtime: a snapshot to compare."""
    out = {}
    for path in [folder, *folder.rglob("*")]:
        st = path.lstat()
        mtime = st.st_mtime_ns if dir_mtimes or not stat.S_ISDIR(st.st_mode) else None
        out[path.relative_to(folder).as_posix()] = (st.st_mode, st.st_size, mtime)
    return out


class Server:
    """Serves `files` (URL path -> bytes) on 127.0.0.1 and records every requested path."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server():
    srv = Server()
    yield srv
    srv.close()


@pytest.fixture
def make_zip(tmp_path, write_tone):
    """make_zip(name, {member: freq}) -> path of a zip of tiny wav files (16 kHz, 0.25 s)."""

    def make(name: str, members: dict[str, float]) -> Path:
        staging = tmp_path / f"staging-{name}"
        archive = tmp_path / "archives" / name
        archive.parent.mkdir(exist_ok=True)
        with zipfile.ZipFile(archive, "w") as zf:
            for member, freq in members.items():
                write_tone(staging / member, freq)
                zf.write(staging / member, member)
        shutil.rmtree(staging)
        return archive

    return make


# --- download --------------------------------------------------------------------------------------------


def test_download_with_the_right_md5_writes_the_file(server, make_zip, tmp_path):
    archive = make_zip("ravdess.zip", RAVDESS_MEMBERS)
    server.files["/r.zip"] = archive.read_bytes()
    dest = tmp_path / "downloads" / "ravdess.zip"

    got = download(source(server.url("/r.zip"), md5_of(archive).upper()), dest)

    assert got == dest
    assert dest.read_bytes() == archive.read_bytes()
    assert os.listdir(dest.parent) == ["ravdess.zip"]  # no temp file left behind
    assert server.requests == ["/r.zip"]


def test_download_with_a_wrong_md5_raises_and_leaves_nothing(server, make_zip, tmp_path):
    archive = make_zip("ravdess.zip", RAVDESS_MEMBERS)
    server.files["/r.zip"] = archive.read_bytes()
    dest = tmp_path / "downloads" / "ravdess.zip"
    wrong = "0123456789abcdef0123456789abcdef"

    with pytest.raises(ChecksumError, match=f"MD5 mismatch, expected {wrong}, got {md5_of(archive)}"):
        download(source(server.url("/r.zip"), wrong), dest)

    assert not dest.exists()
    assert os.listdir(dest.parent) == []


def test_download_404_raises_fetch_error_naming_the_url(server, tmp_path):
    dest = tmp_path / "downloads" / "missing.zip"
    url = server.url("/no/such/file.zip")
    with pytest.raises(FetchError) as caught:
        download(source(url), dest)
    assert url in str(caught.value)
    assert not isinstance(caught.value, ChecksumError)
    assert os.listdir(dest.parent) == []


def test_download_from_a_closed_port_raises_fetch_error(tmp_path):
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/r.zip"
    with pytest.raises(FetchError, match=url):
        download(source(url), tmp_path / "r.zip", timeout_s=5)
    assert os.listdir(tmp_path) == []


def test_download_reuses_a_verified_file_without_a_request(server, make_zip, tmp_path):
    archive = make_zip("ravdess.zip", RAVDESS_MEMBERS)
    server.files["/r.zip"] = archive.read_bytes()
    pinned = source(server.url("/r.zip"), md5_of(archive))
    dest = tmp_path / "ravdess.zip"

    download(pinned, dest)
    mtime = dest.stat().st_mtime_ns
    assert download(pinned, dest) == dest
    assert server.requests == ["/r.zip"]
    assert dest.stat().st_mtime_ns == mtime

    # A stale file that does not match the pinned MD5 is fetched again and replaced.
    dest.write_bytes(b"stale")
    download(pinned, dest)
    assert server.requests == ["/r.zip", "/r.zip"]
    assert dest.read_bytes() == archive.read_bytes()


def test_download_without_a_pinned_md5_always_fetches_and_prints_the_md5(server, make_zip, tmp_path, capsys):
    archive = make_zip("tess.zip", TESS_MEMBERS)
    server.files["/t.zip"] = archive.read_bytes()
    dest = tmp_path / "tess.zip"
    download(source(server.url("/t.zip")), dest)
    download(source(server.url("/t.zip")), dest)
    assert server.requests == ["/t.zip", "/t.zip"]
    assert md5_of(archive) in capsys.readouterr().out
    assert dest.read_bytes() == archive.read_bytes()


def test_download_rejects_a_truncated_response(tmp_path):
    class Truncating(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"x" * 400)
            self.close_connection = True

        def log_message(self, *args) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Truncating)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        with pytest.raises(FetchError):
            download(source(f"http://127.0.0.1:{httpd.server_port}/t.zip"), tmp_path / "t.zip")
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


# --- safe_extract ---------------------------------------------------------------------------------------


def test_safe_extract_extracts_a_normal_zip_and_replaces_the_target(make_zip, tmp_path):
    archive = make_zip("ravdess.zip", RAVDESS_MEMBERS)
    target = tmp_path / "raw" / "ravdess"
    target.mkdir(parents=True)
    (target / "stale.wav").write_bytes(b"old")

    safe_extract(archive, target)

    got = sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file())
    assert got == sorted(RAVDESS_MEMBERS)
    with zipfile.ZipFile(archive) as zf:
        for member in RAVDESS_MEMBERS:
            assert (target / member).read_bytes() == zf.read(member)
    assert os.listdir(target.parent) == ["ravdess"]  # no temp folder left behind


def symlink_member(zf: zipfile.ZipFile) -> None:
    info = zipfile.ZipInfo("link.txt")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    zf.writestr(info, "../../../evil.txt")


@pytest.mark.parametrize(
    "add_evil",
    [
        lambda zf: zf.writestr("../evil.txt", "evil"),
        lambda zf: zf.writestr("/abs/evil.txt", "evil"),
        lambda zf: zf.writestr("a/../../evil.txt", "evil"),
        lambda zf: zf.writestr("..\\evil.txt", "evil"),
        lambda zf: zf.writestr("C:/evil.txt", "evil"),
        symlink_member,
    ],
    ids=["dotdot", "absolute", "nested-dotdot", "backslash-dotdot", "drive-letter", "symlink"],
)
def test_safe_extract_refuses_unsafe_members_and_writes_nothing(tmp_path, add_evil):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok/first.txt", "fine")  # a safe member before the bad one: nothing may be written
        add_evil(zf)
    target = tmp_path / "a" / "b" / "target"
    target.mkdir(parents=True)
    (target / "old.txt").write_text("old")
    before = listing(tmp_path, dir_mtimes=False)  # a temp folder may come and go beside the target

    with pytest.raises(UnsafeArchiveError):
        safe_extract(archive, target)

    assert listing(tmp_path, dir_mtimes=False) == before  # the old target intact, no temp folder, nothing outside
    assert not list(tmp_path.rglob("evil.txt")) and not list(tmp_path.rglob("first.txt"))


def test_safe_extract_refuses_unsafe_members_into_a_new_target(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../evil.txt", "evil")
    target = tmp_path / "out" / "target"
    with pytest.raises(UnsafeArchiveError, match=r"\.\./evil\.txt"):
        safe_extract(archive, target)
    assert not target.exists()
    assert os.listdir(target.parent) == []


def test_safe_extract_of_a_non_zip_raises_fetch_error(tmp_path):
    archive = tmp_path / "ravdess.zip"
    archive.write_bytes(b"<html>not found</html>")
    target = tmp_path / "raw" / "ravdess"
    with pytest.raises(FetchError) as caught:
        safe_extract(archive, target)
    assert str(archive) in str(caught.value)
    assert not isinstance(caught.value, UnsafeArchiveError)
    assert not target.exists()


# --- fetch_corpora from the network -----------------------------------------------------------------


@pytest.fixture
def network_params(params, server, make_zip):
    """network_params(limit=None): params.yaml's fetch section pointed at the test server's two archives."""

    def make(limit: int | None = None) -> FetchParams:
        ravdess = make_zip("ravdess.zip", RAVDESS_MEMBERS)
        tess = make_zip("tess.zip", TESS_MEMBERS)
        server.files["/ravdess.zip"] = ravdess.read_bytes()
        server.files["/tess.zip"] = tess.read_bytes()
        return dataclasses.replace(
            params.fetch,
            ravdess=source(server.url("/ravdess.zip"), md5_of(ravdess)),
            tess=source(server.url("/tess.zip")),
            limit_per_corpus=limit,
        )

    return make


@pytest.fixture
def offline(params) -> FetchParams:
    """params.yaml's fetch section with archive addresses that must not be used (a mirror is given)."""
    return dataclasses.replace(params.fetch, ravdess=OFFLINE, tess=OFFLINE, limit_per_corpus=None)


@pytest.fixture
def silence_dbfs(params) -> float:
    return params.audio.silence_dbfs


def test_fetch_corpora_end_to_end_over_http(server, network_params, silence_dbfs, tmp_path):
    fetch = network_params()
    raw, manifest_path, downloads = tmp_path / "raw", tmp_path / "manifest.csv", tmp_path / "downloads"

    report = fetch_corpora(fetch, silence_dbfs, raw, manifest_path, downloads, mirror=None)

    assert sorted(server.requests) == ["/ravdess.zip", "/tess.zip"]
    assert sorted(os.listdir(downloads)) == ["ravdess.zip", "tess.zip"]
    for member in RAVDESS_MEMBERS:
        assert (raw / "ravdess" / member).is_file()
    for member in TESS_MEMBERS:
        assert (raw / "tess" / member).is_file()
    manifest = pd.read_csv(manifest_path, keep_default_na=False, dtype={"intensity": str})
    assert list(manifest.columns) == list(MANIFEST_COLUMNS)
    rows = manifest.set_index("clip_id")
    assert set(rows.index) == {
        "ravdess/03-01-01-01-01-01-01",
        "ravdess/03-01-05-02-02-01-01",
        "ravdess/03-01-03-01-01-02-02",
        "ravdess/03-01-08-02-02-02-02",
        "tess/OAF_back_angry",
        "tess/OAF_back_ps",
        "tess/YAF_dog_fear",
    }
    assert rows.loc["ravdess/03-01-08-02-02-02-02", "emotion"] == "surprised"
    assert rows.loc["ravdess/03-01-08-02-02-02-02", "speaker"] == "Actor_02"
    assert rows.loc["tess/OAF_back_ps", "emotion"] == "surprised"
    assert rows.loc["tess/YAF_dog_fear", "emotion"] == "fearful"
    assert rows.loc["tess/OAF_back_ps", "path"] == "tess/TESS Toronto emotional speech set data/" + (
        "OAF_Pleasant_surprise/OAF_back_ps.wav"
    )
    assert (manifest["sample_rate"] == 16000).all() and (manifest["channels"] == 1).all()
    assert manifest["duration_s"].tolist() == pytest.approx([0.25] * 7)
    assert report.found == report.kept == {"ravdess": 4, "tess": 3}

    # Again: the pinned RAVDESS archive is reused, the unpinned TESS one is fetched anew.
    fetch_corpora(fetch, silence_dbfs, raw, manifest_path, downloads, mirror=None)
    assert sorted(server.requests) == ["/ravdess.zip", "/tess.zip", "/tess.zip"]
    assert pd.read_csv(manifest_path, keep_default_na=False, dtype={"intensity": str}).equals(manifest)


def test_fetch_corpora_over_http_honours_the_limit(network_params, silence_dbfs, tmp_path):
    fetch = network_params(limit=2)
    report = fetch_corpora(fetch, silence_dbfs, tmp_path / "raw", tmp_path / "m.csv", tmp_path / "dl", mirror=None)
    manifest = pd.read_csv(tmp_path / "m.csv")
    ravdess = sorted(RAVDESS_MEMBERS)
    tess = sorted(TESS_MEMBERS)
    assert sorted(manifest["path"]) == sorted(
        [f"ravdess/{ravdess[0]}", f"ravdess/{ravdess[-1]}", f"tess/{tess[0]}", f"tess/{tess[-1]}"]
    )
    assert report.found == {"ravdess": 2, "tess": 2}


def test_fetch_corpora_leaves_out_clips_quieter_than_silence_dbfs(network_params, tmp_path):
    fetch = network_params()  # tones of amplitude 0.5: peak -6.0 dBFS
    kept = fetch_corpora(fetch, -6.5, tmp_path / "raw", tmp_path / "m.csv", tmp_path / "dl", mirror=None)
    assert kept.kept == {"ravdess": 4, "tess": 3} and kept.silent == []
    quiet = fetch_corpora(fetch, -5.5, tmp_path / "raw", tmp_path / "m.csv", tmp_path / "dl", mirror=None)
    assert quiet.kept == {"ravdess": 0, "tess": 0}
    assert len(quiet.silent) == 7 and all("peak -6.0 dBFS" in entry for entry in quiet.silent)
    assert pd.read_csv(tmp_path / "m.csv").empty


def test_fetch_corpora_stops_on_a_bad_checksum(network_params, silence_dbfs, tmp_path):
    fetch = network_params()
    fetch = dataclasses.replace(fetch, ravdess=dataclasses.replace(fetch.ravdess, md5="f" * 32))
    with pytest.raises(ChecksumError):
        fetch_corpora(fetch, silence_dbfs, tmp_path / "raw", tmp_path / "m.csv", tmp_path / "dl", mirror=None)
    assert not (tmp_path / "m.csv").exists()
    assert not (tmp_path / "raw" / "ravdess").exists()
    assert os.listdir(tmp_path / "dl") == []


# --- fetch_corpora from a mirror --------------------------------------------------------------------

MIRROR_RAVDESS = (
    "Actor_01/03-01-01-01-01-01-01.flac",
    "Actor_01/03-01-05-02-02-01-01.flac",
    "Actor_02/03-01-03-01-01-02-02.flac",
    "Actor_07/03-01-06-01-02-01-07.flac",
    "Actor_12/03-01-05-02-01-02-12.flac",
    "Actor_13/03-01-07-02-01-01-13.flac",
    "Actor_24/03-01-08-01-02-02-24.flac",
)
MIRROR_TESS = (
    "OAF_Fear/OAF_food_fear.flac",
    "OAF_Pleasant_surprise/OAF_back_ps.flac",
    "OAF_neutral/OA_bite_neutral.flac",
    "YAF_angry/YAF_germ_angry.flac",
    "YAF_sad/YAF_dog_sad.flac",
)
OFFLINE = source("http://127.0.0.1:9/must-not-be-used.zip")


@pytest.fixture
def small_mirror(tmp_path, mirror):
    """A read-only mirror of 7 RAVDESS and 5 TESS real clips (folders 0o555, files 0o444)."""
    root = tmp_path / "mirror"
    for corpus, relpaths in (("ravdess", MIRROR_RAVDESS), ("tess", MIRROR_TESS)):
        for relpath in relpaths:
            (root / corpus / relpath).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(mirror / corpus / relpath, root / corpus / relpath)
    paths = sorted([root, *root.rglob("*")], reverse=True)
    for path in paths:
        path.chmod(0o555 if path.is_dir() else 0o444)
    yield root
    for path in paths:
        path.chmod(0o755 if path.is_dir() else 0o644)


def test_fetch_from_a_mirror_copies_all_clips_and_never_writes_there(small_mirror, offline, silence_dbfs, tmp_path):
    before = listing(small_mirror)
    raw = tmp_path / "raw"
    (raw / "ravdess").mkdir(parents=True)
    (raw / "ravdess" / "stale.flac").write_bytes(b"old")

    report = fetch_corpora(offline, silence_dbfs, raw, tmp_path / "m.csv", tmp_path / "dl", mirror=small_mirror)

    assert listing(small_mirror) == before
    for corpus, relpaths in (("ravdess", MIRROR_RAVDESS), ("tess", MIRROR_TESS)):
        copied = sorted(p.relative_to(raw / corpus).as_posix() for p in (raw / corpus).rglob("*") if p.is_file())
        assert copied == sorted(relpaths)
        for relpath in relpaths:
            assert filecmp.cmp(small_mirror / corpus / relpath, raw / corpus / relpath, shallow=False)
            assert (raw / corpus / relpath).stat().st_mode & stat.S_IWUSR  # our copy is writable
    manifest = pd.read_csv(tmp_path / "m.csv")
    assert len(manifest) == 12
    assert report.kept == {"ravdess": 7, "tess": 5}
    labels = manifest.set_index("clip_id")
    assert labels.loc["tess/OA_bite_neutral", "speaker"] == "OAF"
    assert labels.loc["tess/OAF_food_fear", "emotion"] == "fearful"


def test_fetch_from_a_mirror_honours_the_limit_with_evenly_spaced_clips(small_mirror, offline, silence_dbfs, tmp_path):
    before = listing(small_mirror)
    fetch = dataclasses.replace(offline, limit_per_corpus=3)
    report = fetch_corpora(fetch, silence_dbfs, tmp_path / "raw", tmp_path / "m.csv", tmp_path / "dl", small_mirror)

    manifest = pd.read_csv(tmp_path / "m.csv")
    ravdess, tess = sorted(MIRROR_RAVDESS), sorted(MIRROR_TESS)
    expected = [f"ravdess/{ravdess[i]}" for i in (0, 3, 6)] + [f"tess/{tess[i]}" for i in (0, 2, 4)]
    assert sorted(manifest["path"]) == sorted(expected)
    files = sorted(p.relative_to(tmp_path / "raw").as_posix() for p in (tmp_path / "raw").rglob("*.flac"))
    assert files == sorted(expected)
    assert report.found == {"ravdess": 3, "tess": 3}
    assert listing(small_mirror) == before


def test_a_missing_mirror_subfolder_raises_fetch_error_naming_it(tmp_path, mirror, offline, silence_dbfs):
    partial = tmp_path / "mirror"
    (partial / "ravdess" / "Actor_01").mkdir(parents=True)
    name = "03-01-01-01-01-01-01.flac"
    shutil.copyfile(mirror / "ravdess" / "Actor_01" / name, partial / "ravdess" / "Actor_01" / name)
    with pytest.raises(FetchError) as caught:
        fetch_corpora(offline, silence_dbfs, tmp_path / "raw", tmp_path / "m.csv", tmp_path / "dl", mirror=partial)
    assert str(partial / "tess") in str(caught.value)
    assert not (tmp_path / "m.csv").exists()


def test_copy_from_an_empty_mirror_folder_raises(tmp_path):
    (tmp_path / "mirror" / "tess").mkdir(parents=True)
    with pytest.raises(FetchError, match="no audio files"):
        copy_from_mirror(tmp_path / "mirror", "tess", tmp_path / "raw" / "tess", None)
    assert not (tmp_path / "raw" / "tess").exists()


def test_fetch_from_the_real_mirror_with_a_limit(mirror, offline, silence_dbfs, tmp_path):
    def snapshot() -> dict[str, tuple]:
        return {p.relative_to(mirror).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns) for p in mirror.rglob("*")}

    before = snapshot()
    fetch = dataclasses.replace(offline, limit_per_corpus=5)
    report = fetch_corpora(fetch, silence_dbfs, tmp_path / "raw", tmp_path / "m.csv", tmp_path / "dl", mirror=mirror)
    assert snapshot() == before

    manifest = pd.read_csv(tmp_path / "m.csv")
    assert report.kept == {"ravdess": 5, "tess": 5}
    # 5 of n evenly spaced: round(linspace(0, n - 1, 5)), computed by hand.
    expected_positions = (("ravdess", 1440, (0, 360, 720, 1079, 1439)), ("tess", 2800, (0, 700, 1400, 2099, 2799)))
    for corpus, count, positions in expected_positions:
        everything = sorted(p.relative_to(mirror).as_posix() for p in (mirror / corpus).rglob("*.flac"))
        assert len(everything) == count
        assert sorted(manifest.loc[manifest["corpus"] == corpus, "path"]) == [everything[i] for i in positions]
