"""baseline: the reference row (ser.baseline) on all six folds, whatever cv.folds says (it takes seconds a
fold): per corpus and fold the test UA, WA and macro-F1 of the eGeMAPS + SVM recipe, with their mean and
spread, in the layout of metrics/cv.json."""

import pandas as pd

from ser.baseline import fit_and_test
from ser.crossval import aggregate, summary_lines
from ser.evaluation import scores_by_corpus
from ser.io import read_table, write_csv, write_json
from ser.params import BaselineParams, TrainParams, load_section
from ser.splitting import FOLDS
from ser.stage import run, stage_args


def main(argv=None) -> None:
    args = stage_args(__doc__, ["features", "split", "metrics", "predictions"], argv)
    params = load_section(args.params, "baseline", BaselineParams)
    corpora = load_section(args.params, "train", TrainParams).corpora
    features, split = read_table(args.features), read_table(args.split)
    results, tables = {}, []
    for fold in FOLDS:
        table, chosen = fit_and_test(features, split, fold, corpora, params)
        results[fold] = scores_by_corpus(table)
        tables.append(table.assign(fold=fold))
        print(f"baseline: fold {fold}: C {chosen['c']} (validation score {chosen['val_score']:.3f})")
    summary = aggregate(results)
    write_json(summary, args.metrics)
    write_csv(pd.concat(tables, ignore_index=True), args.predictions)
    for line in summary_lines(summary):
        print(f"baseline: {line}")


if __name__ == "__main__":
    run(main)
