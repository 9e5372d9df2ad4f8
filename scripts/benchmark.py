"""Speed of the reference-style evaluation path against the fast path, on one machine, and the
fast path's quality against float32 (`--quality`). The library is `uir.benchmark`; what the
columns mean and the measured tables are in docs/benchmarks.md.

    python scripts/benchmark.py                       # GPU defaults on CUDA, reduced ones on the CPU
    python scripts/benchmark.py --device cuda --sizes 256 512 --nfe 10 20 100 --posterior-nfe 100 \\
        --images 16 --batch-size auto --precision bf16 --channels-last --compile --out results.json
    python scripts/benchmark.py --quality [--options options/demo.yml]   # fast path vs fp32 quality
"""
from __future__ import annotations

import sys

from uir.benchmark.cli import main
from uir.common.cli import run_script

if __name__ == "__main__":
    sys.exit(run_script(main, "benchmark.py"))
