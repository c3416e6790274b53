"""What the stages' input hash check costs: per stage, the bytes it hashes and the time.

Run from a repository that holds the pipeline's outputs (after ``make run``):

    python -m bench.integrity_cost

Prints, per stage, the inputs checked against ``dvc.lock``, their size and the seconds
``pipelines.integrity.verify_inputs`` took (best of 3), then the MD5 throughput.
"""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from pipelines import integrity, io


def _size(path: Path) -> int:
    return (
        sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        if path.is_dir()
        else path.stat().st_size
    )


def main() -> None:
    stages = list(yaml.safe_load(Path("dvc.yaml").read_text())["stages"])
    total_bytes = total_seconds = 0.0
    print(f"{'stage':<10} {'inputs':>6} {'MB':>8} {'ms':>8}")
    for stage in stages:
        best = float("inf")
        for _ in range(3):
            io._parsed_yaml.cache_clear()  # a stage process parses dvc.yaml and dvc.lock afresh
            started = time.perf_counter()
            checked = integrity.verify_inputs(stage)
            best = min(best, time.perf_counter() - started)
        size = sum(_size(Path(p)) for p in checked)
        total_bytes += size
        total_seconds += best
        print(f"{stage:<10} {len(checked):>6} {size / 2**20:>8.2f} {best * 1000:>8.1f}")
    print(f"{'all':<10} {'':>6} {total_bytes / 2**20:>8.2f} {total_seconds * 1000:>8.1f}")
    if total_seconds:
        print(
            f"throughput {total_bytes / 2**20 / total_seconds:.0f} MB/s (dvc.yaml and dvc.lock parsing included)"
        )


if __name__ == "__main__":
    main()
