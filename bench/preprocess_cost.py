"""CPU per image of pyresnet.preprocess, full decode against the reduced (DCT-scaled) JPEG decode, and how far apart.

    python bench/preprocess_cost.py                   # the photos in ../shared/images ($PYRESNET_IMAGES)
    python bench/preprocess_cost.py IMG... --runs 9 --json out.json

For each image: its size, the scale it is decoded at by default (1/f), and the CPU time of one call (median over
--runs calls, the modes interleaved call by call, so that a slow stretch on a shared machine lands on all) of
  before   the pipeline as it was: read_rgb() in full, BGR -> RGB on the whole image, cv2.resize of the whole
           image, centre crop, normalise by numpy arithmetic (the same bits as exact);
  exact    preprocess(exact_decode=True): full decode, then only the crop resized, converted and normalised;
  reduced  preprocess(), the default: the JPEG decoded at 1/f scale, then as exact;
the ratio reduced / before, and the mean / max absolute difference of reduced from exact, (224, 224, 3) in
normalised units; with Pillow installed also exact's and reduced's mean absolute difference from torchvision's
transform (tests/test_preprocess.py's torchvision_reference, the bound the tests hold: <= 0.05).
The CPU time is time.process_time(): every thread of the process, so OpenCV's own threads count (they are reported).
The last row sums the medians: the reduced total over the before total is the figure the issue targets.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

import cv2
import numpy as np

import pyresnet
from pyresnet.errors import UserError
from pyresnet.safeio import write_file
from pyresnet.images import MEAN, STD, read_rgb, read_size
from pyresnet.images.preprocess import REDUCE_MARGIN, center_crop, reduction, resize_shorter

REPO = Path(__file__).resolve().parent.parent
IMAGES = Path(os.environ.get("PYRESNET_IMAGES", REPO.parent / "shared" / "images"))


def torchvision_reference() -> Optional[Callable[[Path], np.ndarray]]:
    """tests/test_preprocess.py's reference (Pillow), or None where Pillow or the tests' imports are missing."""
    sys.path.insert(0, str(REPO / "tests"))
    try:
        from test_preprocess import torchvision_reference as ref
    except ImportError:
        return None
    finally:
        sys.path.pop(0)
    return ref


def before(path: Path) -> np.ndarray:
    """preprocess() as it was before the reduced decode: every step on the whole image."""
    rgb = center_crop(resize_shorter(read_rgb(path), 256), 224)
    return np.ascontiguousarray((rgb.astype(np.float32) / 255.0 - MEAN) / STD, dtype=np.float32)


def cpu_ms(call: Callable[[], Any]) -> float:
    t = time.process_time()
    call()
    return (time.process_time() - t) * 1e3


def measure(path: Path, runs: int, ref: Optional[Callable[[Path], np.ndarray]]) -> dict[str, Any]:
    fmt, w, h = read_size(path.read_bytes())
    decoded = read_rgb(path, reduce_for=256, exact_decode=False).shape[1::-1]
    f = 1 if sorted(decoded) == sorted((w, h)) else reduction(fmt, w, h, 256)  # 1 too where the EXIF needs OpenCV
    exact, reduced = pyresnet.preprocess(path, exact_decode=True), pyresnet.preprocess(path, exact_decode=False)
    modes = {"before": lambda: before(path), "exact": lambda: pyresnet.preprocess(path, exact_decode=True),
             "reduced": lambda: pyresnet.preprocess(path, exact_decode=False)}
    samples: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(runs):
        for m, call in modes.items():
            samples[m].append(cpu_ms(call))
    d = np.abs(reduced - exact)
    row: dict[str, Any] = {"image": path.name, "format": fmt, "width": w, "height": h, "reduction": f,
                           "decoded": list(decoded)}
    row.update({f"{m}_ms": statistics.median(v) for m, v in samples.items()})
    row.update({f"{m}_ms_samples": v for m, v in samples.items()})
    row.update({"diff_vs_exact_mean": float(d.mean()), "diff_vs_exact_max": float(d.max()),
                "exact_equals_before": before(path).tobytes() == exact.tobytes()})
    row["ratio"] = row["reduced_ms"] / row["before_ms"]
    if ref is not None:
        tv = ref(path)
        row["exact_vs_torchvision_mean"] = float(np.abs(exact - tv).mean())
        row["reduced_vs_torchvision_mean"] = float(np.abs(reduced - tv).mean())
    return row


def table(rows: list[dict[str, Any]], total: dict[str, float]) -> str:
    tv = "exact_vs_torchvision_mean" in rows[0]
    head = (f"{'image':<12} {'size':>11} {'decode':>15} {'before ms':>9} {'exact ms':>9} {'reduced ms':>10} "
            f"{'ratio':>6} "
            f"{'|red-exact| mean/max':>21}" + (f" {'|exact-tv|':>10} {'|red-tv|':>9}" if tv else ""))
    lines = [head, "-" * len(head)]
    for r in rows:
        dec = "full" if r["reduction"] == 1 else f"1/{r['reduction']} {r['decoded'][0]}x{r['decoded'][1]}"
        line = (f"{r['image']:<12} {str(r['width']) + 'x' + str(r['height']):>11} {dec:>15} {r['before_ms']:9.2f} "
                f"{r['exact_ms']:9.2f} "
                f"{r['reduced_ms']:10.2f} {r['ratio']:6.2f} "
                f"{r['diff_vs_exact_mean']:12.4f} /{r['diff_vs_exact_max']:6.3f}")
        if tv:
            line += f" {r['exact_vs_torchvision_mean']:10.4f} {r['reduced_vs_torchvision_mean']:9.4f}"
        lines.append(line)
    lines.append("-" * len(head))
    lines.append(f"{'total':<12} {'':>11} {'':>15} {total['before_ms']:9.2f} {total['exact_ms']:9.2f} "
                 f"{total['reduced_ms']:10.2f} "
                 f"{total['ratio']:6.2f}")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("images", nargs="*", type=Path, help=f"images (default: the JPEGs and PNGs in {IMAGES})")
    ap.add_argument("--runs", type=int, default=7, help="calls per image and mode; the median is kept (default 7)")
    ap.add_argument("--json", type=Path, help="also write every sample and the machine to this file")
    args = ap.parse_args(argv)
    paths = args.images or sorted(p for p in IMAGES.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    if not paths:
        ap.error(f"no images given and none in {IMAGES}")
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    ref = torchvision_reference()
    rows = [measure(p, args.runs, ref) for p in paths]
    total = {f"{m}_ms": sum(r[f"{m}_ms"] for r in rows) for m in ("before", "exact", "reduced")}
    total["ratio"] = total["reduced_ms"] / total["before_ms"]
    total["reduced_over_exact"] = total["reduced_ms"] / total["exact_ms"]
    print(table(rows, total))
    same = [r["image"] for r in rows if r["exact_equals_before"]]
    print(f"\nreduced / before {total['ratio']:.2f}, reduced / exact {total['reduced_over_exact']:.2f}; exact gives "
          "the same bits as before on " + ("every image" if len(same) == len(rows) else "only " + ", ".join(same)))
    cpu = "?"
    try:
        from pyresnet import machine

        desc = machine.describe()
        cpu = f"{desc.get('cpu')} ({desc.get('microarchitecture')}), {desc.get('cpus_allowed')} CPUs allowed"
    except Exception:  # noqa: BLE001 - the description is a courtesy, the numbers stand without it
        desc = None
    print(f"CPU ms per preprocess() call (process_time, median of {args.runs}); reduction margin "
          f"{REDUCE_MARGIN}x the 256-pixel resize; OpenCV {cv2.__version__}, {cv2.getNumThreads()} threads; {cpu}")
    if not ref:
        print("(Pillow or the tests are not importable: no torchvision columns)")
    if args.json:
        out = {"command": "python bench/preprocess_cost.py " + " ".join(argv if argv is not None else sys.argv[1:]),
               "runs": args.runs, "reduce_margin": REDUCE_MARGIN, "opencv": cv2.__version__,
               "opencv_threads": cv2.getNumThreads(), "machine": desc, "images": rows, "total": total}
        write_file(args.json, (json.dumps(out, indent=1) + "\n").encode(), UserError, "--json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
