"""melspec: log-mel spectrograms of every clip, originals and augmented copies, in one memory-mappable array
indexed by clip (the same for every fold), plus example plots."""

from ser.audio import FrontEndConfig
from ser.features import clip_table, compute_features, load_features, load_table
from ser.io import read_table
from ser.parallel import available_cores
from ser.params import AudioParams, MelspecParams, load_section
from ser.plots import spectrogram_examples
from ser.stage import run, stage_args


def main(argv=None) -> None:
    args = stage_args(__doc__, ["raw", "split", "augmented", "augmented_table", "out", "examples"], argv)
    frontend = FrontEndConfig.of(
        load_section(args.params, "audio", AudioParams),
        load_section(args.params, "melspec", MelspecParams),
        str(args.params),
    )
    table = clip_table(read_table(args.split), read_table(args.augmented_table), args.raw, args.augmented)
    compute_features(table, args.out, frontend, available_cores())
    features = load_features(args.out)
    spectrogram_examples(features, load_table(args.out), frontend, args.examples)
    print(f"melspec: {features.shape[1:]} (n_mels, n_frames) per clip; clips per corpus (original / augmented):")
    print(
        table.groupby(["corpus", "prepared"])
        .size()
        .unstack()
        .rename(columns={False: "original", True: "augmented"})
        .to_string()
    )


if __name__ == "__main__":
    run(main)
