"""Re-hash what DVC trusts: every output that dvc.lock records, in the workspace and in the cache.

DVC decides that an output is unchanged from file metadata (size, modification time, inode) and checks a
cache object out without reading it again, so a same-size corruption passes `dvc status` unseen. This reads
every byte: `make verify` (`python -m ser.verify`) lists each file whose content is not what dvc.lock says,
one line each, and exits 1 if there is any.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import yaml
from tqdm import tqdm

from ser.fetch import file_md5


def uncached_outputs(pipeline: dict) -> set[str]:
    """The outputs a parsed dvc.yaml declares `cache: false`: git tracks those, not DVC's cache."""
    return {
        path
        for stage in pipeline.get("stages", {}).values()
        for kind in ("outs", "metrics", "plots")
        for out in stage.get(kind, [])
        if isinstance(out, dict)
        for path, options in out.items()
        if (options or {}).get("cache") is False
    }


def recorded_outputs(lock: dict, uncached: set[str]) -> Iterator[tuple[str, str]]:
    """(path, md5) of every cached stage output in a parsed dvc.lock; a folder's md5 ends in ".dir"."""
    for stage in lock.get("stages", {}).values():
        for out in stage.get("outs", []):
            if out["path"] not in uncached:
                yield out["path"], out["md5"]


def expected_files(path: str, md5: str, cache: Path) -> tuple[dict[str, str], list[str]]:
    """The files an output should hold, {workspace path: md5}, and the problems found in finding them."""
    if not md5.endswith(".dir"):
        return {path: md5}, []
    listing = cache / md5[:2] / md5[2:]
    try:
        entries = json.loads(listing.read_text())
    except FileNotFoundError:
        return {}, [f"{path}: its file list {listing} is not in the cache; `dvc pull` or `dvc repro` it"]
    except ValueError:
        return {}, [f"{path}: its file list {listing} is corrupt; delete it and `dvc repro --force` the stage"]
    return {f"{path}/{entry['relpath']}": entry["md5"] for entry in entries}, []


def verify(repo: Path) -> tuple[int, list[str]]:
    """(files checked, one line per problem) for every cached output of `repo`'s dvc.lock: each workspace
    file and each cache object must hash to the MD5 recorded for it, and an output folder holds no other
    files. Outputs with `cache: false` are left to git, which tracks them."""
    from dvc.repo import Repo  # DVC knows where its cache is (core settings, `dvc cache dir`)

    cache = Path(Repo(str(repo)).cache.local.path)
    lock = yaml.safe_load((repo / "dvc.lock").read_text()) or {}
    uncached = uncached_outputs(yaml.safe_load((repo / "dvc.yaml").read_text()) or {})
    problems: list[str] = []
    expected: dict[str, str] = {}
    for path, md5 in recorded_outputs(lock, uncached):
        files, found = expected_files(path, md5, cache)
        expected |= files
        problems += found
        folder = repo / path
        if md5.endswith(".dir") and folder.is_dir():
            present = {p.relative_to(repo).as_posix() for p in folder.rglob("*") if p.is_file()}
            problems += [f"{extra}: in {path}/ but not in dvc.lock" for extra in sorted(present - set(files))]
    for path, md5 in tqdm(sorted(expected.items()), desc="verify", unit="file"):
        workspace, cached = repo / path, cache / md5[:2] / md5[2:]
        if workspace.is_file() and (actual := file_md5(workspace)) != md5:
            problems.append(f"{path}: MD5 {actual}, dvc.lock says {md5}; `dvc checkout --force {path}` or rerun")
        if cached.is_file() and (actual := file_md5(cached)) != md5:
            problems.append(f"{cached}: cache object of {path} is corrupt (MD5 {actual}); delete it and rerun")
    return len(expected), problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=Path("."), help="the DVC project (default: this folder)")
    args = parser.parse_args(argv)
    if not (args.repo / "dvc.lock").is_file():
        print(f"verify: {args.repo / 'dvc.lock'}: no such file; run `dvc repro` first", file=sys.stderr)
        return 2
    checked, problems = verify(args.repo.resolve())
    for problem in problems:
        print(f"verify: {problem}", file=sys.stderr)
    print(f"verify: {checked} files checked against dvc.lock, {len(problems)} problem(s)", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
