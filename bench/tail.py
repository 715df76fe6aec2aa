"""The tail of one stage's batch-1 latency on this machine, and whether the host took a CPU away when it was long.

    python bench/tail.py -v v15 [--calls 1500] [--threads 2] [--weights DIR]

Calls logits() on one input `--calls` times in a row and prints the median, the p99, the calls slower than 1.3x
the median, and how many of them saw the kernel's steal time grow (/proc/stat: time the hypervisor ran something
else on one of this VM's CPUs; counted in 10 ms ticks, so a short steal is often missed). It measures one build: to
compare two builds of a stage (the thread pool's join, say), build each, keep its module aside, and alternate the
two under this script, a few times each, as the VM's speed drifts between runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import pyresnet
from pyresnet import weights as wts


def steal_ticks() -> int:
    """The machine's steal time so far, in USER_HZ ticks (0 where /proc/stat does not say)."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return int(fields[8]) if len(fields) > 8 else 0
    except OSError:
        return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--version", "-v", default="v15")
    ap.add_argument("--calls", type=int, default=1500)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--weights", help="weights directory (default: as for pyresnet run)")
    args = ap.parse_args(argv)
    if args.calls < 100:
        ap.error("--calls must be at least 100 (a p99 needs them)")
    d = wts.find(args.weights)
    if d is None:
        ap.error(f"no weights found; {wts.HOW_TO_GET}")
    model = pyresnet.load(args.version, d, args.threads)
    x = np.random.default_rng(0).standard_normal((224, 224, 3)).astype(np.float32)
    model.logits(x)
    ms, steal = np.empty(args.calls), np.empty(args.calls)
    for i in range(args.calls):
        s0, t0 = steal_ticks(), time.perf_counter()
        model.logits(x)
        ms[i], steal[i] = (time.perf_counter() - t0) * 1e3, steal_ticks() - s0
    med = float(np.median(ms))
    slow = ms > 1.3 * med
    print(f"{args.version}, {model.threads} thread(s), {args.calls} calls: median {med:.2f} ms, p99 "
          f"{np.percentile(ms, 99):.2f} ms ({np.percentile(ms, 99) / med:.2f}x), {int(slow.sum())} calls over 1.3x "
          f"the median; steal time grew during {int((steal[slow] > 0).sum())} of those and "
          f"{int((steal[~slow] > 0).sum())} of the {int((~slow).sum())} others")
    return 0


if __name__ == "__main__":
    sys.exit(main())
