"""The `pyresnet` command: run a version on images, and manage weights.

Every user error ends as one line on stderr ("pyresnet: error: ...") and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Sequence

from . import registry
from . import weights as wts
from .errors import ImageError, UserError, WeightsError
from .images import ENV_EXACT_DECODE, ENV_MAX_PIXELS, MAX_PIXELS, list_images, pixel_limit
from .instruments.bench import ROUNDS
from .instruments.peers import PEERS, TORCH_MODES
from .model import MAX_THREADS, load
from .safeio import check_writable, write_file
from .sample import sample_image

EXIT_ERROR = 1  # user errors; argparse uses 2 for malformed command lines


class _Parser(argparse.ArgumentParser):
    """argparse, but a malformed command line is reported in one line, like every other error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _ranged(kind: str, lo: float, hi: float, convert: type = int):
    """An argparse type: a whole number (or, with convert=float, a finite number) from lo to hi, else one sentence."""
    what = "a whole number" if convert is int else "a number"

    def parse(text: str):
        try:
            x = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{kind} must be {what}, got '{text}'") from None
        if not math.isfinite(x) or not lo <= x <= hi:
            raise argparse.ArgumentTypeError(f"{kind} must be from {lo} to {hi}, got '{text}'")
        return x

    return parse


def _positive(kind: str, upper: int):
    return _ranged(kind, 1, upper)


_seed = _ranged("seed", 0, 2**63)
_seconds = _ranged("--seconds", 0, 3600, float)


