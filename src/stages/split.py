"""split: record each clip's role (train / val / test) in each of the six speaker-independent folds."""

from ser.corpora import CORPORA
from ser.io import read_table, write_csv, write_json
from ser.params import SplitParams, load_section
from ser.splitting import FOLDS, assign_roles, split_summary, tested_groups
from ser.stage import run, stage_args


def main(argv=None) -> None:
    args = stage_args(__doc__, ["manifest", "out", "summary"], argv)
    params = load_section(args.params, "split", SplitParams)
    table = assign_roles(read_table(args.manifest), params)
    write_csv(table, args.out)
    summary = split_summary(table)
    write_json(summary, args.summary)
    for fold in FOLDS:
        counts = "; ".join(
            f"{corpus} {c['train']}/{c['val']}/{c['test']} clips, "
            f"{c['train_groups']}/{c['val_groups']}/{c['test_groups']} groups"
            for corpus, c in summary[str(fold)].items()
        )
        print(f"split: fold {fold} (train/val/test): {counts}")
        tested = "; ".join(  # speakers by name; TESS's words, dealt into the folds, are too many to list
            f"{corpus}: {', '.join(groups)}"
            for corpus, groups in tested_groups(table, fold).items()
            if CORPORA[corpus].fold_by == "speaker"
        )
        print(f"split: fold {fold} tests {tested}")


if __name__ == "__main__":
    run(main)
