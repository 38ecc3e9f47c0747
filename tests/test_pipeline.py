"""End to end: the DVC pipeline on a small slice of the real corpora, in a fresh copy of this repository."""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import balanced_accuracy_score

from ser.corpora import CORPORA, EMOTIONS
from ser.params import load_params
from ser.splitting import FOLDS, role_column, trains_in_some_fold

REPO = Path(__file__).resolve().parents[1]
CLIPS_PER_CORPUS = 48

# What dvc.yaml lists for each stage: whole sections, or single keys of a section the stage uses in part.
# `model.size` is named alone: DVC's run-cache leaves every key named `size` or `nfiles` out of its key
# (dvc.stage.cache._get_cache_hash), so a section holding one and listed whole would restore another run's
# outputs when that key changes.
STAGE_PARAMS = {
    "fetch": {"fetch", "audio.silence_dbfs"},
    "split": {"split"},
    "augment": {"audio.sample_rate", "audio.duration", "audio.trim_db", "augment"},
    "melspec": {"audio", "melspec"},
    "train": {"model.size", "train"},
    "egemaps": {"audio.sample_rate", "audio.trim_db"},
    "baseline": {"baseline", "train.corpora"},
    "cv": {"cv"},
}
RUN_CACHE_IGNORES = {"size", "nfiles"}


def keys_below(value: object) -> set[str]:
    """The names of every key in a params section, at any depth."""
    if not dataclasses.is_dataclass(value):
        return set()
    return set().union(*({f.name} | keys_below(getattr(value, f.name)) for f in dataclasses.fields(value)))


def leaves(value: object) -> list[object]:
    """The values at the ends of a metrics file's nesting: one column each in `dvc exp show`."""
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in leaves(item)]
    return [value]


def imported_ser_modules(path: Path) -> set[Path]:
    """The files of the `ser` modules that `path` imports, directly or through each other (what runs when the
    stage script runs: imports inside functions count, those under `if TYPE_CHECKING:` do not)."""
    found: set[Path] = set()
    todo = [path]
    while todo:
        tree = ast.parse(todo.pop().read_text())
        for node in list(ast.walk(tree)):
            if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
                node.body = []
        names = []
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names += [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        for name in names:
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):  # `ser`, `ser.audio`: packages and modules on the way
                stem = REPO / "src" / Path(*parts[:depth])
                for candidate in (stem / "__init__.py", stem.with_suffix(".py")):
                    if parts[0] == "ser" and candidate.is_file() and candidate not in found:
                        found.add(candidate)
                        todo.append(candidate)
    return found


# outputs of the train, evaluate and cv stages of fold 1 that the run-cache brings back: metrics and plots that
# git keeps (cache: false), and the folds' own JSON (in the DVC cache)
RUN_CACHED_FILES = (
    "metrics/folds/1/train.json",
    "metrics/folds/1/evaluate.json",
    "metrics/cv.json",
    "plots/folds/1/training.csv",
    "plots/folds/1/predictions.csv",
    "plots/cv/predictions.csv",
    "plots/cv/training.csv",
)


# Seconds any one command here may take: the longest trains the slice's small model, a few minutes on 2 cores.
COMMAND_TIMEOUT_S = 900


def run(command: list[str], cwd: Path, env: dict, timeout: float = COMMAND_TIMEOUT_S) -> str:
    """Run `command` to its end and return what it printed (stdout, then stderr); fail, with its output, if it
    fails or is still running after `timeout` seconds (then its whole process group is killed).

    The output goes to files, not pipes: a command that leaves a daemon behind (`dvc queue start` forks its
    workers' keepers, which inherit its descriptors) returns when it ends, not when the daemon does."""
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=stdout, stderr=stderr, start_new_session=True)
        try:
            returncode, timed_out = process.wait(timeout=timeout), False
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            returncode, timed_out = process.wait(), True
        stdout.seek(0), stderr.seek(0)
        output = stdout.read() + stderr.read()
    assert not timed_out, f"{' '.join(command)} still running after {timeout} s, killed:\n{output[-4000:]}"
    assert returncode == 0, f"{' '.join(command)} failed (exit status {returncode}):\n{output[-4000:]}"
    return output