def _version(text: str) -> str:
    try:
        return registry.get(text).key
    except UserError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def build_parser() -> argparse.ArgumentParser:
    keys = ", ".join(v.key for v in registry.REGISTRY)
    p = _Parser(
        prog="pyresnet",
        description="ResNet-50 hand-written in C++ several times over, one optimisation stage at a time.",
        epilog="Run `pyresnet COMMAND --help` for the options of each command.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    r = sub.add_parser("run", help="classify images with one version",
                       description="Classify images with one version and print the top-k classes and the latency "
                                   "of each inference (the logits() call alone: no decoding or preprocessing).")
    r.add_argument("images", nargs="*", metavar="IMAGE",
                   help="image files, or directories of images (default: the sample photo shipped in the package)")
    r.add_argument("--version", "-v", type=_version, default=None,
                   help=f"which version to run ({keys}; default: the newest fp32 stage built, stepping stones aside)")
    r.add_argument("--weights", metavar="DIR",
                   help="weights directory (default: $PYRESNET_WEIGHTS, else the best found under "
                        f"{wts.default_root()}; fetched there on first use when there are none)")
    r.add_argument("--topk", type=_positive("--topk", 1000), default=5, help="classes to print per image (default 5)")
    r.add_argument("--threads", type=_positive("--threads", MAX_THREADS), default=None,
                   help="threads for the multithreaded versions (default: all CPUs this process may use)")
    r.add_argument("--json", action="store_true",
                   help="print one JSON object per image (version, image, latency_ms, batch, top [{index, label, "
                        "prob}]), then one {\"summary\": {...}} object")
    r.add_argument("--batch", type=_positive("--batch", 1024), default=None, metavar="N",
                   help="images per inference call (default: 8 for the stages that compute a batch in one native "
                        "call, v12 on, else 1)")
    r.add_argument("--readers", type=_positive("--readers", 64), default=None, metavar="R",
                   help="threads decoding images ahead of inference (default: half the CPUs allowed, at least 1)")
    r.add_argument("--max-pixels", type=_positive("--max-pixels", 1 << 40), default=None, metavar="N",
                   help=f"refuse images larger than N pixels before decoding them (default: ${ENV_MAX_PIXELS}, "
                        f"else {MAX_PIXELS:_})")
    r.add_argument("--exact-decode", action="store_true",
                   help=f"decode every image in full (default: a large JPEG at 1/2, 1/4 or 1/8 scale in libjpeg, as "
                        f"the resize to 256 needs; also ${ENV_EXACT_DECODE}=1)")
    ray = r.add_argument_group("on a Ray cluster (pip install 'pyresnet[ray]'; README.md, \"Many machines\")")
    ray.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                     help="classify on a Ray cluster: ADDRESS (host:port, ray://host:port, auto), or with none "
                          "$RAY_ADDRESS, else a new local cluster on this machine; put it after the images")
    ray.add_argument("--out", metavar="FILE",
                     help="with --ray: write the results here, Parquet for a name ending in .parquet or .pq, else "
                          "JSON lines (default: JSON lines on stdout)")
    ray.add_argument("--logits", action="store_true", help="with --ray: add each image's 1000 logits to its row")
    ray.add_argument("--actors", type=_positive("--actors", 100_000), default=None, metavar="N",
                     help="with --ray: models in the cluster (default: as many as its CPUs hold, --threads CPUs each)")
    ray.add_argument("--ship-weights", action=argparse.BooleanOptionalAction, default=None,
                     help="with --ray: put the weights into Ray's object store once instead of reading --weights on "
                          "every node (default: ship on a cluster of several nodes, read the path on one)")
    r.set_defaults(func=cmd_run)

    w = sub.add_parser("weights", help="get weights: fetch, import or random",
                       description="Create a weights directory (format: weights/FORMAT.md).")
    wsub = w.add_subparsers(dest="weights_command", metavar="ACTION", required=True)
    f = wsub.add_parser("fetch", help="download torchvision's ImageNet ResNet-50 weights and convert them",
                        description="Download torchvision's ImageNet ResNet-50 checkpoint, check its sha256 and "
                                    f"convert it. ${wts.ENV_URL} names a mirror to use instead.")
    f.add_argument("--variant", choices=sorted(wts.VARIANTS), default="v1",
                   help="v1: IMAGENET1K_V1, the weights the original used (default); v2: IMAGENET1K_V2")
    f.add_argument("--out", metavar="DIR", help=f"where to write (default {wts.default_root()}/imagenet1k_vN)")
    f.set_defaults(func=cmd_fetch)
    i = wsub.add_parser("import", help="convert a local torchvision ResNet-50 .pth file",
                        description="Convert a torchvision-format ResNet-50 state_dict (.pth) into a weights "
                                    "directory. torch is not needed for zip-format files (PyTorch >= 1.6).")
    i.add_argument("file", metavar="FILE.pth")
    i.add_argument("--out", metavar="DIR", help=f"where to write (default {wts.default_root()}/<file stem>)")
    i.set_defaults(func=cmd_import)
    rnd = wsub.add_parser("random", help="write a deterministic random network (for tests and offline tries)",
                          description="Write a deterministic ResNet-50 with torchvision-style init and randomised "
                                      "BatchNorm. Same seed, identical bytes. Labels from it are meaningless.")
    rnd.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")
    rnd.add_argument("--out", metavar="DIR", help=f"where to write (default {wts.default_root()}/random-seedN)")
    rnd.set_defaults(func=cmd_random)
    b = sub.add_parser("bench", help="check and time versions and peers side by side",
                       description="Check every version (and PyTorch / ONNX Runtime when installed) against the "
                                   "torch oracle, then time one logits() call each, in one process, the rows "
                                   "interleaved: in rounds, each row a short run of calls in turn. Prints a "
                                   "markdown table.")
    sel = b.add_mutually_exclusive_group()
    sel.add_argument("--all", action="store_true", help="every built version (the default when no --version)")
    sel.add_argument("--version", nargs="+", type=_version, metavar="V", help="only these versions")
    b.add_argument("--weights", metavar="DIR", help="weights directory (default: as for run)")
    b.add_argument("--threads", type=_positive("--threads", MAX_THREADS), default=None,
                   help="threads for every row, peers included (default: all CPUs this process may use)")
    b.add_argument("--image", metavar="IMAGE", help="image to classify (default: seeded noise)")
    b.add_argument("--no-peers", action="store_true", help="skip PyTorch and ONNX Runtime")
    b.add_argument("--min-runs", type=_positive("--min-runs", 100000), default=5, help="runs per row, at least (5)")
    b.add_argument("--max-runs", type=_positive("--max-runs", 100000), default=200,
                   help="runs per row, at most (200): the time budget stops here")
    b.add_argument("--seconds", type=_seconds, default=3.0, help="time budget per row, at least (3 s; 0 to 3600)")
    b.add_argument("--slow-runs", type=_positive("--slow-runs", 1000), default=3,
                   help="runs for versions marked slow, e.g. v1 (3)")
    b.add_argument("--rounds", type=_positive("--rounds", 1000), default=ROUNDS, metavar="R",
                   help="rounds the latency runs are interleaved in: each row gets its share of the runs and of "
                        f"the time budget in every round, one row after another ({ROUNDS}; fewer when a row makes "
                        "fewer runs)")
    b.add_argument("--batch", nargs="+", type=_positive("--batch", 1024), default=[1], metavar="N",
                   help="batch sizes for the throughput columns (default: 1 only), e.g. --batch 1 8 32")
    b.add_argument("--streams", type=_positive("--streams", MAX_THREADS), default=1, metavar="S",
                   help="also measure S independent instances on threads/S threads each (default 1: off)")
    b.add_argument("--images", metavar="DIR",
                   help="photos for the end-to-end row (`run` over them, decode included) and the int8 peer's "
                        "calibration and evaluation (default: $PYRESNET_IMAGES, else none)")
    b.add_argument("--torch-modes", nargs="+", choices=TORCH_MODES, default=list(TORCH_MODES), metavar="MODE",
                   help=f"PyTorch modes to try, the fastest is the peer (default: all of {', '.join(TORCH_MODES)})")
    b.add_argument("--no-reduced", action="store_true", help="skip the reduced-precision peers (PyTorch bf16, ONNX "
                   "Runtime int8)")
    b.add_argument("--json", dest="json_out", metavar="FILE", help="write every sample and the machine here")
    b.add_argument("--plot", metavar="FILE.png", help="draw latency and throughput per row")
    b.add_argument("--peak", action="store_true", help="only measure the peak of each dot-product instruction the stages use, 1 and N threads")
    b.set_defaults(func=cmd_bench)

    d = sub.add_parser("diff", help="what a stage changed: diff two version directories",
                       description="Unified diff between two version directories, files paired by relative path.")
    d.add_argument("a", nargs="?", type=_version, help="older version (v3 or v3_preload)")
    d.add_argument("b", nargs="?", type=_version, help="newer version")
    d.add_argument("--stat", action="store_true", help="lines added and removed per file")
    d.add_argument("--chain", action="store_true", help="one table of every consecutive pair v1 -> v2 -> ...")
    d.add_argument("--html", metavar="FILE", help="write a side-by-side diff page to open in a browser")
    d.set_defaults(func=cmd_diff)

    pr = sub.add_parser("profile", help="per-layer time of one version, or two side by side",
                        description="Per-layer table (layer, op, output shape, MFLOP, ms, GFLOP/s, %% of total) from "
                                    "timers compiled into every version's forward pass; median of --runs passes.")
    pr.add_argument("image", nargs="?", metavar="IMAGE", help="image to run (default: seeded noise)")
    pr.add_argument("--version", "-v", type=_version, default=None,
                    help="version to profile (default: the newest fp32 stage built, stepping stones aside)")
    pr.add_argument("--compare", nargs=2, type=_version, metavar=("A", "B"), help="two versions side by side")
    pr.add_argument("--weights", metavar="DIR", help="weights directory (default: as for run)")
    pr.add_argument("--threads", type=_positive("--threads", MAX_THREADS), default=None,
                    help="threads for the multithreaded versions (default: all CPUs this process may use)")
    pr.add_argument("--runs", type=_positive("--runs", 1000), default=3, help="profiled passes per version (3)")
    pr.add_argument("--by-op", action="store_true", help="also sum the time per kind of op")
    pr.set_defaults(func=cmd_profile)

    cg = sub.add_parser("codegen", help="write the C++ that a generating version (v5 on) builds from",
                        description="Run a version's generator (csrc/vN_name/codegen.py, which the build runs) "
                                    "and write its output, generated.cpp, into DIR for reading.")
    cg.add_argument("--out", metavar="DIR", required=True, help="directory to write generated.cpp into")
    cg.add_argument("--version", "-v", type=_version, default=None,
                    help="a version with a generator (default: the newest one)")
    cg.set_defaults(func=cmd_codegen)

    ca = sub.add_parser("calibrate", help="record activation ranges over images, for the int8 stage",
                        description="Run images through the numpy version and record the range of every activation "
                                    "(arch.calibration_points()) into the weights directory, with the name and sha256 "
                                    "of each image; the int8 stage quantizes with these ranges.")
    ca.add_argument("images", nargs="+", metavar="IMAGE", help="image files, or directories of images")
    ca.add_argument("--weights", metavar="DIR", help="weights directory to calibrate (default: as for run)")
    ca.add_argument("--method", choices=("max", "percentile"), default="max",
                    help="max: the extremes seen (default); percentile: per image the --percentile-th value, "
                         "the most extreme over images")
    ca.add_argument("--percentile", type=_ranged("--percentile", 50, 100, float), default=99.99,
                    help="for --method percentile, from 50 to 100 (default 99.99)")
    ca.set_defaults(func=cmd_calibrate)

    ag = sub.add_parser("agree", help="agreement of a version or peer with the fp32 network over photos + variants",
                        description="Top-1 agreement, mean top-5 overlap and relative logit differences of one way of "
                                    "running the network against another (default: the torch fp32 oracle), over the "
                                    "images and four seeded variants of each. Calibration images are left out.")
    ag.add_argument("images", nargs="+", metavar="IMAGE", help="image files, or directories of images")
    ag.add_argument("--version", "-v", required=True, metavar="V",
                    help=f"a version, or one of: oracle, {', '.join(p.name for p in PEERS)}")
    ag.add_argument("--against", default="oracle", metavar="V", help="the reference (default: oracle)")
    ag.add_argument("--weights", metavar="DIR", help="weights directory (default: as for run)")
    ag.add_argument("--threads", type=_positive("--threads", MAX_THREADS), default=None,
                    help="threads for both (default: all CPUs this process may use)")
    ag.add_argument("--no-variants", action="store_true", help="only the images themselves")
    ag.add_argument("--json", action="store_true", help="print the result as one JSON object")
    ag.set_defaults(func=cmd_agree)

    ev = sub.add_parser("eval", help="top-1/top-5 accuracy over a labelled folder (one sub-folder per class)",
                        description="Accuracy over an ImageFolder-style directory: one sub-folder per class, named "
                                    "by class index (0-999), WordNet id (with the synset list in DIR) or label.")
    ev.add_argument("folder", metavar="DIR")
    ev.add_argument("--version", "-v", type=_version, default=None,
                    help="version (default: the newest fp32 stage built, stepping stones aside)")
    ev.add_argument("--weights", metavar="DIR", help="weights directory (default: as for run)")
    ev.add_argument("--threads", type=_positive("--threads", MAX_THREADS), default=None)
    ev.add_argument("--batch", type=_positive("--batch", 1024), default=1, metavar="N", help="images per call")
    ev.add_argument("--topk", type=_positive("--topk", 1000), default=5, help="the k of top-k accuracy (5)")
    ev.add_argument("--json", action="store_true", help="print the result as one JSON object")
    ev.set_defaults(func=cmd_eval)

    ex = sub.add_parser("export", help="write the network with its weights as ONNX, for another runtime",
                        description="Write the ONNX graph the onnxruntime peer runs (NCHW input 'x' with a dynamic "
                                    "batch, output 'logits'; opset 17), built from a weights directory.")
    ex.add_argument("--onnx", metavar="FILE", required=True, help="the .onnx file to write")
    ex.add_argument("--weights", metavar="DIR", help="weights directory (default: as for run)")
    ex.set_defaults(func=cmd_export)

    fz = sub.add_parser("frozen", help="check the frozen copies of the stage directories, or copy a fix forward",
                        description="A file that is one stage's idea is copied unchanged into the stages built on it "
                                    "(registry.py, frozen=). List every copy and whether it equals its origin; exit 1 "
                                    "when the stage directories break the rule.")
    fz.add_argument("--sync", action="store_true", help="copy every origin over its copies (a source checkout only)")
    fz.set_defaults(func=cmd_frozen)

    info = sub.add_parser("info", help="versions built, their flags, CPU features, weights found",
                          description="What this installation has: versions and their compile flags, the CPU's "
                                      "SIMD features, the weights that would be used.")
    info.set_defaults(func=cmd_info)
    return p


