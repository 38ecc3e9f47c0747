"""evaluate: score one fold's model on that fold's test clips of every corpus fetched, whether it trained on
the corpus or not (then the figure is an unseen-corpus one): UA, WA and macro-F1 per corpus under `test`, and
per-class recall as a table (a DVC plot). The clips are normalised as the model's training normalised them
(ser.normalise) and heard at ser.tta's shifts, their probabilities averaged, as `ser predict` hears them; a
model normalised per speaker is also scored with each clip normalised alone, as `ser predict` does a lone
clip, under `per_utterance`."""

import pandas as pd

from ser.bundle import load_bundle
from ser.device import pick_device
from ser.evaluation import (
    PER_UTTERANCE,
    TEST,
    confusion_by_corpus,
    headline,
    predict_proba,
    probability_table,
    recall_table,
    scores_by_corpus,
)
from ser.features import load_fold
from ser.io import read_table, write_csv, write_json
from ser.normalise import normalise_split
from ser.plots import confusion_matrices
from ser.stage import run, stage_args
from ser.tta import ShiftAveraged, shift_frames


def main(argv=None) -> None:
    args = stage_args(
        __doc__, ["features", "split", "model", "metrics", "predictions", "recall", "confusion"], argv, fold=True
    )
    device = pick_device()
    bundle = load_bundle(args.model, device)
    model = ShiftAveraged(bundle.model, shift_frames(bundle.frontend))  # as `ser predict` hears a clip
    test = load_fold(args.features, read_table(args.split), args.fold, "test")
    labels = test.table[["clip_id", "corpus", "speaker", "emotion"]].rename(columns={"emotion": "actual"})

    def predictions(mode: str) -> pd.DataFrame:
        probabilities = predict_proba(model, normalise_split(test, mode).features, device)
        return pd.concat(
            [labels.assign(fold=args.fold), probability_table(probabilities, bundle.labels, decimals=4)], axis=1
        )

    table = predictions(bundle.normalise)
    results = scores_by_corpus(table)
    metrics = {TEST: headline(results)}
    if bundle.normalise == "speaker":  # what a user with one clip of a speaker gets
        results[PER_UTTERANCE] = scores_by_corpus(predictions("utterance"))
        metrics[PER_UTTERANCE] = {
            corpus: {"ua": scores["ua"]} for corpus, scores in headline(results[PER_UTTERANCE]).items()
        }
    write_json(metrics, args.metrics)
    write_csv(table, args.predictions)
    write_csv(recall_table(table).round(5), args.recall)
    confusion_matrices(confusion_by_corpus(table), args.confusion)
    trained = bundle.info["corpora"]
    for name, result in results.items():
        if name == PER_UTTERANCE:
            ua = ", ".join(f"{corpus} {scores['ua']:.3f}" for corpus, scores in result.items())
            print(f"evaluate: fold {args.fold}: normalised per clip instead of per speaker: UA {ua}")
            continue
        unseen = " (unseen in training)" if name != "all" and name not in trained else ""
        print(
            f"evaluate: fold {args.fold}: {name}{unseen}: {result['clips']} clips, WA {result['wa']:.3f}, "
            f"UA {result['ua']:.3f}, macro-F1 {result['macro_f1']:.3f}"
        )


if __name__ == "__main__":
    run(main)
