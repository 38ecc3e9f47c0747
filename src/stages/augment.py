"""augment: write seeded, perturbed copies of every training clip (never val or test)."""

from ser.augment import augment_training_set
from ser.io import read_table
from ser.parallel import available_cores
from ser.params import AudioParams, AugmentParams, load_section
from ser.stage import run, stage_args


def main(argv=None) -> None:
    args = stage_args(__doc__, ["raw", "split", "out", "table"], argv)
    audio = load_section(args.params, "audio", AudioParams)
    params = load_section(args.params, "augment", AugmentParams)
    table = augment_training_set(
        read_table(args.split), args.raw, args.out, args.table, audio, params, available_cores()
    )
    print(f"augment: {len(table)} copies of {table['source_clip_id'].nunique()} training clips")


if __name__ == "__main__":
    run(main)