def _weights_for_run(explicit: str | None) -> Path:
    d = wts.find(explicit)
    if d is not None:
        return d
    # No weights anywhere: do what torchvision does on first use, fetch IMAGENET1K_V1 into the default location.
    print(f"pyresnet: no weights found; fetching IMAGENET1K_V1 into {wts.default_root()}", file=sys.stderr)
    try:
        return wts.fetch("v1")
    except wts.FetchError as e:
        raise UserError(f"no weights found under {wts.default_root()}, and {e.short}; {wts.HOW_TO_GET}") from None


def cmd_run(args: argparse.Namespace) -> int:
    """Classify a stream of images: readers decode ahead, inference in batches, results printed as they come.

    Memory does not grow with the number of images (at most a window of decoded inputs is alive); an image that
    cannot be read is named on stderr and the others go on; the exit status is non-zero when any failed.
    """
    from .pipeline import classify, default_batch, default_readers
    from .progress import Progress

    if args.ray is not None:
        return cmd_run_ray(args)
    for given, option in ((args.out, "--out"), (args.logits, "--logits"), (args.actors, "--actors"),
                          (args.ship_weights is not None, "--ship-weights")):
        if given:
            raise UserError(f"{option} is an option of --ray (e.g. `pyresnet run DIR --ray --out results.jsonl`)")
    images = list_images(args.images or [str(sample_image())])  # paths only, checked to exist; nothing decoded yet
    limit = pixel_limit(args.max_pixels)
    d = _weights_for_run(args.weights)
    model = load(args.version or registry.newest(), weights=d, threads=args.threads)
    readers = args.readers or default_readers()
    batch_size = args.batch or default_batch(model)
    bar = Progress(len(images), f"run {model.version.key}", unit="images", enabled=len(images) > 1)
    note = model.random_weights and not args.json  # said once, before the first result
    failed = 0
    done = 0
    infer_s = 0.0
    start = time.perf_counter()
    # closing(): Ctrl-C (or any error) cancels the queued reads as soon as it leaves this block
    with closing(classify(model, images, batch_size, readers,
                          prepare=lambda p: model.preprocess(p, max_pixels=limit,
                                                             exact_decode=args.exact_decode or None))) as stream:
        for batch in stream:
            for item in batch.failed:
                failed += 1
                bar.clear()
                print(f"pyresnet: error: {item.error}", file=sys.stderr, flush=True)
                bar.advance()
            if batch.logits is None:
                continue
            latency_ms = batch.seconds * 1e3
            infer_s += batch.seconds
            if note:
                bar.clear()
                print(f"note: {d} holds random weights (seed {model.manifest.get('seed')}); the labels below are "
                      "meaningless. Real ones: `pyresnet weights fetch` or `pyresnet weights import FILE.pth`.",
                      file=sys.stderr, flush=True)
                note = False
            bar.clear()
            for item, y in zip(batch.good, batch.logits):
                top = model.top(y, args.topk)
                if args.json:
                    print(json.dumps({"version": model.version.key, "image": str(item.path),
                                      "latency_ms": round(latency_ms, 3), "batch": len(batch.good),
                                      "top": [{"index": i, "label": lab, "prob": p} for i, lab, p in top]}))
                else:
                    size = f" (batch of {len(batch.good)})" if len(batch.good) > 1 else ""
                    print(f"{item.path}  [{model.version.key}, {model.threads} thread(s)]  {latency_ms:.1f} ms{size}")
                    for rank, (i, lab, p) in enumerate(top, 1):
                        print(f"  {rank:>2}. {i:>4}  {lab:<40} {p:8.4f}")
            sys.stdout.flush()
            done += len(batch.good)
            bar.advance(len(batch.good))
    bar.close()
    wall = time.perf_counter() - start
    summary = {"images": len(images), "classified": done, "failed": failed, "seconds": round(wall, 3),
               "img_s": round(done / wall, 2) if wall > 0 else 0.0, "inference_s": round(infer_s, 3),
               "inference_img_s": round(done / infer_s, 2) if infer_s > 0 else 0.0, "batch": batch_size,
               "readers": readers, "version": model.version.key, "threads": model.threads}
    if args.json:
        print(json.dumps({"summary": summary}), flush=True)
    elif len(images) > 1:
        print(f"{done} image(s) classified in {wall:.2f} s: {summary['img_s']:.1f} img/s end to end, inference "
              f"{infer_s:.2f} s ({summary['inference_img_s']:.1f} img/s), batch {batch_size}, {readers} reader(s)"
              + (f"; {failed} could not be read" if failed else ""))
    if failed and len(images) > 1:
        raise UserError(f"{failed} of {len(images)} images could not be read (each is named above)")
    return EXIT_ERROR if failed else 0


