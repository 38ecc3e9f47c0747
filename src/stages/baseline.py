"""baseline: the reference row (ser.baseline) on all six folds, whatever cv.folds says (it takes seconds a
fold): each fold's test UA, WA and macro-F1 per corpus of the eGeMAPS + SVM recipe, as a table (and plot)
that the cv stage summarises beside the model, and the test predictions."""

import pandas as pd

from ser.baseline import fit_and_test
from ser.crossval import means, per_fold_table, summary_lines
from ser.evaluation import TEST, scores_by_corpus
from ser.io import read_table, write_csv
from ser.params import BaselineParams, TrainParams, load_section
from ser.splitting import FOLDS
from ser.stage import run, stage_args


def main(argv=None) -> None:
    args = stage_args(__doc__, ["features", "split", "folds", "predictions"], argv)
    params = load_section(args.params, "baseline", BaselineParams)
    corpora = load_section(args.params, "train", TrainParams).corpora
    features, split = read_table(args.features), read_table(args.split)
    results, tables, picked = {}, [], {}
    for fold in FOLDS:
        table, chosen = fit_and_test(features, split, fold, corpora, params)
        results[fold], picked[fold] = scores_by_corpus(table), chosen["c"]
        tables.append(table.assign(fold=fold))
        print(f"baseline: fold {fold}: C {chosen['c']} (validation score {chosen['val_score']:.3f})")
    per_fold = per_fold_table(results)
    per_fold["c"] = per_fold["fold"].map(picked)  # the SVM's C that the fold's validation picked
    write_csv(per_fold, args.folds)
    write_csv(pd.concat(tables, ignore_index=True), args.predictions)
    for line in summary_lines({TEST: means(per_fold)}, per_fold):
        print(f"baseline: {line}")


if __name__ == "__main__":
    run(main)