def set_params(project: Path, **changes: object) -> None:
    """Set dotted keys of the copy's params.yaml, e.g. set_params(p, **{"augment.copies": 2})."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    for dotted, value in changes.items():
        *sections, key = dotted.split(".")
        node = params
        for section in sections:
            node = node[section]
        node[key] = value
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def project(tmp_path_factory, mirror) -> tuple[Path, dict]:
    """A fresh clone-like copy of the working tree (git-visible files only), as its own git repository."""
    root = tmp_path_factory.mktemp("clone")
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for relpath in filter(None, listed.split("\0")):
        if (REPO / relpath).is_file():
            (root / relpath).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / relpath, root / relpath)
    env = {
        **os.environ,
        "SER_DATA_MIRROR": str(mirror),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",  # `python` is this venv's
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
    }
    set_params(root, **{"fetch.limit_per_corpus": CLIPS_PER_CORPUS, "augment.copies": 1})
    run(["git", "init", "-q"], root, env)
    run(["git", "add", "-A"], root, env)
    run(["git", "commit", "-qm", "slice"], root, env)
    return root, env


def test_each_stage_depends_on_every_ser_module_it_imports():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert set(stages) == {f.stem for f in (REPO / "src" / "stages").glob("*.py")}
    for stage, spec in stages.items():
        script = REPO / "src" / "stages" / f"{stage}.py"
        modules = {p.relative_to(REPO).as_posix() for p in imported_ser_modules(script)}
        listed = {dep for dep in spec["deps"] if dep.startswith("src/")}
        assert listed == {f"src/stages/{stage}.py", *modules}, stage
    # the walk itself: train imports the model through the bundle, and no stage imports prediction
    train = {p.name for p in imported_ser_modules(REPO / "src" / "stages" / "train.py")}
    assert {"__init__.py", "model.py", "bundle.py", "corpora.py"} <= train and "predict.py" not in train


def test_no_stage_has_an_uncached_plain_output_which_would_keep_it_out_of_the_run_cache():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        for out in stage.get("outs", []):
            path, props = next(iter(out.items())) if isinstance(out, dict) else (out, {})
            assert props.get("cache", True), f"{name}: {path} is cache: false: declare it under plots: or metrics:"


def test_dvc_yaml_names_the_params_each_stage_reads():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    params = load_params(REPO / "params.yaml")
    for stage, expected in STAGE_PARAMS.items():
        assert set(stages[stage]["params"]) == expected, stage
        for entry in expected:  # each names a section or one of its keys, and no section hides a key DVC ignores
            value = params
            for part in entry.split("."):
                value = getattr(value, part)
            assert not keys_below(value) & RUN_CACHE_IGNORES, f"{entry}: list its keys one by one"
        # every section the script loads is among them
        script = (REPO / "src" / "stages" / f"{stage}.py").read_text()
        loaded = set(re.findall(r'load_section\(args\.params, "(\w+)"', script))
        assert loaded == {entry.partition(".")[0] for entry in expected}, stage
    assert "params" not in stages["evaluate"]  # evaluate reads everything it needs from the model bundle
    assert "size" in keys_below(params.model)  # the check above does look inside sections


@pytest.mark.slow
def test_data_half_runs_end_to_end_once_for_every_fold_and_is_incremental(project):
    root, env = project
    first = run(["dvc", "repro", "melspec"], root, env)
    for stage in ("fetch", "split", "augment", "melspec"):
        assert f"Running stage '{stage}'" in first
    assert "cremad: 48 clips found, 48 kept, 28 speakers" in first  # the summary says how many it found

    manifest = pd.read_csv(root / "data" / "manifest.csv")
    assert manifest.groupby("corpus").size().to_dict() == dict.fromkeys(CORPORA, CLIPS_PER_CORPUS)
    split = pd.read_csv(root / "data" / "split.csv")
    for fold in FOLDS:  # every clip has a role in every fold, and a speaker (TESS: a word) one role per fold
        assert set(split[role_column(fold)]) == {"train", "val", "test"}
        for corpus, clips in split.groupby("corpus"):
            assert clips.groupby(CORPORA[corpus].fold_by)[role_column(fold)].nunique().max() == 1, (fold, corpus)
    ravdess = split[split["corpus"] == "ravdess"]
    fold_1 = {"Actor_01", "Actor_11", "Actor_20", "Actor_21"}
    assert set(ravdess.loc[ravdess["fold_1"] == "test", "speaker"]) == fold_1 & set(ravdess["speaker"])

    clips = pd.read_csv(root / "data" / "features" / "clips.csv")
    trains = trains_in_some_fold(split)
    assert len(clips) == len(split) + int(trains.sum())  # one data half for all six folds: every clip once ...
    copies = clips[clips["prepared"]]
    assert set(copies["source_clip_id"]) == set(split.loc[trains, "clip_id"])  # ... and a copy of each that trains
    features = np.load(root / "data" / "features" / "features.npy", mmap_mode="r")
    assert features.shape == (len(clips), 64, 188) and np.isfinite(features).all()
    assert {p.stem for p in (root / "plots" / "spectrograms").glob("*.png")} <= set(EMOTIONS)
    assert len(list((root / "plots" / "spectrograms").glob("*.png"))) >= 6

    second = run(["dvc", "repro", "melspec"], root, env)
    assert "Running stage" not in second

    set_params(root, **{"augment.copies": 2})
    third = run(["dvc", "repro", "melspec"], root, env)
    assert "Running stage 'augment'" in third and "Running stage 'melspec'" in third
    assert "Running stage 'fetch'" not in third and "Running stage 'split'" not in third
    assert np.load(root / "data" / "features" / "features.npy", mmap_mode="r").shape[0] == len(split) + 2 * int(
        trains.sum()
    )


def check_fold_results(root: Path, fold: int) -> dict:
    """The fold's metrics are those of its predictions table, which holds exactly its test clips."""
    metrics = json.loads((root / "metrics" / "folds" / str(fold) / "evaluate.json").read_text())
    assert list(metrics) == ["test"]  # the headline only (a model not normalised per speaker)
    results = metrics["test"]
    assert list(results) == [*sorted(CORPORA), "all"]  # every corpus fetched is tested
    split = pd.read_csv(root / "data" / "split.csv")
    evaluated = pd.read_csv(root / "plots" / "folds" / str(fold) / "predictions.csv")
    assert sorted(evaluated["clip_id"]) == sorted(split.loc[split[role_column(fold)] == "test", "clip_id"])
    recall = pd.read_csv(root / "plots" / "folds" / str(fold) / "recall.csv")
    for name, rows in [*evaluated.groupby("corpus"), ("all", evaluated)]:
        assert list(results[name]) == ["ua", "wa", "macro_f1"]
        assert results[name]["wa"] == pytest.approx((rows["actual"] == rows["predicted"]).mean())
        assert results[name]["ua"] == pytest.approx(balanced_accuracy_score(rows["actual"], rows["predicted"]))
        per_class = recall[recall["corpus"] == name]  # the detail, as a table: clips and recall of each emotion
        assert per_class["clips"].sum() == len(rows)
        assert per_class["recall"].mean() == pytest.approx(results[name]["ua"], abs=1e-4)
    clips = recall.groupby("corpus")["clips"].sum()
    return {name: {**scores, "clips": int(clips[name])} for name, scores in results.items()}


