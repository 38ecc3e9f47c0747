"""Build .dvc/plots/offline.html, the page `dvc plots show` / `dvc plots diff` fill in (`plots.html_template` in
.dvc/config): vega, vega-lite and vega-embed inlined from their npm packages, so the page renders with no network.
DVC's own page loads them from a CDN, and is blank offline.

    make plots-template        # npm pack the versions below, then write the page (needs npm, once, by a maintainer)

The versions are those DVC's renderer (dvc_render.vega) loads from the CDN, so the specs it writes match them.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from ser.io import atomic_path

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / ".dvc" / "plots" / "offline.html"
PACKAGES = {"vega": "5.20.2", "vega-lite": "5.2.0", "vega-embed": "6.18.2"}  # in load order
PAGE = """<!DOCTYPE html>
<html>
<head>
    {{refresh_tag}}
    <meta charset="utf-8">
    <title>DVC Plot</title>
    <!-- {names}: inlined from npm by tools/plots_template.py (BSD-3-Clause, licences at the end) -->
{scripts}
    <style>
        table {{
            border-spacing: 15px;
        }}
    </style>
</head>
<body>
    {{plot_divs}}
</body>
<!--
{licences}
-->
</html>
"""


def packed(name: str, version: str, folder: Path) -> tarfile.TarFile:
    subprocess.run(["npm", "pack", f"{name}@{version}", "--silent"], cwd=folder, check=True, capture_output=True)
    return tarfile.open(folder / f"{name}-{version}.tgz")


def build(out: Path = TEMPLATE) -> None:
    scripts, licences = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name, version in PACKAGES.items():
            with packed(name, version, Path(tmp)) as archive:
                code = archive.extractfile(f"package/build/{name}.min.js").read().decode()
                licence = archive.extractfile("package/LICENSE").read().decode()
            for placeholder in ("{plot_divs}", "{scripts}", "{refresh_tag}", "-->", "</script"):
                if placeholder in code:
                    sys.exit(f"{name} {version}: its code holds {placeholder!r}, which would break the page")
            scripts.append(f'    <script type="text/javascript">/* {name}@{version} */\n{code}\n    </script>')
            licences.append(f"{name}@{version}:\n{licence.strip()}")
    names = ", ".join(f"{name}@{version}" for name, version in PACKAGES.items())
    page = PAGE.format(names=names, scripts="\n".join(scripts), licences="\n\n".join(licences))
    with atomic_path(out) as tmp_out:
        tmp_out.write_text(page)
    print(f"wrote {out.relative_to(REPO)} ({out.stat().st_size / 1e6:.2f} MB): {names}")


if __name__ == "__main__":
    build()
