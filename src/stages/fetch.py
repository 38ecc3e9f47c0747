"""fetch: put every corpus under data/raw (from $SER_DATA_MIRROR or the official sources) and list
every usable clip in the manifest; clips left out are reported by name."""

from ser.fetch import fetch_corpora, mirror_from_env
from ser.io import write_json
from ser.params import AudioParams, FetchParams, load_section
from ser.stage import run, stage_args


def main(argv=None) -> None:
    args = stage_args(__doc__, ["raw", "manifest", "downloads", "report"], argv)
    params = load_section(args.params, "fetch", FetchParams)
    silence_dbfs = load_section(args.params, "audio", AudioParams).silence_dbfs
    report = fetch_corpora(params, silence_dbfs, args.raw, args.manifest, args.downloads, mirror_from_env())
    write_json(report.as_dict(), args.report)
    print("\n".join(report.lines()))


if __name__ == "__main__":
    run(main)
