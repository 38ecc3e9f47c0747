"""`make report` (ser.change_report): the metrics and params a workspace changes against a revision, and its
figures, as one Markdown file with its images beside it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

from ser.change_report import ReportError, main, write_report

DVC_YAML = """\
stages:
  score:
    cmd: python -c "print('scored')"
    params:
      - train.lr
    metrics:
      - metrics.json:
          cache: false
"""


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


@pytest.fixture
def project(tmp_path) -> Path:
    """A git + DVC project on branch main: one stage, one param, one metrics file, one figure, committed."""
    root = tmp_path / "project"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "test@example.com")
    git(root, "config", "user.name", "test")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True)
    (root / "dvc.yaml").write_text(DVC_YAML)
    (root / "params.yaml").write_text("train:\n  lr: 0.001\n")
    (root / "metrics.json").write_text(json.dumps({"test": {"ravdess": {"ua": 0.5}}}))
    (root / "plots" / "folds" / "1").mkdir(parents=True)
    figure, axes = plt.subplots()
    axes.plot([0, 1], [0, 1])
    figure.savefig(root / "plots" / "folds" / "1" / "training.png")
    plt.close(figure)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "baseline")
    return root


def test_the_report_shows_changed_metrics_and_params_and_every_figure(project):
    (project / "params.yaml").write_text("train:\n  lr: 0.002\n")
    (project / "metrics.json").write_text(json.dumps({"test": {"ravdess": {"ua": 0.625}}}))
    report = write_report(project, "main", project / "report")
    text = report.read_text()
    metrics = next(line for line in text.splitlines() if "test.ravdess.ua" in line)
    assert "0.5" in metrics and "0.625" in metrics and "0.125" in metrics  # old, new and the change
    params = next(line for line in text.splitlines() if "train.lr" in line)
    assert "0.001" in params and "0.002" in params
    assert "![plots/folds/1/training.png](images/folds__1__training.png)" in text
    image = project / "report" / "images" / "folds__1__training.png"
    assert image.read_bytes() == (project / "plots" / "folds" / "1" / "training.png").read_bytes()


def test_nothing_changed_says_so_and_a_rerun_replaces_the_folder(project):
    (project / "report" / "images").mkdir(parents=True)
    (project / "report" / "images" / "stale.png").write_bytes(b"old")
    text = write_report(project, "main", project / "report").read_text()
    assert "No metric differs." in text and "No param differs." in text
    assert sorted(p.name for p in (project / "report" / "images").iterdir()) == ["folds__1__training.png"]


def test_an_unknown_revision_or_folder_is_one_line(project, tmp_path, monkeypatch, capsys):
    with pytest.raises(ReportError, match="not a revision of this repository"):
        write_report(project, "no-such-branch", project / "report")
    monkeypatch.chdir(tmp_path)  # no dvc.yaml here
    assert main(["--against", "main"]) == 2
    err = capsys.readouterr().err
    assert "no dvc.yaml here" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "report").exists()
