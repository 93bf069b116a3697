"""Rewrite a wheel in place without the entries under the given path prefixes (and
without their RECORD lines): ``python scripts/trim_wheel.py WHEEL PREFIX...``.
scripts/gpu-wheels.sh drops what the GPU check never runs (PostgreSQL 16 beside 18, C
headers) so the embedded PostgreSQL fits in what travels to a GPU machine."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path


def trim(wheel: Path, prefixes: tuple[str, ...]) -> tuple[int, int]:
    """Drop the entries; returns the file's size before and after."""
    before = wheel.stat().st_size
    trimmed = wheel.with_suffix(".trimmed")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(trimmed, "w") as dst:
        for info in src.infolist():
            if info.filename.startswith(prefixes):
                continue
            data = src.read(info)
            if info.filename.endswith(".dist-info/RECORD"):
                lines = data.decode().splitlines(keepends=True)
                data = "".join(x for x in lines if not x.startswith(prefixes)).encode()
            dst.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
    trimmed.replace(wheel)
    return before, wheel.stat().st_size


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__)
        return 2
    before, after = trim(Path(argv[0]), tuple(argv[1:]))
    print(f"trim_wheel: {Path(argv[0]).name} {before / 2**20:.1f} -> {after / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
