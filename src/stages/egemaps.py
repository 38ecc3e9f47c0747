"""egemaps: openSMILE's 88 eGeMAPS functionals of every clip (trimmed as training trims it), once, for the
baseline stage."""

from ser.egemaps import compute_egemaps
from ser.io import read_table, write_csv
from ser.parallel import available_cores
from ser.params import AudioParams, load_section
from ser.stage import run, stage_args


def main(argv=None) -> None:
    args = stage_args(__doc__, ["raw", "split", "out"], argv)
    audio = load_section(args.params, "audio", AudioParams)
    table = compute_egemaps(read_table(args.split), args.raw, audio, available_cores())
    write_csv(table, args.out)
    print(f"egemaps: {len(table)} clips, {table.shape[1] - 4} functionals each")


if __name__ == "__main__":
    run(main)
