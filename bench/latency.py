"""Latency of each version on one image, load time apart: the numbers in the version READMEs.

    python bench/latency.py --weights DIR [--versions v1 v2 ...] [--runs 5] [--threads N] [--json FILE]

Timed region: one Model.logits() call on a preprocessed 224x224 image (no decoding, no preprocessing). Load time
(weights checked and handed to the version) is reported on its own. One warm-up call, then --runs calls (a slow
version gets at most --slow-runs); median, min and p90 in ms.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import pyresnet
from pyresnet import registry


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", help="weights directory (default: pyresnet's search)")
    ap.add_argument("--versions", nargs="+", default=None, help="versions to time (default: all built)")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--slow-runs", type=int, default=2, help="runs for versions marked slow (v1)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--image", default=None, help="image to classify (default: a seeded random input)")
    ap.add_argument("--json", dest="json_out", help="write every sample here")
    args = ap.parse_args()

    x = (pyresnet.preprocess(args.image) if args.image
         else np.random.default_rng(0).standard_normal((224, 224, 3)).astype(np.float32))
    results = []
    for key in args.versions or pyresnet.versions():
        v = registry.get(key)
        t0 = time.perf_counter()
        m = pyresnet.load(key, weights=args.weights, threads=args.threads)
        load_ms = (time.perf_counter() - t0) * 1e3
        m.logits(x)  # warm-up
        samples = []
        for _ in range(args.slow_runs if v.slow else args.runs):
            t0 = time.perf_counter()
            m.logits(x)
            samples.append((time.perf_counter() - t0) * 1e3)
        s = sorted(samples)
        row = {"version": key, "threads": m.threads, "load_ms": load_ms, "median_ms": statistics.median(s),
               "min_ms": s[0], "p90_ms": s[min(len(s) - 1, int(0.9 * len(s)))], "samples_ms": samples}
        results.append(row)
        print(f"{key:>4}  load {load_ms:8.1f} ms   median {row['median_ms']:9.1f} ms   min {row['min_ms']:9.1f} ms"
              f"   ({len(s)} runs, {m.threads} thread(s))", flush=True)
    if args.json_out:
        meta = {"cpu": cpu_model(), "cpus_allowed": len(os.sched_getaffinity(0)), "python": sys.version.split()[0],
                "command": " ".join(sys.argv)}
        Path(args.json_out).write_text(json.dumps({"machine": meta, "results": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
