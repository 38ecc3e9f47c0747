"""cv: gather the test results of exactly the folds in `cv.folds` into metrics/cv.json (per corpus, under
`test`: the mean and standard deviation over the folds of UA, WA and macro-F1; under `val`, the means of
the validation figures that selected), each fold's figures into a table (a DVC plot), a confusion matrix of
every fold's test clips pooled (DVC plot and PNG), and the folds' training curves one after another; beside
them, under `baseline`, the baseline stage's six-fold mean UA and its spread (from its table of folds,
plots/baseline/folds.csv)."""

from ser.crossval import (
    BASELINE,
    VAL,
    aggregate,
    means,
    per_fold_table,
    read_fold_results,
    read_validation,
    summary_lines,
)
from ser.evaluation import confusion_by_corpus
from ser.io import read_table, write_csv, write_json
from ser.params import CvParams, load_section
from ser.plots import confusion_matrices
from ser.stage import run, stage_args


def main(argv=None) -> None:
    names = ["fold_metrics", "fold_plots", "baseline", "metrics", "folds", "predictions", "history", "confusion"]
    args = stage_args(__doc__, names, argv)
    params = load_section(args.params, "cv", CvParams)
    results, predictions, history = read_fold_results(args.fold_metrics, args.fold_plots, params.folds)
    validation = read_validation(args.fold_metrics, params.folds)
    summary = {**aggregate(results, validation), BASELINE: means(read_table(args.baseline), ("ua",))}
    per_fold = per_fold_table(results)
    write_json(summary, args.metrics)
    write_csv(per_fold.round(5), args.folds)
    write_csv(predictions, args.predictions)
    write_csv(history, args.history)
    confusion_matrices(confusion_by_corpus(predictions), args.confusion)
    for line in summary_lines(summary, per_fold):
        print(f"cv: {line}")
    baseline = ", ".join(f"{corpus} {scores['ua']:.3f}" for corpus, scores in summary[BASELINE].items())
    print(f"cv: validation score {summary[VAL]['score']:.3f} (the mean over the folds of what selected)")
    print(f"cv: baseline (eGeMAPS + SVM, all six folds): test UA {baseline}")


if __name__ == "__main__":
    run(main)
