"""`make report`: what the workspace changed against a revision, as one Markdown file for a pull request or a CI
artefact (as CML's reports do): `dvc metrics diff` and `dvc params diff` against it, then every figure under
plots/ as a PNG beside the file.

    python -m ser.change_report [--against main] [--out report]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from ser.errors import UserError
from ser.io import atomic_path

PLOTS = Path("plots")
IMAGES = "images"  # the folder beside report.md that holds the figures


class ReportError(UserError):
    """A report that cannot be made: no DVC project here, or a revision git does not know."""


def dvc_markdown(command: Sequence[str], root: Path) -> str:
    """What `dvc <command> --md` prints in `root`: a Markdown table, or "" when nothing changed (dvc prints the
    header alone then)."""
    result = subprocess.run([sys.executable, "-m", "dvc", *command, "--md"], cwd=root, capture_output=True, text=True)
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise ReportError(f"dvc {' '.join(command)}: {lines[-1] if lines else f'exit status {result.returncode}'}")
    table = result.stdout.strip()
    return table if len(table.splitlines()) > 2 else ""


def figures(root: Path) -> list[Path]:
    """The PNGs under plots/, relative to `root`, in path order."""
    return sorted(path.relative_to(root) for path in (root / PLOTS).rglob("*.png"))


def section(title: str, table: str, nothing: str) -> str:
    return f"## {title}\n\n{table if table else nothing}\n"


def write_report(root: Path, against: str, out: Path) -> Path:
    """Write `out`/report.md and `out`/images/ (atomically, the folder as a whole); returns the report's path."""
    root = root.resolve()
    if not (root / "dvc.yaml").is_file():
        raise ReportError(f"{root}: no dvc.yaml here; run `make report` in the repository")
    known = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{against}^{{commit}}"], cwd=root, capture_output=True, text=True
    )
    if known.returncode != 0:
        raise ReportError(f"--against {against}: not a revision of this repository; name a branch, tag or commit")
    metrics = dvc_markdown(["metrics", "diff", against], root)
    params = dvc_markdown(["params", "diff", against], root)
    found = figures(root)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
    parts = [
        f"# What this workspace changes against `{against}`\n",
        f"The workspace at `{head.stdout.strip() or 'HEAD'}` and its uncommitted changes; made by `make report`.\n",
        section("Metrics (`dvc metrics diff`)", metrics, "No metric differs."),
        section("Params (`dvc params diff`)", params, "No param differs."),
        "## Figures\n",
    ]
    parts += [f"### `{path}`\n\n![{path}]({IMAGES}/{'__'.join(path.parts[1:])})\n" for path in found]
    if not found:
        parts.append("No figures under plots/ yet: run `dvc repro`.\n")
    with atomic_path(out, directory=True) as tmp:
        (tmp / IMAGES).mkdir()
        for path in found:
            shutil.copyfile(root / path, tmp / IMAGES / "__".join(path.parts[1:]))
        (tmp / "report.md").write_text("\n".join(parts))
    return out / "report.md"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default="main", help="the revision to compare with (default: main)")
    parser.add_argument("--out", type=Path, default=Path("report"), help="the folder to write (default: report)")
    args = parser.parse_args(argv)
    try:
        report = write_report(Path.cwd(), args.against, args.out)
    except ReportError as error:
        print(f"report: {error}", file=sys.stderr)
        return 2
    print(f"report: wrote {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