_RAY_ADDRESS = re.compile(r"(ray://)?[A-Za-z0-9_.\-]+:[0-9]{1,5}|\[[0-9A-Fa-f:.]+\]:[0-9]{1,5}|auto|local")


def _ray_address(text: str) -> str | None:
    """--ray's ADDRESS: None when not given; else host:port, ray://host:port, auto or local, or one sentence (an image
    folder put right after --ray would otherwise be taken for the address)."""
    if text == "":
        return None
    if not _RAY_ADDRESS.fullmatch(text.strip()):
        raise UserError(f"--ray {text!r} is not a Ray address (host:port, ray://host:port, auto or local); put the "
                        "images before --ray, e.g. `pyresnet run DIR --ray`")
    return text.strip()


def cmd_run_ray(args: argparse.Namespace) -> int:
    """`run --ray`: the images through pyresnet.ray on a Ray cluster, the results written to --out (or stdout).

    Everything the user can get wrong is checked before Ray starts: Ray installed, the address's form, the images,
    --out (a writable file), the version and its options, the weights (and the int8 stage's calibration); then the
    cluster's size (--threads, --actors) before the first file is read."""
    from . import ray as pray

    ray = pray.require_ray()
    address = _ray_address(args.ray)
    if args.readers is not None:
        raise UserError("--readers does not apply with --ray: each actor decodes its own batches on its --threads")
    images = list_images(args.images or [str(sample_image())])
    out = check_writable(args.out, UserError, "--out") if args.out else None
    d = _weights_for_run(args.weights)
    job = pray.prepare(args.version, d, topk=args.topk, logits=args.logits, threads=args.threads,
                       actors=args.actors, batch=args.batch, ship_weights=args.ship_weights,
                       max_pixels=args.max_pixels, exact_decode=args.exact_decode or None)
    if job.manifest.get("source") == "random" and not args.json:
        print(f"note: {d} holds random weights (seed {job.manifest.get('seed')}); the labels are meaningless. Real "
              "ones: `pyresnet weights fetch` or `pyresnet weights import FILE.pth`.", file=sys.stderr, flush=True)
    started = pray.connect(address)
    try:
        if out is not None:
            begin, write, end = pray.writer(pray.output_format(out), job.logits)
            box: dict = {}

            def fill(f) -> None:
                begin(f)
                box["summary"] = pray.classify_files(images, job, write, f)
                end(f)

            write_file(out, fill, UserError, "--out")
            summary = box["summary"]
        else:
            _, write, _ = pray.writer("jsonl", job.logits)
            summary = pray.classify_files(images, job, lambda f, t: (write(f, t), f.flush()), sys.stdout.buffer)
    except Exception as e:  # noqa: BLE001 - a UserError raised in an actor reaches us wrapped in Ray's errors
        cause = pray.user_error_of(e)
        if cause is None:
            raise
        hint = ""
        if isinstance(cause, WeightsError) and job.placement.get("weights_via") == "path":
            hint = " (on a worker: --weights must name a directory every node sees, or use --ship-weights)"
        raise UserError(str(cause) + hint) from None
    finally:
        if started:
            ray.shutdown()
    s, p = summary.as_dict(), job.placement
    s.update({"version": job.version, "batch": job.batch, "threads": p.get("threads"), "actors": p.get("actors"),
              "nodes": p.get("nodes"), "weights_via": p.get("weights_via"), "out": str(out) if out else None})
    if args.json or out is None:
        print(json.dumps({"summary": s}), flush=True)
    else:
        via = ("read from " + str(job.weights) + " on each node" if p.get("weights_via") == "path" else
               f"shipped through the object store ({p.get('weights_bytes', 0) / 1e6:.0f} MB, put in "
               f"{p.get('put_s', 0.0):.1f} s)")
        print(f"{s['classified']} image(s) classified in {s['seconds']:.2f} s: {s['img_s']:.1f} img/s through Ray, "
              f"{p.get('actors', 0)} actor(s) x {p.get('threads', 0)} thread(s) on {p.get('nodes', 0)} node(s), "
              f"{job.version}, batch {job.batch}; weights {via}"
              + (f"; {s['failed']} could not be read" if s["failed"] else "") + f"; wrote {out}", flush=True)
    if s["failed"] and s["images"] > 1:
        raise UserError(f"{s['failed']} of {s['images']} images could not be read (each is a row with its error in "
                        f"{out or 'the output'})")
    return EXIT_ERROR if s["failed"] else 0


