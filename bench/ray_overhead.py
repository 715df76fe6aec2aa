"""Ray's overhead on one node: img/s of `pyresnet run`'s pipeline against the same stage through pyresnet.ray.

    python bench/ray_overhead.py                                   # v12 and v15, the photos in ../shared/images
    python bench/ray_overhead.py --versions v12 v15 --copies 40 --rounds 5 --ray-threads 1 2 \\
        --json bench/results/amd-epyc-zen4-avx512/ray.json

The folder: the photos, each linked --copies times under new names into a temporary folder (440 images from 11
with the default 40).
In every round, for every stage, in turn (the order reversed every other round, so that a slow stretch of a shared
machine lands on both):
  run   `pyresnet run`'s own pipeline (pyresnet.pipeline.classify with run's defaults: its batch, half the CPUs
        reading, the model on all of them), the model loaded beforehand (as bench's end-to-end row), Ray not running;
  ray   the same files through pyresnet.ray on a local cluster of all the CPUs allowed (ray.init before, not timed):
        read_images -> classify -> every row consumed, with --ray-threads threads per model (actors = CPUs // that),
        the weights read from their path. Timed from building the dataset to the last row (the driver's checks,
        prepare(), before: as `run`'s model load is): the actors' start (a process each, importing pyresnet and
        loading the model) is part of the job, as it is of every job. Also recorded: the seconds to the first row,
        and the steady rate (the rows that arrived between 25% and 90% of them, over that time), which is what the
        rate of a corpus of days converges to.
The 1-minute load average as the run starts goes into the JSON: the VM's cores may be shared.
Once per stage, outside the rounds: what shipping the weights through the object store costs (ship(): reading the
directory and ray.put; materialize(): ray.get and writing the node's copy), the alternative to a shared path.
bench/update_readme.py renders the JSON into README.md's "Many machines" section (report.ray_table).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pyresnet
from pyresnet.errors import UserError
from pyresnet.machine import cpus_allowed, describe
from pyresnet.pipeline import classify, default_batch, default_readers
from pyresnet.safeio import check_writable, write_file

REPO = Path(__file__).resolve().parent.parent
IMAGES = Path(os.environ.get("PYRESNET_IMAGES", REPO.parent / "shared" / "images"))


def corpus(src: Path, copies: int, into: Path) -> list[Path]:
    """Every image of src linked `copies` times into `into`, under new names; sorted."""
    photos = [p for p in sorted(src.iterdir()) if p.suffix.lower() in {".jpg", ".jpeg", ".png"}]
    out = []
    for k in range(copies):
        for p in photos:
            q = into / f"{k:03d}-{p.name}"
            try:
                os.link(p, q)
            except OSError:  # another file system: a copy
                shutil.copy(p, q)
            out.append(q)
    return out


def run_pass(model: pyresnet.Model, paths: list[Path]) -> float:
    """`run`'s pipeline over paths with run's defaults; img/s."""
    n, start = 0, time.perf_counter()
    with closing(classify(model, paths, default_batch(model), default_readers())) as stream:
        for b in stream:
            n += len(b.good)
    assert n == len(paths), f"{len(paths) - n} images failed"
    return n / (time.perf_counter() - start)


STEADY = (0.25, 0.9)  # the steady rate: rows between the moments these shares of them had arrived, over that time


def ray_pass(version: str, weights: Path, paths: list[Path], threads: int) -> dict[str, Any]:
    """The paths through pyresnet.ray on the running cluster: img/s of the whole job, seconds to the first row, and
    the steady rate (the rows that arrived between 25% and 90% of them, over that time: neither the actors' start
    nor the tail where one actor finishes alone); with the placement."""
    import pyresnet.ray as pr

    job = pr.prepare(version, weights, threads=threads, ship_weights=False)  # the driver's checks: as run's load
    start = time.perf_counter()
    n, marks = 0, []
    for t in job.dataset(pr.read_images(paths)).iter_batches(batch_size=None, batch_format="pyarrow"):
        assert t.column("error").null_count == len(t), "an image failed"
        n += len(t)
        marks.append((time.perf_counter(), n))
    end = time.perf_counter()
    assert n == len(paths), f"{n} rows for {len(paths)} images"
    (t0, n0), (t1, n1) = (next(m for m in marks if m[1] >= q * n) for q in STEADY)
    return {"img_s": n / (end - start), "first_row_s": marks[0][0] - start,
            "steady_img_s": (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0, "blocks": len(marks),
            "threads": job.placement["threads"], "actors": job.placement["actors"]}


def start_ray() -> float:
    import logging

    import ray

    t = time.perf_counter()
    ray.init(address="local", num_cpus=cpus_allowed(), include_dashboard=False, logging_level=logging.WARNING)
    return time.perf_counter() - t


def ship_cost(version: str, weights: Path) -> dict[str, Any]:
    """ship() and materialize() once, into a fresh cache directory: the cost of having no shared path."""
    import pyresnet.ray as pr

    job = pr.prepare(version, weights)
    with tempfile.TemporaryDirectory() as cache:
        os.environ[pr.ENV_CACHE] = cache
        try:
            shipped = pr.ship(job.weights, job.manifest)
            t = time.perf_counter()
            pr.materialize(shipped)
            mat = time.perf_counter() - t
        finally:
            os.environ.pop(pr.ENV_CACHE, None)
    return {"version": version, "bytes": shipped.nbytes, "files": len(shipped.files), "put_s": shipped.put_s,
            "materialize_s": mat}


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else 0.0


def main(argv: list[str]) -> int:
    import ray

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--versions", nargs="+", default=["v12", "v15"])
    ap.add_argument("--weights", default=str(REPO / "weights" / "random-seed0"))
    ap.add_argument("--images", default=str(IMAGES))
    ap.add_argument("--copies", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--ray-threads", nargs="+", type=int, default=[1], help="threads per model in the Ray rows")
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args(argv)
    out = check_writable(args.json_out, UserError, "--json") if args.json_out else None
    weights = Path(args.weights)
    rows: dict[str, dict[str, Any]] = {v: {"version": v, "run_img_s": [], "ray": {t: [] for t in args.ray_threads}}
                                       for v in args.versions}
    init_s: list[float] = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        paths = corpus(Path(args.images), args.copies, Path(tmp))
        models = {v: pyresnet.load(v, weights=weights) for v in args.versions}
        for v, m in models.items():
            run_pass(m, paths[:16])  # warm: the page cache, the model's first calls
            rows[v].update(batch=default_batch(m), readers=default_readers(), threads=m.threads)
        for r in range(args.rounds):
            for v in args.versions:
                arms = ["run", *args.ray_threads]
                for arm in (arms if r % 2 == 0 else arms[::-1]):
                    if arm == "run":
                        rows[v]["run_img_s"].append(run_pass(models[v], paths))
                        print(f"round {r} {v} run: {rows[v]['run_img_s'][-1]:.1f} img/s", flush=True)
                    else:
                        init_s.append(start_ray())
                        try:
                            rows[v]["ray"][arm].append(ray_pass(v, weights, paths, arm))
                        finally:
                            ray.shutdown()
                        x = rows[v]["ray"][arm][-1]
                        print(f"round {r} {v} ray {x['actors']}x{x['threads']}: {x['img_s']:.1f} img/s (first row "
                              f"{x['first_row_s']:.1f} s, steady {x['steady_img_s']:.1f} img/s)", flush=True)
                    time.sleep(1.0)
        start_ray()
        try:
            ship = [ship_cost(v, weights) for v in args.versions]
        finally:
            ray.shutdown()
    results = []
    for v in args.versions:
        row = rows[v]
        rays = []
        for t, xs in row["ray"].items():
            ratios = [x["img_s"] / a for x, a in zip(xs, row["run_img_s"])]
            steady = [x["steady_img_s"] / a for x, a in zip(xs, row["run_img_s"])]
            rays.append({"threads": t, "actors": xs[0]["actors"], "rounds": xs,
                         "img_s": median([x["img_s"] for x in xs]),
                         "first_row_s": median([x["first_row_s"] for x in xs]),
                         "steady_img_s": median([x["steady_img_s"] for x in xs]),
                         "ratio": median(ratios), "ratio_range": [min(ratios), max(ratios)],
                         "steady_ratio": median(steady), "steady_range": [min(steady), max(steady)]})
        results.append({"version": v, "batch": row["batch"], "readers": row["readers"], "threads": row["threads"],
                        "run_img_s": median(row["run_img_s"]), "run_rounds": row["run_img_s"], "ray": rays})
    result = {"command": "python bench/ray_overhead.py " + " ".join(argv), "machine": describe(),
              "ray_version": ray.__version__, "images": len(paths), "photos": len(paths) // args.copies,
              "copies": args.copies, "rounds": args.rounds, "ray_init_s": median(init_s), "results": results,
              "ship": ship, "load_average": {"before": load_before[0], "after": os.getloadavg()[0]}}
    from pyresnet.instruments.report import ray_table

    print(ray_table(result))
    if out is not None:
        write_file(out, (json.dumps(result, indent=1) + "\n").encode(), UserError, "--json")
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
