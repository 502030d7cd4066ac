"""Benchmark: loading and validating a province, beside the bare YAML parse of the same file.

Prints, for ``examples/configs/dong-nai.yaml`` (with its includes) and a generated province of
2,000 devices: the median wall time of ``camhub.load_config`` over several runs, the peak
memory it allocates (tracemalloc, a separate run), and the same for ``yaml.load`` with
libyaml's CSafeLoader on the same text — the floor any YAML-based loader stands on. The goal
(issue #2) is the 2,000-device file in under 1 s.

    python benchmarks/bench_config_load.py [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import yaml

import camhub

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from make_big_province import make_province  # noqa: E402


def measure(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    """Median seconds over ``runs`` and peak MiB allocated in one more run."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return statistics.median(times), peak / 2**20


def bare_parse(paths: list[Path]) -> Callable[[], object]:
    texts = [p.read_text(encoding="utf-8") for p in paths]
    return lambda: [yaml.load(t, Loader=yaml.CSafeLoader) for t in texts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    host = camhub.PluginHost.from_installed()
    with tempfile.TemporaryDirectory() as tmp:
        big = make_province(2000, Path(tmp) / "province-2000.yaml")
        cases = {
            "dong-nai.yaml (182 units)": HERE.parent / "examples" / "configs" / "dong-nai.yaml",
            "generated, 2,000 devices": big,
        }
        print(
            f"{'file':28} {'devices':>7} {'camhub s':>9} {'camhub MiB':>10} {'yaml s':>8} "
            f"{'yaml MiB':>8} {'time ×':>7}"
        )
        for label, path in cases.items():
            config = camhub.load_config(path, host=host)
            ours, ours_mem = measure(lambda p=path: camhub.load_config(p, host=host), args.runs)
            floor, floor_mem = measure(bare_parse([Path(s) for s in config.sources]), args.runs)
            print(
                f"{label:28} {len(config.devices):>7} {ours:>9.3f} {ours_mem:>10.1f} {floor:>8.3f} "
                f"{floor_mem:>8.1f} {ours / floor:>7.2f}"
            )


if __name__ == "__main__":
    main()
