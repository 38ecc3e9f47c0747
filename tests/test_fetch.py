"""Verified downloads from a local HTTP server, safe extraction, mirror copies, and the whole fetch."""

from __future__ import annotations

import dataclasses
import filecmp
import hashlib
import http.server
import json
import os
import shutil
import socket
import stat
import threading
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from ser import fetch
from ser.corpora import MANIFEST_COLUMNS
from ser.fetch import (
    ChecksumError,
    FetchError,
    UnsafeArchiveError,
    copy_from_mirror,
    download,
    fetch_corpora,
    fetch_lfs_corpus,
    mirror_from_env,
    parse_lfs_pointer,
    safe_extract,
)
from ser.params import FetchParams, LfsSourceParams, SourceParams

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

CREMAD_MEMBERS = {  # path in the LFS repository -> tone frequency
    "AudioWAV/1001_DFA_ANG_XX.wav": 300,
    "AudioWAV/1002_IEO_HAP_HI.wav": 410,
    "AudioWAV/1091_WSI_SAD_XX.wav": 520,
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


def test_a_broken_link_in_the_mirror_is_named_not_skipped(tmp_path, write_tone):
    actor = tmp_path / "mirror" / "ravdess" / "Actor_01"
    write_tone(actor / "03-01-01-01-01-01-01.wav", 300.0)
    (actor / "03-01-01-01-01-02-01.wav").symlink_to(tmp_path / "gone.wav")
    target = tmp_path / "raw" / "ravdess"
    with pytest.raises(FetchError, match=r"03-01-01-01-01-02-01\.wav: cannot copy it \(a broken link\)"):
        copy_from_mirror(tmp_path / "mirror", "ravdess", target, None)
    assert not target.exists() and os.listdir(target.parent) == []


def test_safe_extract_refuses_a_member_named_twice(tmp_path):
    archive = tmp_path / "twice.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("Actor_01/a.wav", "first")
        with pytest.warns(UserWarning, match="Duplicate name"):  # zipfile writes it, and warns
            zf.writestr("Actor_01/a.wav", "second")
    target = tmp_path / "target"
    with pytest.raises(UnsafeArchiveError, match=r"'Actor_01/a\.wav' and 'Actor_01/a\.wav' land on the same path"):
        safe_extract(archive, target)
    assert not target.exists() and os.listdir(tmp_path) == ["twice.zip"]


def test_safe_extract_refuses_an_archive_beyond_its_limits_before_writing(tmp_path, monkeypatch):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for index in range(5):
            zf.writestr(f"zeros/{index}.wav", bytes(1 << 20))  # 1 MiB each, a few kB compressed
    assert archive.stat().st_size < 50_000
    target = tmp_path / "target"
    monkeypatch.setattr(fetch, "ARCHIVE_MAX_BYTES", 4 << 20)
    with pytest.raises(UnsafeArchiveError, match=r"bomb\.zip: would extract 5 MiB, more than the 4 MiB"):
        safe_extract(archive, target)
    monkeypatch.setattr(fetch, "ARCHIVE_MAX_BYTES", 5 << 20)
    monkeypatch.setattr(fetch, "ARCHIVE_MAX_MEMBERS", 4)
    with pytest.raises(UnsafeArchiveError, match=r"bomb\.zip: 5 members, more than the 4"):
        safe_extract(archive, target)
    assert not target.exists() and os.listdir(tmp_path) == ["bomb.zip"]
    monkeypatch.setattr(fetch, "ARCHIVE_MAX_MEMBERS", 5)  # at the limits: extracted
    safe_extract(archive, target)
    assert sorted(p.name for p in (target / "zeros").iterdir()) == [f"{index}.wav" for index in range(5)]


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


# --- a corpus in Git LFS, file by file ----------------------------------------------------------------


def pointer(data: bytes) -> bytes:
    """The Git LFS pointer file of `data`, as git stores it in the repository's tree."""
    sha256 = hashlib.sha256(data).hexdigest()
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {len(data)}\n".encode()


@pytest.fixture
def lfs_repo(server, tmp_path, write_tone):
    """A repository on the test server: its file list (with other files and folders beside the WAVs), each
    WAV's pointer under /raw/ and its content under /media/. Returns the source and the WAVs' bytes."""
    wavs = {}
    for path, freq in CREMAD_MEMBERS.items():
        write_tone(tmp_path / "lfs" / path, freq)
        wavs[path] = (tmp_path / "lfs" / path).read_bytes()
        server.files[f"/raw/{path}"] = pointer(wavs[path])
        server.files[f"/media/{path}"] = wavs[path]
    tree = [{"path": "AudioWAV", "type": "tree"}, {"path": "VideoDemographics.csv", "type": "blob"}]
    tree += [
        {"path": "AudioWAV/README.txt", "type": "blob"},
        {"path": "VideoFlash/1001_DFA_ANG_XX.flv", "type": "blob"},
    ]
    tree += [{"path": path, "type": "blob"} for path in CREMAD_MEMBERS]
    server.files["/tree"] = json.dumps({"tree": tree, "truncated": False}).encode()
    source = LfsSourceParams(
        tree=server.url("/tree"), pointers=server.url("/raw/"), media=server.url("/media/"), folder="AudioWAV"
    )
    return source, wavs


def test_an_lfs_corpus_is_fetched_file_by_file_and_verified_against_its_pointers(server, lfs_repo, tmp_path):
    source, wavs = lfs_repo
    fetch_lfs_corpus(source, tmp_path / "dl")
    for path, data in wavs.items():
        assert (tmp_path / "dl" / path).read_bytes() == data
    assert sorted(r for r in server.requests if r.startswith("/media/")) == sorted(f"/media/{p}" for p in wavs)
    assert "/media/VideoFlash/1001_DFA_ANG_XX.flv" not in server.requests  # only the folder's WAVs
    # again: everything is verified locally, only the file list is asked for
    server.requests.clear()
    fetch_lfs_corpus(source, tmp_path / "dl")
    assert server.requests == ["/tree"]


def test_an_interrupted_lfs_fetch_resumes_with_the_files_it_lacks(server, lfs_repo, tmp_path):
    source, _wavs = lfs_repo
    missing = "AudioWAV/1091_WSI_SAD_XX.wav"
    content = server.files.pop(f"/media/{missing}")
    with pytest.raises(
        FetchError, match=r"media/AudioWAV/1091_WSI_SAD_XX\.wav: download failed .*run fetch again to resume"
    ):
        fetch_lfs_corpus(source, tmp_path / "dl")
    assert not (tmp_path / "dl" / missing).exists()
    assert not [p for p in (tmp_path / "dl").rglob(".*")]  # no temporary left behind
    server.files[f"/media/{missing}"] = content
    server.requests.clear()
    fetch_lfs_corpus(source, tmp_path / "dl")
    assert sorted(server.requests) == sorted(["/tree", f"/media/{missing}"])  # its pointer was kept too
    assert (tmp_path / "dl" / missing).read_bytes() == content


@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_a_truncated_or_corrupt_lfs_file_is_an_error_naming_it_and_both_values(server, lfs_repo, tmp_path, damage):
    source, wavs = lfs_repo
    path = "AudioWAV/1002_IEO_HAP_HI.wav"
    data = wavs[path]
    if damage == "truncated":
        server.files[f"/media/{path}"] = data[: len(data) // 2]
        expected = (
            rf"{path}: received {len(data) // 2} bytes, its LFS pointer says {len(data)}; the download was cut off"
        )
    else:
        bad = data[:-1] + bytes([data[-1] ^ 1])
        server.files[f"/media/{path}"] = bad
        expected = (
            rf"{path}: sha256 mismatch, its LFS pointer says {hashlib.sha256(data).hexdigest()}, "
            rf"got {hashlib.sha256(bad).hexdigest()}"
        )
    with pytest.raises(ChecksumError, match=expected):
        fetch_lfs_corpus(source, tmp_path / "dl")
    assert not (tmp_path / "dl" / path).exists()  # nothing unverified is kept
    # a file changed on disk after it was verified is downloaded again, not trusted
    server.files[f"/media/{path}"] = data
    fetch_lfs_corpus(source, tmp_path / "dl")
    other = tmp_path / "dl" / "AudioWAV" / "1001_DFA_ANG_XX.wav"
    other.write_bytes(other.read_bytes()[:-1] + b"\0")
    server.requests.clear()
    fetch_lfs_corpus(source, tmp_path / "dl")
    assert (
        "/media/AudioWAV/1001_DFA_ANG_XX.wav" in server.requests
        and other.read_bytes() == wavs["AudioWAV/1001_DFA_ANG_XX.wav"]
    )


def test_an_lfs_fetch_with_a_limit_downloads_only_the_files_it_keeps(server, lfs_repo, tmp_path):
    source, _wavs = lfs_repo
    kept = fetch_lfs_corpus(source, tmp_path / "dl", limit=2)
    first, last = sorted(CREMAD_MEMBERS)[0], sorted(CREMAD_MEMBERS)[-1]
    assert kept == [tmp_path / "dl" / first, tmp_path / "dl" / last]  # evenly spaced, as every corpus's limit
    assert sorted(r for r in server.requests if r.startswith("/media/")) == [f"/media/{first}", f"/media/{last}"]


def test_lfs_pointers_and_file_lists_that_cannot_be_used_are_named(server, lfs_repo, tmp_path):
    source, _wavs = lfs_repo
    assert parse_lfs_pointer(pointer(b"abc").decode(), "x") == (hashlib.sha256(b"abc").hexdigest(), 3)
    with pytest.raises(FetchError, match=r"AudioWAV/1001_DFA_ANG_XX\.wav: not a Git LFS pointer"):
        server.files["/raw/AudioWAV/1001_DFA_ANG_XX.wav"] = b"RIFF....WAVEfmt "  # the file itself, not its pointer
        fetch_lfs_corpus(source, tmp_path / "dl")
    server.files["/tree"] = json.dumps({"tree": [], "truncated": True}).encode()
    with pytest.raises(FetchError, match="the file list is truncated"):
        fetch_lfs_corpus(source, tmp_path / "dl")
    server.files["/tree"] = b"<html>rate limited</html>"
    with pytest.raises(FetchError, match=r"/tree: not a repository file list .*check the tree URL in params\.yaml"):
        fetch_lfs_corpus(source, tmp_path / "dl")
    server.files["/tree"] = json.dumps({"tree": [{"path": "x.wav", "type": "blob"}]}).encode()
    with pytest.raises(FetchError, match=r"no \.wav files under AudioWAV/"):
        fetch_lfs_corpus(source, tmp_path / "dl")


# --- fetch_corpora from the network -----------------------------------------------------------------


@pytest.fixture
def network_params(params, server, make_zip, lfs_repo):
    """network_params(limit=None): params.yaml's fetch section pointed at the test server's two archives and
    its LFS repository."""

    def make(limit: int | None = None) -> FetchParams:
        ravdess = make_zip("ravdess.zip", RAVDESS_MEMBERS)
        tess = make_zip("tess.zip", TESS_MEMBERS)
        server.files["/ravdess.zip"] = ravdess.read_bytes()
        server.files["/tess.zip"] = tess.read_bytes()
        return dataclasses.replace(
            params.fetch,
            ravdess=source(server.url("/ravdess.zip"), md5_of(ravdess)),
            tess=source(server.url("/tess.zip")),
            cremad=lfs_repo[0],
            limit_per_corpus=limit,
        )

    return make


@pytest.fixture
def offline(params) -> FetchParams:
    """params.yaml's fetch section with archive addresses that must not be used (a mirror is given)."""
    nowhere = "http://127.0.0.1:9/must-not-be-used/"
    lfs = LfsSourceParams(tree=nowhere, pointers=nowhere, media=nowhere, folder="AudioWAV")
    return dataclasses.replace(params.fetch, ravdess=OFFLINE, tess=OFFLINE, cremad=lfs, limit_per_corpus=None)


@pytest.fixture
def silence_dbfs(params) -> float:
    return params.audio.silence_dbfs


def test_fetch_corpora_end_to_end_over_http(server, network_params, silence_dbfs, tmp_path):
    fetch = network_params()
    raw, manifest_path, downloads = tmp_path / "raw", tmp_path / "manifest.csv", tmp_path / "downloads"

    report = fetch_corpora(fetch, silence_dbfs, raw, manifest_path, downloads, mirror=None)

    assert sorted(r for r in server.requests if r.endswith(".zip")) == ["/ravdess.zip", "/tess.zip"]
    assert sorted(os.listdir(downloads)) == ["cremad", "ravdess.zip", "tess.zip"]
    for member in CREMAD_MEMBERS:
        assert (raw / "cremad" / member).is_file()
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
        "cremad/1001_DFA_ANG_XX",
        "cremad/1002_IEO_HAP_HI",
        "cremad/1091_WSI_SAD_XX",
    }
    assert rows.loc["cremad/1002_IEO_HAP_HI", "emotion"] == "happy"
    assert rows.loc["cremad/1002_IEO_HAP_HI", "gender"] == "female"
    assert rows.loc["cremad/1002_IEO_HAP_HI", "intensity"] == "high"
    assert rows.loc["ravdess/03-01-08-02-02-02-02", "emotion"] == "surprised"
    assert rows.loc["ravdess/03-01-08-02-02-02-02", "speaker"] == "Actor_02"
    assert rows.loc["tess/OAF_back_ps", "emotion"] == "surprised"
    assert rows.loc["tess/YAF_dog_fear", "emotion"] == "fearful"
    assert rows.loc["tess/OAF_back_ps", "path"] == "tess/TESS Toronto emotional speech set data/" + (
        "OAF_Pleasant_surprise/OAF_back_ps.wav"
    )
    assert (manifest["sample_rate"] == 16000).all() and (manifest["channels"] == 1).all()
    assert manifest["duration_s"].tolist() == pytest.approx([0.25] * 10)
    assert report.found == report.kept == {"ravdess": 4, "tess": 3, "cremad": 3}
    assert report.speakers == {"ravdess": 2, "tess": 2, "cremad": 3}

    # Again: the pinned RAVDESS archive and the verified LFS files are reused, the unpinned TESS one is fetched anew.
    server.requests.clear()
    fetch_corpora(fetch, silence_dbfs, raw, manifest_path, downloads, mirror=None)
    assert sorted(server.requests) == ["/tess.zip", "/tree"]
    assert pd.read_csv(manifest_path, keep_default_na=False, dtype={"intensity": str}).equals(manifest)


def test_fetch_corpora_over_http_honours_the_limit(network_params, silence_dbfs, tmp_path):
    fetch = network_params(limit=2)
    report = fetch_corpora(fetch, silence_dbfs, tmp_path / "raw", tmp_path / "m.csv", tmp_path / "dl", mirror=None)
    manifest = pd.read_csv(tmp_path / "m.csv")
    ravdess = sorted(RAVDESS_MEMBERS)
    tess = sorted(TESS_MEMBERS)
    cremad = sorted(CREMAD_MEMBERS)
    assert sorted(manifest["path"]) == sorted(
        [
            f"ravdess/{ravdess[0]}",
            f"ravdess/{ravdess[-1]}",
            f"tess/{tess[0]}",
            f"tess/{tess[-1]}",
            f"cremad/{cremad[0]}",
            f"cremad/{cremad[-1]}",
        ]
    )
    assert report.found == {"ravdess": 2, "tess": 2, "cremad": 2}


def test_fetch_corpora_leaves_out_clips_quieter_than_silence_dbfs(network_params, tmp_path):
    fetch = network_params()  # tones of amplitude 0.5: peak -6.0 dBFS
    kept = fetch_corpora(fetch, -6.5, tmp_path / "raw", tmp_path / "m.csv", tmp_path / "dl", mirror=None)
    assert kept.kept == {"ravdess": 4, "tess": 3, "cremad": 3} and kept.silent == []
    quiet = fetch_corpora(fetch, -5.5, tmp_path / "raw", tmp_path / "m.csv", tmp_path / "dl", mirror=None)
    assert quiet.kept == {"ravdess": 0, "tess": 0, "cremad": 0}
    assert len(quiet.silent) == 10 and all("peak -6.0 dBFS" in entry for entry in quiet.silent)
    assert pd.read_csv(tmp_path / "m.csv").empty


def test_fetch_corpora_stops_on_a_bad_checksum(server, network_params, silence_dbfs, tmp_path):
    fetch = network_params()
    fetch = dataclasses.replace(fetch, ravdess=dataclasses.replace(fetch.ravdess, md5="f" * 32))
    with pytest.raises(ChecksumError):
        fetch_corpora(fetch, silence_dbfs, tmp_path / "raw", tmp_path / "m.csv", tmp_path / "dl", mirror=None)
    assert not (tmp_path / "m.csv").exists()
    assert not (tmp_path / "raw" / "ravdess").exists()
    assert os.listdir(tmp_path / "dl") == []
    assert not any(r.startswith("/media/") for r in server.requests)  # stopped before the next corpus


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
MIRROR_CREMAD = ("AudioWAV/1017_DFA_ANG_XX.flac", "AudioWAV/1018_IEO_HAP_HI.flac", "AudioWAV/1052_WSI_SAD_XX.flac")
OFFLINE = source("http://127.0.0.1:9/must-not-be-used.zip")


MIRRORED = (("ravdess", MIRROR_RAVDESS), ("tess", MIRROR_TESS), ("cremad", MIRROR_CREMAD))


@pytest.fixture
def small_mirror(tmp_path, mirror):
    """A read-only mirror of 7 RAVDESS, 5 TESS and 3 CREMA-D real clips (folders 0o555, files 0o444)."""
    root = tmp_path / "mirror"
    for corpus, relpaths in MIRRORED:
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
    for corpus, relpaths in MIRRORED:
        copied = sorted(p.relative_to(raw / corpus).as_posix() for p in (raw / corpus).rglob("*") if p.is_file())
        assert copied == sorted(relpaths)
        for relpath in relpaths:
            assert filecmp.cmp(small_mirror / corpus / relpath, raw / corpus / relpath, shallow=False)
            assert (raw / corpus / relpath).stat().st_mode & stat.S_IWUSR  # our copy is writable
    manifest = pd.read_csv(tmp_path / "m.csv")
    assert len(manifest) == 15
    assert report.kept == {"ravdess": 7, "tess": 5, "cremad": 3}
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
    expected += [f"cremad/{p}" for p in MIRROR_CREMAD]
    assert sorted(manifest["path"]) == sorted(expected)
    files = sorted(p.relative_to(tmp_path / "raw").as_posix() for p in (tmp_path / "raw").rglob("*.flac"))
    assert files == sorted(expected)
    assert report.found == {"ravdess": 3, "tess": 3, "cremad": 3}
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
    assert report.kept == {"ravdess": 5, "tess": 5, "cremad": 5}
    # 5 of n evenly spaced: round(linspace(0, n - 1, 5)), computed by hand (numpy rounds 1144.5 to even).
    expected_positions = (
        ("ravdess", 1440, (0, 360, 720, 1079, 1439)),
        ("tess", 2800, (0, 700, 1400, 2099, 2799)),
        ("cremad", 2290, (0, 572, 1144, 1717, 2289)),
    )
    for corpus, count, positions in expected_positions:
        everything = sorted(p.relative_to(mirror).as_posix() for p in (mirror / corpus).rglob("*.flac"))
        assert len(everything) == count
        assert sorted(manifest.loc[manifest["corpus"] == corpus, "path"]) == [everything[i] for i in positions]


def test_a_relative_mirror_is_made_absolute_and_a_missing_one_is_named(tmp_path, monkeypatch):
    (tmp_path / "corpora").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SER_DATA_MIRROR", "corpora")
    assert mirror_from_env() == tmp_path / "corpora"
    monkeypatch.setenv("SER_DATA_MIRROR", "../elsewhere")
    with pytest.raises(
        FetchError, match=r"SER_DATA_MIRROR=\.\./elsewhere: .* is not a folder; name the mirror by its absolute path"
    ):
        mirror_from_env()
    monkeypatch.delenv("SER_DATA_MIRROR")
    assert mirror_from_env() is None
