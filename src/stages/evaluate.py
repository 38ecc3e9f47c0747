"""evaluate: score the trained model on the test split, per corpus (RAVDESS test actors, TESS test words)."""

import pandas as pd

from ser.bundle import load_bundle
from ser.device import pick_device
from ser.evaluation import confusion, predict_proba, probability_table, scores_by_corpus
from ser.features import load_split
from ser.io import write_csv, write_json
from ser.plots import confusion_matrices
from ser.stage import stage_args


def main(argv=None) -> None:
    args = stage_args(__doc__, ["features", "model", "metrics", "predictions", "confusion"], argv)
    device = pick_device()
    bundle = load_bundle(args.model, device)
    test = load_split(args.features, "test")
    probabilities = predict_proba(bundle.model, test.features, device)
    table = test.table[["clip_id", "corpus", "emotion"]].rename(columns={"emotion": "actual"})
    table = pd.concat([table, probability_table(probabilities, bundle.labels, decimals=4)], axis=1)
    results = scores_by_corpus(table)
    write_json(results, args.metrics)
    write_csv(table, args.predictions)
    matrices = {name: confusion(group["actual"], group["predicted"]) for name, group in table.groupby("corpus")}
    confusion_matrices(matrices, args.confusion)
    for name, result in results.items():
        print(
            f"evaluate: {name}: {result['clips']} clips, WA {result['wa']:.3f}, UA {result['ua']:.3f}, "
            f"macro-F1 {result['macro_f1']:.3f}"
        )


if __name__ == "__main__":
    main()
