"""The train stage's live log (ser.live): one directory of curves per ensemble member, stepped by its epochs."""

import json

import pandas as pd

from ser.live import LIVE_METRICS, live_log


def rows(member: int, epochs: int) -> list[dict]:
    return [
        {"epoch": e, "train_loss": 2.0 - 0.1 * e, "val_loss": 2.5 - 0.1 * e, "val_score": 0.1 * e + member / 100}
        for e in range(1, epochs + 1)
    ]


def test_each_member_logs_its_own_curves_epoch_by_epoch(tmp_path):
    live = tmp_path / "dvclive" / "folds" / "1"
    with live_log(live) as log:
        for member in (1, 2):
            for row in rows(member, 3):
                log(member, row)
                # written as it goes: the summary holds this epoch before the next one starts
                summary = json.loads((live / "metrics.json").read_text())
                assert summary[f"member-{member}"]["val"]["score"] == row["val_score"]
    summary = json.loads((live / "metrics.json").read_text())
    for member in (1, 2):
        for column, name in LIVE_METRICS.items():
            curve = pd.read_csv(live / "plots" / "metrics" / f"member-{member}" / f"{name}.tsv", sep="\t")
            assert curve["step"].tolist() == [1, 2, 3]  # each member from its own first epoch: curves overlay
            assert curve[name.split("/")[-1]].tolist() == [row[column] for row in rows(member, 3)]
        assert summary[f"member-{member}"]["train"]["loss"] == rows(member, 3)[-1]["train_loss"]
    assert not (tmp_path / "dvc.yaml").exists() and not list(live.glob("*.html"))  # no dvc.yaml, no report


def test_no_directory_no_log(tmp_path):
    with live_log(None) as log:
        assert log is None
