"""split: assign every clip to train / val / test, RAVDESS by actor (EmoBox fold), TESS by word."""

import pandas as pd

from ser.io import write_csv, write_json
from ser.params import SplitParams, load_section
from ser.splitting import assign_splits, split_summary
from ser.stage import stage_args


def main(argv=None) -> None:
    args = stage_args(__doc__, ["manifest", "out", "summary"], argv)
    params = load_section(args.params, "split", SplitParams)
    table = assign_splits(pd.read_csv(args.manifest), params)
    write_csv(table, args.out)
    summary = split_summary(table)
    write_json(summary, args.summary)
    for name, counts in summary.items():
        print(f"split: {name}: {counts}")


if __name__ == "__main__":
    main()