@pytest.mark.slow
def test_model_half_trains_evaluates_cross_validates_and_experiments_compare(project, mirror):
    root, env = project
    set_params(root, **{"model.size": "small", "train.epochs": 2, "train.batch_size": 16, "train.members": 2})
    run(["git", "add", "-A"], root, env)
    run(["git", "commit", "-qm", "small model, two epochs, two members"], root, env)
    output = run(["dvc", "repro"], root, env)
    for stage in ("train@1", "evaluate@1", "cv"):
        assert f"Running stage '{stage}'" in output
    assert "Running stage 'melspec'" not in output  # the data half is cached from the test above
    fold_1 = check_fold_results(root, 1)
    cv = json.loads((root / "metrics" / "cv.json").read_text())
    assert list(cv) == ["test", "val", "folds", "baseline"] and cv["folds"] == [1]
    per_fold = pd.read_csv(root / "plots" / "cv" / "folds.csv")
    for name in (*CORPORA, "all"):
        assert per_fold.loc[per_fold["corpus"] == name, "ua"].tolist() == pytest.approx([fold_1[name]["ua"]], abs=1e-5)
        assert cv["test"][name]["ua"] == fold_1[name]["ua"] and cv["test"][name]["ua_std"] is None  # one fold
    history = pd.read_csv(root / "plots" / "folds" / "1" / "training.csv")
    assert history["epoch"].tolist() == [1, 2, 1, 2]  # two members, one after the other
    assert history["member"].tolist() == [1, 1, 2, 2] and history["run_epoch"].tolist() == [1, 2, 3, 4]
    trained = json.loads((root / "metrics" / "folds" / "1" / "train.json").read_text())
    assert list(trained["members"]) == ["1", "2"] and all(
        w.startswith(("epoch", "mean")) for w in trained["members"].values()
    )
    # dvclive's live curves: one directory per member, each stepped by its own epochs, drawn overlaid
    live = root / "dvclive" / "folds" / "1"
    for member in (1, 2):
        curve = pd.read_csv(live / "plots" / "metrics" / f"member-{member}" / "val" / "score.tsv", sep="\t")
        assert curve["step"].tolist() == [1, 2]
        assert curve["score"].tolist() == pytest.approx(history[history["member"] == member]["val_score"], abs=1e-5)
    assert set(json.loads((live / "metrics.json").read_text())) >= {"member-1", "member-2"}
    drawn = json.loads(run(["dvc", "plots", "show", "--json", "live validation score"], root, env))["data"]
    lines = drawn["live validation score"][0]["content"]["data"]["values"]
    assert {value["filename"] for value in lines} == {f"member-{member}/val/score.tsv" for member in (1, 2)}  # overlaid
    assert set(trained["val"]) == {"score", *CORPORA, "all"}
    assert trained["val"]["score"] == pytest.approx(np.mean([trained["val"][c]["ua"] for c in CORPORA]))
    assert cv["val"] == trained["val"]  # one fold: its own validation figures are their mean
    # What `dvc exp show` reads as metrics: the means over cv.folds and the live curves' latest epoch; scores,
    # not clip counts, per-class or per-fold detail (cached outputs), so the columns do not grow with the folds.
    columns = json.loads(run(["dvc", "exp", "show", "--json"], root, env))[0]["data"]["metrics"]
    run_metrics = {"metrics/cv.json", "dvclive/folds/1/metrics.json"}  # and the committed six-fold summary
    assert set(columns) == run_metrics | {"metrics/cv-6fold.json"}, list(columns)
    shown = sum(len(leaves(columns[path]["data"])) for path in run_metrics)
    assert 20 <= shown <= 40, columns  # test: 4 corpora x (UA, its std, WA, F1); dvclive: 2 members x 3, step
    for png in ("folds/1/training.png", "folds/1/confusion.png", "cv/confusion.png"):
        assert (root / "plots" / png).stat().st_size > 10_000

    # `ser predict` on the same clips, straight from the mirror, gives the evaluate stage's probabilities (for
    # clips of one window once trimmed: longer ones are predicted window by window, where the stage takes their
    # first 3 s; some CREMA-D clips are longer than 3 s of speech).
    evaluated = pd.read_csv(root / "plots" / "folds" / "1" / "predictions.csv")
    clips = pd.read_csv(root / "data" / "split.csv").set_index("clip_id")
    short = evaluated[(evaluated["corpus"] != "cremad") | (evaluated["clip_id"].map(clips["duration_s"]) <= 3.0)]
    sample = short.groupby("corpus").head(3).set_index("clip_id")
    assert set(sample["corpus"]) == set(CORPORA)
    paths = clips["path"]  # <corpus>/<as in the mirror>
    files = [str(mirror / paths[clip_id]) for clip_id in sample.index]
    out = root / "predicted.csv"
    summary = run(
        ["ser", "predict", "--format", "csv", "--out", str(out), *files], root, env
    )  # default model: fold 1's
    assert f"{len(files)} predicted, 0 failed" in summary
    predicted = pd.read_csv(out)
    probability_columns = [c for c in evaluated.columns if c.startswith("p_")]
    assert np.allclose(predicted[probability_columns].to_numpy(), sample[probability_columns].to_numpy(), atol=2e-4)
    assert predicted["predicted"].tolist() == sample["predicted"].tolist()

    # Two folds as one experiment: fold 1 is not trained again, and cv.json is the mean and spread of the two.
    two = run(["dvc", "exp", "run", "-n", "two-folds", "-S", "cv.folds=[1,2]"], root, env)
    assert "Running stage 'train@2'" in two and "Running stage 'evaluate@2'" in two
    assert "Running stage 'train@1'" not in two and "Running stage 'melspec'" not in two
    fold_2 = check_fold_results(root, 2)
    cv = json.loads((root / "metrics" / "cv.json").read_text())
    assert cv["folds"] == [1, 2]
    scores = [json.loads((root / "metrics" / "folds" / str(k) / "train.json").read_text())["val"] for k in (1, 2)]
    assert cv["val"]["score"] == pytest.approx(np.mean([v["score"] for v in scores]))
    per_fold = pd.read_csv(root / "plots" / "cv" / "folds.csv")
    for name in (*CORPORA, "all"):
        values = [fold_1[name]["ua"], fold_2[name]["ua"]]
        assert cv["test"][name]["ua"] == pytest.approx(np.mean(values))
        assert cv["test"][name]["ua_std"] == pytest.approx(np.std(values, ddof=1))
        clips = per_fold.loc[per_fold["corpus"] == name, "clips"].tolist()
        assert clips == [fold_1[name]["clips"], fold_2[name]["clips"]]
    pooled = pd.read_csv(root / "plots" / "cv" / "predictions.csv")
    assert len(pooled) == fold_1["all"]["clips"] + fold_2["all"]["clips"] and set(pooled["fold"]) == {1, 2}
    # Fold 2 alone: its results come from the run-cache, and fold 1's files left in the workspace are not counted.
    alone = run(["dvc", "exp", "run", "-n", "fold-2", "-S", "cv.folds=[2]"], root, env)
    assert "Running stage 'train" not in alone and "Running stage 'cv'" in alone
    assert (root / "plots" / "folds" / "1" / "predictions.csv").is_file()  # left by the run before, and not read
    cv = json.loads((root / "metrics" / "cv.json").read_text())
    assert cv["folds"] == [2] and pd.read_csv(root / "plots" / "cv" / "folds.csv")["fold"].unique().tolist() == [2]
    assert cv["test"]["ravdess"]["ua"] == fold_2["ravdess"]["ua"] and cv["test"]["ravdess"]["ua_std"] is None

    # An unseen corpus: trained on RAVDESS and TESS only, CREMA-D's test clips still get figures, and its
    # validation clips are scored but never choose.
    unseen = run(
        ["dvc", "exp", "run", "-n", "unseen-cremad", "-S", "cv.folds=[1]", "-S", "train.corpora=[ravdess,tess]"],
        root,
        env,
    )
    assert "Running stage 'train@1'" in unseen and "cremad (unseen in training)" in unseen
    history = pd.read_csv(root / "plots" / "folds" / "1" / "training.csv")  # CREMA-D's validation never chose
    pairs = history[["val_ua_ravdess", "val_ua_tess"]].mean(axis=1)
    assert history["val_score"].to_numpy() == pytest.approx(pairs, abs=1e-5)  # the CSV keeps 5 decimals
    unseen_files = {path: (root / path).read_bytes() for path in RUN_CACHED_FILES}
    # The tiny model trains as two data-parallel processes (the stage starts them through torchrun itself).
    second = run(
        [
            "dvc",
            "exp",
            "run",
            "-n",
            "tiny-model",
            "-S",
            "cv.folds=[1]",
            "-S",
            "model.size=tiny",
            "-S",
            "train.processes=2",
        ],
        root,
        env,
    )
    assert "Running stage 'train@1'" in second, second
    assert re.search(r"train: all 2 processes hold the same weights \(sha256 [0-9a-f]{16}\)", second), second
    # Back to the unseen-corpus experiment's params: every stage comes from the run-cache, nothing is trained or
    # evaluated again, and the files are that experiment's, byte for byte (the plots and metrics kept in git too:
    # DVC's run-cache skips a stage with an uncached plain output, so they are declared as plots and metrics).
    again = run(
        [
            *("dvc", "exp", "run", "-n", "unseen-cremad-again"),
            *("-S", "model.size=small", "-S", "train.processes=1", "-S", "train.corpora=[ravdess,tess]"),
        ],
        root,
        env,
    )
    for stage in ("train@1", "evaluate@1", "cv"):
        assert f"Stage '{stage}' is cached - skipping run, checking out outputs" in again, again
    assert "Running stage" not in again, again
    for path, content in unseen_files.items():
        assert (root / path).read_bytes() == content, path
    shown = run(["dvc", "exp", "show", "--csv"], root, env)
    assert "unseen-cremad" in shown and "tiny-model" in shown
    diff = json.loads(run(["dvc", "metrics", "diff", "unseen-cremad", "tiny-model", "--all", "--json"], root, env))
    compared = diff["metrics/cv.json"]  # a fold's own files are not metrics: cv.json is what compares
    headline = {"test.all.ua", "test.ravdess.ua", "test.tess.ua", "test.cremad.ua", "val.score"}
    assert headline <= set(compared) and not {p for p in diff if p.startswith("metrics/folds/")}, shown
    assert all(compared[key]["old"] is not None and compared[key]["new"] is not None for key in headline)
    run(["dvc", "plots", "diff", "unseen-cremad", "tiny-model", "-o", str(root / "plots_diff")], root, env)
    assert (root / "plots_diff" / "index.html").is_file()

    # Queued experiments run in temporary copies of the repository, two at a time here: nothing they need may be
    # left untracked, and the data half comes from the shared DVC cache (SER_DATA_MIRROR is absolute here).
    queued_names = {"queued-fold-3": "cv.folds=[3]", "queued-lr": "train.lr=0.002"}
    for name, change in queued_names.items():
        run(["dvc", "exp", "run", "--queue", "-n", name, "-S", change], root, env)
    run(["dvc", "queue", "start", "-j", "2"], root, env)  # returns at once; the workers run in the background
    deadline = time.monotonic() + COMMAND_TIMEOUT_S
    try:
        while True:
            status = run(["dvc", "queue", "status"], root, env)
            if all(name in status for name in queued_names) and not re.search(r"Queued|Running", status):
                break
            assert time.monotonic() < deadline, f"the queue still runs after {COMMAND_TIMEOUT_S} s:\n{status}"
            time.sleep(2)
    finally:  # the workers stop by themselves once the queue is empty; never leave one behind the test
        run(["dvc", "queue", "stop", "--kill"], root, env)
    for name in queued_names:
        assert re.search(rf"{name} .* Success", status), status
    shown = json.loads(run(["dvc", "exp", "show", "--json"], root, env))
    experiments = {
        rev["name"]: rev["data"] for commit in shown for exp in commit["experiments"] or [] for rev in exp["revs"]
    }
    for name in queued_names:  # each ran with its own params, to the end of the pipeline
        assert isinstance(experiments[name]["metrics"]["metrics/cv.json"]["data"]["test"]["all"]["ua"], float)
    assert experiments["queued-fold-3"]["params"]["params.yaml"]["data"]["cv"]["folds"] == [3]
    assert experiments["queued-lr"]["params"]["params.yaml"]["data"]["train"]["lr"] == 0.002

    # The renamed key: DVC refuses `-S train.l2=...` itself (no such key); added with `+`, train names the new one.
    renamed = subprocess.run(
        ["dvc", "exp", "run", "-S", "+train.l2=0.1"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
    )
    assert renamed.returncode != 0
    assert "params.yaml: train.l2 is now train.weight_decay: rename it" in renamed.stdout + renamed.stderr


@pytest.mark.slow
def test_a_bad_params_file_stops_every_repro_in_one_line_before_any_stage_works(project):
    root, env = project
    run(["git", "checkout", "--", "params.yaml"], root, env)  # as committed: an experiment above may have left it
    run(["dvc", "repro"], root, env)  # up to date to start with
    original = (root / "params.yaml").read_text()
    set_params(root, **{"split.bogus_key": 3, "train.lr": "abc"})
    for _ in range(2):  # on every run, not only the first after params.yaml changed
        result = subprocess.run(
            ["dvc", "repro"], cwd=root, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S
        )
        output = result.stdout + result.stderr
        assert result.returncode != 0
        assert "check: error: params.yaml: split.bogus_key: unknown key; train.lr: 'abc' is not allowed" in output
        assert "Traceback" not in output and output.count("Running stage") == 1  # the check, and nothing after it
    (root / "params.yaml").write_text(original)
    run(["dvc", "repro"], root, env)
    assert "Data and pipelines are up to date" in run(["dvc", "status"], root, env)


def test_the_readme_results_table_is_the_committed_metrics():
    summary = json.loads((REPO / "metrics" / "cv.json").read_text())
    assert summary["folds"] == [1]  # the table is fold 1's: the default run's cv.json holds its figures alone
    results = summary["test"]
    recall = pd.read_csv(REPO / "plots" / "folds" / "1" / "recall.csv")
    readme = (REPO / "README.md").read_text()
    fold_1 = readme.split("### Fold 1 (`dvc repro`)")[1].split("\n### ")[0]  # the section, not other tables
    rows = re.findall(r"^\| (\w+) \| (\d+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$", fold_1, re.MULTILINE)
    assert [row[0] for row in rows] == list(results)  # one row per corpus and "all", in the metrics' order
    for name, clips, wa, ua, macro_f1 in rows:
        expected = results[name]
        assert int(clips) == recall.loc[recall["corpus"] == name, "clips"].sum(), name
        for shown, key in ((wa, "wa"), (ua, "ua"), (macro_f1, "macro_f1")):
            assert shown == f"{expected[key]:.3f}", (name, key)


def readme_row_means(label: str) -> list[tuple[str, str]]:
    """The bold `mean ± std` cells of the one README table row whose first cell is **label**, in order."""
    readme = (REPO / "README.md").read_text()
    (row,) = re.findall(rf"^\| \*\*{re.escape(label)}\*\* \|(.*)$", readme, re.MULTILINE)
    return re.findall(r"\*\*([\d.]+) ± ([\d.]+)\*\*", row)


def test_the_readme_six_fold_row_is_the_committed_six_fold_summary():
    summary = json.loads((REPO / "metrics" / "cv-6fold.json").read_text())
    assert summary["folds"] == [1, 2, 3, 4, 5, 6]
    shown = readme_row_means("six folds")
    expected = [(f"{scores['ua']:.3f}", f"{scores['ua_std']:.3f}") for scores in summary["test"].values()]
    assert shown == expected  # CREMA-D, RAVDESS, TESS, all: the metrics' order


def test_the_readme_speaker_normalised_row_is_its_committed_six_fold_summary():
    """Issue 14's two figures of the speaker-normalised model: with the speakers' statistics, and each clip alone."""
    summary = json.loads((REPO / "reports" / "speaker" / "cv" / "cv.json").read_text())
    assert summary["folds"] == [1, 2, 3, 4, 5, 6]
    shown = readme_row_means("six folds, this model")
    expected = [
        (f"{summary[key][corpus]['ua']:.3f}", f"{summary[key][corpus]['ua_std']:.3f}")
        for key in ("test", "per_utterance")
        for corpus in ("cremad", "ravdess", "tess")
    ]
    assert shown == expected


def test_dvc_metrics_show_finds_the_committed_six_fold_summary():
    """Issue 14: the six-fold summary is a metric of the project, listed in dvc.yaml's top-level `metrics:`."""
    shown = subprocess.run(
        [sys.executable, "-m", "dvc", "metrics", "show", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=COMMAND_TIMEOUT_S,
    )
    metrics = json.loads(shown.stdout)
    six_folds = metrics[""]["data"]["metrics/cv-6fold.json"]["data"]
    committed = json.loads((REPO / "metrics" / "cv-6fold.json").read_text())
    assert committed["folds"] == [1, 2, 3, 4, 5, 6]  # (DVC reads numbers only: not this list)
    assert six_folds["test"] == committed["test"] and six_folds["baseline"] == committed["baseline"]


@pytest.mark.slow
def test_verify_finds_same_size_corruption_that_dvc_status_trusts(project):
    root, env = project
    verify = [sys.executable, "-m", "ser.verify"]
    run(["dvc", "checkout", "--force"], root, env)  # the outputs the workspace's dvc.lock records
    assert "0 problem(s)" in run(verify, root, env)
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    split_md5 = next(o["md5"] for o in lock["stages"]["split"]["outs"] if o["path"] == "data/split.csv")
    cached = root / ".dvc" / "cache" / "files" / "md5" / split_md5[:2] / split_md5[2:]
    workspace = root / "data" / "manifest.csv"
    originals = {path: (path.read_bytes(), path.stat()) for path in (cached, workspace)}
    try:
        for path, (data, status) in originals.items():  # flip one byte, keep the size and the times
            path.chmod(0o644)
            path.write_bytes(data[:-2] + bytes([data[-2] ^ 1]) + data[-1:])
            os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))
        assert "up to date" in run(["dvc", "status", "fetch", "split"], root, env)  # DVC trusts the metadata
        result = subprocess.run(verify, cwd=root, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert any(line.startswith("verify: data/manifest.csv: MD5 ") for line in lines)
        assert any(line.startswith(f"verify: {cached}: cache object of data/split.csv is corrupt") for line in lines)
        assert lines[-1].endswith("2 problem(s)")
    finally:
        for path, (data, status) in originals.items():
            path.write_bytes(data)
            os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))
            path.chmod(status.st_mode & 0o777)


