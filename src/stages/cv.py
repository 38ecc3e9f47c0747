"""cv: gather the test results of exactly the folds in `cv.folds` into metrics/cv.json (per corpus and fold:
UA, WA and macro-F1, and their mean and standard deviation over the folds) and a confusion matrix of every
fold's test clips pooled (DVC plot and PNG), and the folds' training curves one after another; beside them,
under `baseline`, the baseline stage's six-fold means and spreads (metrics/baseline.json)."""

import json

from ser.crossval import BASELINE, aggregate, baseline_means, read_fold_results, summary_lines
from ser.evaluation import confusion_by_corpus
from ser.io import write_csv, write_json
from ser.params import CvParams, load_section
from ser.plots import confusion_matrices
from ser.stage import run, stage_args


def main(argv=None) -> None:
    names = ["fold_metrics", "fold_plots", "baseline", "metrics", "predictions", "history", "confusion"]
    args = stage_args(__doc__, names, argv)
    params = load_section(args.params, "cv", CvParams)
    results, predictions, history = read_fold_results(args.fold_metrics, args.fold_plots, params.folds)
    summary = {**aggregate(results), BASELINE: baseline_means(json.loads(args.baseline.read_text()))}
    write_json(summary, args.metrics)
    write_csv(predictions, args.predictions)
    write_csv(history, args.history)
    confusion_matrices(confusion_by_corpus(predictions), args.confusion)
    for line in summary_lines(summary):
        print(f"cv: {line}")


if __name__ == "__main__":
    run(main)