def _out_dir(text: str | None) -> Path | None:
    """--out: None for the default location; an empty string is an error, not the current directory."""
    if text is None:
        return None
    if not text.strip():
        raise UserError("--out must name a directory, got an empty string")
    return Path(text)


def cmd_fetch(args: argparse.Namespace) -> int:
    out = wts.fetch(args.variant, _out_dir(args.out))
    print(f"wrote {out}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    out = wts.import_pth(Path(args.file), _out_dir(args.out))
    print(f"wrote {out}")
    return 0


def cmd_random(args: argparse.Namespace) -> int:
    out = wts.random(args.seed, _out_dir(args.out))
    print(f"wrote {out} (random weights, seed {args.seed}: for tests; labels from it are meaningless)")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .instruments import bench, report
    from .machine import cpus_allowed

    threads = args.threads or cpus_allowed()
    if args.peak:
        peak = bench.measure_peak(threads)
        for name, k in peak["kernels"].items():
            print(f"{name:>16}: {k['1']:7.1f} GOP/s on 1 thread, {k[str(threads)]:7.1f} GOP/s on {threads} "
                  f"thread(s)  {k['what']}")
        print("GOP/s: 2 operations per multiply-accumulate, as the network's GFLOP count has them")
        return 0
    if args.min_runs > args.max_runs:
        raise UserError(f"--min-runs ({args.min_runs}) is more than --max-runs ({args.max_runs})")
    if args.streams > threads:
        raise UserError(f"--streams {args.streams} is more than the {threads} thread(s): each stream needs one")
    json_out, plot_out = bench.check_outputs(args.json_out, args.plot)  # before the first measurement
    folder = args.images or os.environ.get("PYRESNET_IMAGES")
    images = list_images([folder]) if folder else []
    versions = args.version or registry.versions()
    result = bench.run(versions, args.weights, threads, image=args.image, peers=not args.no_peers,
                       min_runs=args.min_runs, seconds=args.seconds, max_runs=args.max_runs,
                       slow_runs=args.slow_runs, batches=sorted(set(args.batch)), streams=args.streams,
                       torch_modes=args.torch_modes, images=images, reduced=not args.no_reduced,
                       rounds=args.rounds)
    print(report.markdown(result))
    if json_out:
        bench.save_json(result, json_out)
    if plot_out:
        report.plot(result, plot_out)
    failed = [r["name"] for r in result["rows"] if not r["check_ok"]]
    if failed:
        raise UserError(f"disagrees with the torch oracle: {', '.join(failed)} (see the check column)")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from .instruments import diff

    if args.chain:
        print(diff.chain())
        return 0
    if not (args.a and args.b):
        raise UserError("diff needs two versions (e.g. `pyresnet diff v3 v4`), or --chain")
    if args.html:
        out = check_writable(args.html, UserError, "--html")
        write_file(out, diff.html_page(args.a, args.b).encode("utf-8"), UserError, "--html")
        print(f"wrote {out}")
    elif args.stat:
        print(diff.format_stat(diff.stat(args.a, args.b)))
    else:
        sys.stdout.write(diff.unified(args.a, args.b))
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    import numpy as np

    from .instruments import profile
    from .images import preprocess

    x = preprocess(args.image) if args.image else np.random.default_rng(0).standard_normal((224, 224, 3)).astype(
        np.float32)
    d = wts.find(args.weights)
    if d is None:
        raise UserError(f"no weights found; {wts.HOW_TO_GET}")
    names = args.compare or [args.version or registry.newest()]
    results = []
    for name in names:
        model = load(name, weights=d, threads=args.threads)
        runs = 1 if model.version.slow else args.runs
        results.append((name, model, profile.profile(model, x, runs)))
    if args.compare:
        (a, _, la), (b, _, lb) = results
        print(profile.compare(a, la, b, lb))
    else:
        name, model, layers = results[0]
        print(f"{name}, {model.threads} thread(s), median of {1 if model.version.slow else args.runs} pass(es)\n")
        print(profile.table(layers))
        if args.by_op:
            print()
            print(profile.by_op(layers))
    return 0


def cmd_codegen(args: argparse.Namespace) -> int:
    from .instruments import codegen

    for path in codegen.write(args.version, _out_dir(args.out)):
        print(f"wrote {path}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from .accuracy.calibrate import calibrate

    images = list_images(args.images)
    d = wts.find(args.weights)
    if d is None:
        raise UserError(f"no weights found; {wts.HOW_TO_GET}")
    entry = calibrate(d, images, args.method, args.percentile)
    method = entry["method"] + (f" {entry['percentile']}" if entry["percentile"] is not None else "")
    print(f"calibrated {d} on {entry['images']} image(s), method {method}: {len(entry['points'])} activation ranges "
          f"in {d / entry['file']}")
    return 0 if entry["images"] == len(images) else EXIT_ERROR


def cmd_agree(args: argparse.Namespace) -> int:
    from .accuracy.agree import agree
    from .machine import cpus_allowed

    images = list_images(args.images)
    r = agree(args.version, args.against, images, args.weights, args.threads or cpus_allowed(),
              with_variants=not args.no_variants)
    if args.json:
        print(json.dumps(r))
    else:
        skipped = (f"; {len(r['skipped_calibration_images'])} calibration image(s) left out"
                   if r["skipped_calibration_images"] else "")
        print(f"{r['a']} against {r['b']} on {r['inputs']} inputs ({r['images']} images"
              f"{', 5 variants each' if r['variants'] else ''}{skipped}):")
        print(f"  top-1 agreement {r['top1']:.1%}, mean top-5 overlap {r['top5_overlap']:.1%}, |delta logit| / "
              f"max |logit|: median {r['rel_diff_median']:.2e}, max {r['rel_diff_max']:.2e} (reference max |logit| "
              f"median {r['max_abs_logit_median']:.3g})")
    for u in r["unreadable"]:
        print(f"pyresnet: error: {u}", file=sys.stderr)
    return EXIT_ERROR if r["unreadable"] else 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .accuracy.evaluate import evaluate
    from .pipeline import default_readers

    d = _weights_for_run(args.weights)
    model = load(args.version or registry.newest(), weights=d, threads=args.threads)
    r = evaluate(model, Path(args.folder), batch=args.batch, readers=default_readers(), topk=args.topk)
    if args.json:
        print(json.dumps({"version": model.version.key, "weights": str(d), **r}))
    else:
        k = r["topk"]
        print(f"{model.version.key} on {r['evaluated']} images in {r['classes']} classes: top-1 {r['top1']:.2%}, "
              f"top-{k} {r[f'top{k}']:.2%}" + (f"; {len(r['unreadable'])} unreadable" if r["unreadable"] else ""))
    return EXIT_ERROR if r["unreadable"] else 0


def cmd_export(args: argparse.Namespace) -> int:
    try:
        from .instruments.peers import export_onnx
        __import__("onnx")
    except ImportError:
        raise UserError("export --onnx needs the onnx package: pip install onnx") from None
    out = check_writable(args.onnx, UserError, "--onnx")  # before the weights are read and the graph is built
    d = wts.find(args.weights)
    if d is None:
        raise UserError(f"no weights found; {wts.HOW_TO_GET}")
    state, manifest = wts.check(d)
    export_onnx(state, out)
    print(f"wrote {out} (ResNet-50, {manifest.get('source', 'unknown')} weights from {d}; input 'x' N x 3 x 224 x "
          "224, normalised as `pyresnet.preprocess` does, output 'logits' N x 1000)")
    return 0


def cmd_frozen(args: argparse.Namespace) -> int:
    from .instruments import frozen

    if args.sync:
        for path in frozen.sync():
            print(f"wrote {path}")
    by_origin: dict[tuple[str, str], list[str]] = {}
    for c in frozen.copies():
        by_origin.setdefault((c.origin, c.path), []).append(c.stage + ("" if c.equal else " (differs)"))
    for (origin, path), stages in sorted(by_origin.items(), key=lambda kv: (registry.get(kv[0][0]).number, kv[0][1])):
        print(f"{origin:>4} {path:<24} -> {', '.join(stages)}")
    problems = frozen.check()
    for problem in problems:
        print(f"pyresnet: {problem}", file=sys.stderr)
    return EXIT_ERROR if problems else 0


def cmd_info(args: argparse.Namespace) -> int:
    from .machine import describe

    m = describe()
    print(f"pyresnet {__import__('pyresnet').__version__}, Python {m['python']}, {m['os']}")
    simd = ", ".join(f for f, present in m["simd"].items() if present) or "none of avx2/fma/avx512"
    print(f"CPU: {m['cpu']} ({m['cpus_allowed']} of {m['cpus_total']} CPUs allowed); SIMD: {simd}")
    print("versions:")
    for v in registry.REGISTRY:
        built = m["versions"].get(v.key)
        flags = f"[{built['flags']}]" if built else "(not built)"
        print(f"  {v.key:<4} {v.directory or 'reference/numpy_ref':<16} {flags:<40} {v.summary}")
    found = wts.find()
    if found is None:
        print(f"weights: none found under {wts.default_root()}")
        return 0
    try:
        print(f"weights: {found} ({wts.read_manifest(found).get('source', 'unknown source')})")
    except UserError as e:
        print(f"weights: {found}, unusable: {e}")
    return 0


def _end_interrupted() -> None:
    """End the interrupted command at once, with status 130, without the interpreter's shutdown.

    A reader thread (a daemon) may still be inside OpenCV's decoder when Ctrl-C ends the command; if its decode
    finished while the interpreter shut down, the thread would be stopped with the C++ decoder's frames on its stack,
    which aborts the process. Nothing is left to finish: every file we write is renamed into place or removed before
    the KeyboardInterrupt reaches here, so we flush what was printed and leave."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:  # a reader that went away: nothing more to say to it
            pass
    os._exit(130)


def main(argv: Sequence[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a file name that is not valid UTF-8 is printed escaped, not a crash
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UserError as e:
        print(f"pyresnet: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("pyresnet: interrupted", file=sys.stderr)
        if argv is None:  # the command itself: end here, see _end_interrupted()
            _end_interrupted()
        return 130
    except BrokenPipeError:  # the reader went away (`pyresnet info | head`): stop quietly, as other tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:  # a file we could not write, a full disk: the user's environment, not our bug
        print(f"pyresnet: error: {e.strerror or e}: {e.filename or ''}".rstrip(": "), file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
