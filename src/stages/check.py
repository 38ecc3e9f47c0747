"""check: the whole of params.yaml, before any stage works: every section and key known, typed and in range,
the model preset and the corpora among ser's. DVC runs it whenever params.yaml changes, and on every `dvc
repro` after that until it passes, so a misspelt key stops each run with one line naming it."""

from ser.params import load_params
from ser.stage import run, stage_args
from ser.train import check_choices


def main(argv=None) -> None:
    args = stage_args(__doc__, [], argv)
    params = load_params(args.params)
    check_choices(params.model, params.train, str(args.params))
    print(f"check: {args.params}: every key known and allowed")


if __name__ == "__main__":
    run(main)
