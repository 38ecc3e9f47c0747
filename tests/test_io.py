"""Atomic outputs: replaced only on success, never half-written, no temp files left behind."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from ser.io import HOST, atomic_path, write_csv, write_json


def test_atomic_file_replaces_the_target_only_when_the_block_succeeds(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with atomic_path(target) as tmp:
        assert tmp != target and tmp.parent == target.parent and tmp.is_file()
        tmp.write_text("new")
        assert target.read_text() == "old"  # not visible until the block ends
    assert target.read_text() == "new"
    assert os.listdir(tmp_path) == ["out.txt"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


WRITE_BOTH = """
import stat, sys
from pathlib import Path
from ser.io import atomic_path
out = Path(sys.argv[1])
with atomic_path(out / "out.txt") as tmp:
    tmp.write_text("x")
with atomic_path(out / "out", directory=True) as tmp:
    (tmp / "a.txt").write_text("x")
print(oct(stat.S_IMODE((out / "out.txt").stat().st_mode)), oct(stat.S_IMODE((out / "out").stat().st_mode)))
"""


@pytest.mark.parametrize(
    ("umask", "file_mode", "folder_mode"), [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700), (0o002, 0o664, 0o775)]
)
def test_atomic_outputs_get_the_mode_the_umask_gives_a_new_file_or_folder(tmp_path, umask, file_mode, folder_mode):
    result = subprocess.run(
        [sys.executable, "-c", WRITE_BOTH, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=lambda: os.umask(umask),
    )
    assert result.stdout.split() == [oct(file_mode), oct(folder_mode)]


def test_atomic_file_creates_missing_parent_folders(tmp_path):
    target = tmp_path / "a" / "b" / "out.txt"
    with atomic_path(str(target)) as tmp:
        tmp.write_text("x")
    assert target.read_text() == "x"
    assert os.listdir(target.parent) == ["out.txt"]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_atomic_file_error_keeps_the_old_target_and_no_temp_file(tmp_path, error):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(error), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise error("interrupted")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_atomic_file_error_without_an_old_target_leaves_nothing(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(ValueError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise ValueError
    assert os.listdir(tmp_path) == []


def test_atomic_directory_swaps_in_a_whole_folder(tmp_path):
    target = tmp_path / "raw"
    (target / "sub").mkdir(parents=True)
    (target / "sub" / "stale.txt").write_text("old")
    with atomic_path(target, directory=True) as tmp:
        assert tmp.is_dir() and tmp.parent == target.parent and not any(tmp.iterdir())
        (tmp / "new.txt").write_text("new")
        assert (target / "sub" / "stale.txt").exists()
    assert sorted(p.name for p in target.rglob("*")) == ["new.txt"]
    assert os.listdir(tmp_path) == ["raw"]


def test_atomic_directory_error_keeps_the_old_folder_and_no_temp_folder(tmp_path):
    target = tmp_path / "raw"
    target.mkdir()
    (target / "keep.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target, directory=True) as tmp:
        (tmp / "deep").mkdir()
        (tmp / "deep" / "half.txt").write_text("half")
        raise RuntimeError
    assert [p.name for p in target.rglob("*")] == ["keep.txt"]
    assert (target / "keep.txt").read_text() == "old"
    assert os.listdir(tmp_path) == ["raw"]


def test_atomic_directory_replaces_a_file_or_a_symlink_without_following_it(tmp_path):
    as_file = tmp_path / "was_file"
    as_file.write_text("file")
    with atomic_path(as_file, directory=True) as tmp:
        (tmp / "x").write_text("x")
    assert as_file.is_dir() and (as_file / "x").read_text() == "x"

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.txt").write_text("keep")
    link = tmp_path / "link"
    link.symlink_to(elsewhere, target_is_directory=True)
    with atomic_path(link, directory=True) as tmp:
        (tmp / "y").write_text("y")
    assert not link.is_symlink() and (link / "y").read_text() == "y"
    assert (elsewhere / "precious.txt").read_text() == "keep"


def test_write_json_round_trip(tmp_path):
    data = {"clips": 4240, "corpora": ["ravdess", "tess"], "ratio": 0.125, "note": "ü", "none": None}
    target = tmp_path / "metrics" / "fetch.json"
    target.parent.mkdir()
    target.write_text("{broken")
    write_json(data, target)
    text = target.read_text()
    assert text.endswith("\n")
    assert json.loads(text) == data
    assert list(json.loads(text)) == list(data)  # key order kept
    assert os.listdir(target.parent) == ["fetch.json"]


def test_write_json_of_unserialisable_data_keeps_the_old_file(tmp_path):
    target = tmp_path / "m.json"
    write_json({"a": 1}, target)
    with pytest.raises(TypeError):
        write_json({"a": object()}, target)
    assert json.loads(target.read_text()) == {"a": 1}
    assert os.listdir(tmp_path) == ["m.json"]


def test_write_csv_round_trip(tmp_path):
    table = pd.DataFrame(
        {
            "clip_id": ["ravdess/03-01-05-02-01-02-12", "tess/OAF_back_ps"],
            "sample_rate": [16000, 16000],
            "duration_s": [3.303292, 1.727124],
            "statement": ["kids are talking by the door", "back"],
        }
    )
    target = tmp_path / "manifest.csv"
    write_csv(table, target)
    back = pd.read_csv(target)
    pd.testing.assert_frame_equal(back, table)
    assert target.read_text().splitlines()[0] == "clip_id,sample_rate,duration_s,statement"  # no index
    write_csv(table.iloc[:1], target)
    assert len(pd.read_csv(target)) == 1
    assert os.listdir(tmp_path) == ["manifest.csv"]


def test_a_write_removes_the_temporaries_a_killed_run_left_and_keeps_those_of_running_ones(tmp_path):
    target = tmp_path / "augmented"
    script = (
        "import sys, time\n"
        "from ser.io import atomic_path\n"
        "with atomic_path(sys.argv[1], directory=True) as tmp:\n"
        "    (tmp / 'half.flac').write_bytes(b'x' * 1000)\n"
        "    print(tmp, flush=True)\n"
        "    time.sleep(600)\n"
    )
    writer = subprocess.Popen([sys.executable, "-c", script, str(target)], stdout=subprocess.PIPE, text=True)
    left = Path(writer.stdout.readline().strip())
    writer.kill()  # kill -9 in the middle: its temporary stays
    writer.wait()
    assert left.parent == tmp_path and (left / "half.flac").is_file()
    older = tmp_path / ".augmented.k2j4x9q1.tmp"  # an earlier version's name, without the process id
    older.mkdir()
    running = tmp_path / f".augmented.{HOST}-{os.getpid()}.abc123.tmp"  # a writer that is still at work
    running.mkdir()
    elsewhere = tmp_path / f".augmented.{HOST}x-{writer.pid}.abc123.tmp"  # another machine's: cannot be checked
    elsewhere.mkdir()
    neighbour = tmp_path / f".augmented.csv.{HOST}-{writer.pid}.abc123.tmp"  # another target's, itself stale
    neighbour.write_text("")
    with atomic_path(target, directory=True) as tmp:
        (tmp / "whole.flac").write_bytes(b"y")
    kept = ["augmented", running.name, elsewhere.name, neighbour.name]
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(kept)
    assert [path.name for path in target.iterdir()] == ["whole.flac"]
    with atomic_path(tmp_path / "augmented.csv") as tmp:
        tmp.write_text("done")
    assert not neighbour.exists()  # removed when its own target is written