@pytest.mark.slow
def test_a_colleague_pulls_from_an_s3_remote_instead_of_retraining(project, clips, tmp_path):
    """Push a run on the slice to an S3 remote (moto's server on 127.0.0.1), clone afresh, pull: `dvc repro` has
    nothing to do and `ser predict` runs on the pulled model. The audio is never pushed (push: false): the
    corpora's licences forbid redistribution."""
    import boto3
    from moto.server import ThreadedMotoServer

    root, env = project
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        env = {
            **env,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing")
        s3.create_bucket(Bucket="ser-test")
        run(["git", "checkout", "-q", "HEAD", "--", "params.yaml"], root, env)  # as the tests before left it
        run(["dvc", "repro"], root, env)
        run(["dvc", "remote", "add", "-f", "-d", "storage", "s3://ser-test/dvc"], root, env)
        run(["dvc", "remote", "modify", "storage", "endpointurl", endpoint], root, env)
        run(["git", "add", "-A"], root, env)
        run(["git", "commit", "-qm", "an S3 remote", "--allow-empty"], root, env)
        run(["dvc", "push"], root, env)

        lock = yaml.safe_load((root / "dvc.lock").read_text())
        outs = {out["path"]: out["md5"] for stage in lock["stages"].values() for out in stage.get("outs", [])}
        pushed = {
            obj["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket="ser-test")
            for obj in page.get("Contents", [])
        }

        def in_remote(path: str) -> bool:
            md5 = outs[path]
            return f"dvc/files/md5/{md5[:2]}/{md5[2:]}" in pushed

        assert in_remote("data/features") and in_remote("data/models/1") and in_remote("data/split.csv")
        assert not in_remote("data/raw") and not in_remote("data/augmented")  # audio stays home
        assert not any(key.endswith(".wav") or key.endswith(".flac") for key in pushed)

        colleague = tmp_path / "colleague"
        run(["git", "clone", "-q", str(root), str(colleague)], tmp_path, env)
        run(["dvc", "pull", "--allow-missing"], colleague, env)
        assert (colleague / "data" / "models" / "1" / "model.pt").is_file()
        assert not (colleague / "data" / "raw").exists()
        repro = run(["dvc", "repro", "--allow-missing"], colleague, env)
        assert "Running stage" not in repro and "up to date" in repro
        predicted = run(
            ["ser", "predict", "--model", "data/models/1/model.pt", "--format", "csv", str(clips[0])], colleague, env
        )
        assert predicted.splitlines()[0].startswith("path,predicted,confidence")
    finally:
        server.stop()


@pytest.mark.slow
def test_a_tagged_model_version_comes_back_with_dvc_artifacts_get(project, clips, tmp_path):
    """The registry: dvc.yaml's `emotion-classifier` artifact, pushed to a local remote and tagged the GTO way
    (an annotated `<name>@v<semver>`), is what `dvc artifacts get --rev` downloads, and `ser predict` runs on it."""
    root, env = project
    run(["git", "checkout", "-q", "HEAD", "--", "params.yaml"], root, env)  # as the tests before left it
    run(["dvc", "repro"], root, env)
    run(["dvc", "remote", "add", "-f", "-d", "local", str(tmp_path / "remote")], root, env)
    run(["git", "add", "-A"], root, env)
    run(["git", "commit", "-qm", "a local remote", "--allow-empty"], root, env)
    run(["dvc", "push"], root, env)
    run(["git", "tag", "-a", "emotion-classifier@v0.1.0", "-m", "emotion-classifier v0.1.0"], root, env)  # annotated
    out = tmp_path / "got" / "model.pt"
    run(["dvc", "artifacts", "get", str(root), "emotion-classifier", "--rev", "v0.1.0", "-o", str(out)], tmp_path, env)
    assert out.read_bytes() == (root / "data" / "models" / "1" / "model.pt").read_bytes()
    predicted = run(["ser", "predict", "--model", str(out), "--format", "csv", str(clips[0])], tmp_path, env)
    assert predicted.splitlines()[0].startswith("path,predicted,confidence")
