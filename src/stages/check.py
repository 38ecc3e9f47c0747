"""check: the whole of params.yaml, before any stage works: every section and key known, typed and in range,
the model preset and the corpora among ser's. DVC runs it whenever params.yaml changes, and on every `dvc
repro` after that until it passes, so a misspelt key stops each run with one line naming it.

Its output, `--ok`, says only that the check passed: always the same bytes, so that fetch can depend on it
(which makes the check run first) without rerunning when a param changes."""

from ser.io import atomic_path
from ser.params import load_params
from ser.stage import run, stage_args
from ser.train import check_choices


def main(argv=None) -> None:
    args = stage_args(__doc__, ["ok"], argv)
    params = load_params(args.params)
    check_choices(params.model, params.train, str(args.params))
    with atomic_path(args.ok) as tmp:
        tmp.write_text("params.yaml passed the check stage\n")
    print(f"check: {args.params}: every key known and allowed")


if __name__ == "__main__":
    run(main)
