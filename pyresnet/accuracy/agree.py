"""`pyresnet agree`: how closely one way of running the network follows another, over photos and their variants.

There are no ImageNet labels here, so reduced precision is judged by agreement with the fp32 network, measured the
same way for our stages and for the peers: top-1 agreement, mean top-5 overlap, and the median and largest
|difference of logits| relative to the reference's largest |logit|, per input. Inputs: every image given plus
fixed, seeded variants of it (a mirror image, two crops, a downscaled copy), so the set is larger than the photos.
Images that were used to calibrate (by sha256, from the weights' calibration record) are left out, and the output
says how many.

Names that can be compared: any version ('v11', 'py'), 'oracle' (the torch fp32 network, the default reference),
and every peer of instruments.peers.PEERS ('pytorch', 'onnxruntime', 'openvino' and their bf16 and int8 rows, the
int8 ones quantized from the calibration images of the weights directory, so that they meet the same data as our
int8 stage).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .. import registry
from .. import weights as wts
from ..errors import UserError
from ..images import preprocess, read_rgb
from ..instruments import peers
from ..model import load
from ..progress import Progress
from ..reference.oracle import Oracle

ORACLE = "oracle"  # our fp32 reference, not a peer
NAMES = (ORACLE, *(s.name for s in peers.PEERS))  # what agree runs besides the versions
TORCH_MODES = ("eager", "jit")  # the PyTorch modes tried: quick to set up, and every mode computes fp32 alike


def variants(rgb: np.ndarray, seed: int) -> list[tuple[str, np.ndarray]]:
    """The image and four fixed variants: mirrored, centre crop of 80%, a seeded off-centre crop of 70%, half size."""
    h, w = rgb.shape[:2]
    rng = np.random.default_rng(seed)
    ch, cw = int(h * 0.8), int(w * 0.8)
    oh, ow = int(h * 0.7), int(w * 0.7)
    top, left = int(rng.integers(0, h - oh + 1)), int(rng.integers(0, w - ow + 1))
    small = rgb[::2, ::2] if min(h, w) >= 64 else rgb
    return [("original", rgb), ("mirrored", np.ascontiguousarray(rgb[:, ::-1])),
            ("crop80", np.ascontiguousarray(rgb[(h - ch) // 2:(h - ch) // 2 + ch, (w - cw) // 2:(w - cw) // 2 + cw])),
            ("crop70", np.ascontiguousarray(rgb[top:top + oh, left:left + ow])),
            ("half", np.ascontiguousarray(small))]


class LazyInputs:
    """A sequence of inputs made one at a time, each when iteration reaches it, and dropped after: memory holds one
    input whatever their number. It has a length and can be iterated again (each pass makes them anew)."""

    def __init__(self, makers: Sequence[Callable[[], np.ndarray]]):
        self.makers = list(makers)

    def __len__(self) -> int:
        return len(self.makers)

    def __iter__(self) -> Iterator[np.ndarray]:
        return (make() for make in self.makers)

    def __add__(self, other: "LazyInputs") -> "LazyInputs":
        return LazyInputs(self.makers + other.makers)


def calibration_inputs(d: Path, manifest: dict[str, Any]) -> LazyInputs:
    """The preprocessed calibration images of weights directory d, re-read from their recorded paths: every file
    must still be there with the same sha256 (checked now, and again as each is read); preprocessed lazily, one at a
    time, however many there are."""
    wts.read_calibration(d, manifest)
    resize, crop = wts.preprocess_params(manifest)

    def check(s: dict[str, str]) -> Path:
        p = Path(s["path"])
        if not p.is_file() or wts.sha256_file(p) != s["sha256"]:
            raise UserError(f"calibration image {p} is gone or changed since `pyresnet calibrate`; calibrate again")
        return p

    sources = wts.calibration_sources(d, manifest)
    for s in sources:
        check(s)
    return LazyInputs([lambda s=s: preprocess(check(s), resize=resize, crop=crop) for s in sources])


def runner(name: str, d: Path, state: Any, manifest: dict[str, Any], threads: int) -> Any:
    """Something with .logits(x) for a version name, the oracle or a peer; a peer whose package is not installed is
    one sentence naming the package to install (peers.make)."""
    if name == ORACLE:
        return Oracle(state, threads=threads)
    spec = peers.get(name)
    if spec is None:
        return load(registry.get(name).key, d, threads)
    return peers.make(spec, peers.PeerInputs(state, threads, TORCH_MODES,
                                             calibration=lambda: calibration_inputs(d, manifest)))


def check_name(name: str) -> str:
    if name in NAMES:
        return name
    return registry.get(name).key  # UnknownVersionError (one sentence) for anything else


def agree(a: str, b: str, images: Sequence[Path], weights: str | None = None, threads: int = 1,
          with_variants: bool = True, progress: bool = True) -> dict[str, Any]:
    """Agreement of `a` with `b` over the images (and their variants); returns the statistics and the counts.

    It streams: one image is read, its variants preprocessed and run through both sides, and only the comparison
    of their logits is kept, so memory does not grow with the number of images."""
    a, b = check_name(a), check_name(b)
    d = wts.find(weights)
    if d is None:
        raise UserError(f"no weights found; {wts.HOW_TO_GET}")
    state, manifest = wts.check(d)
    resize, crop = wts.preprocess_params(manifest)
    calibrated = {s["sha256"] for s in wts.calibration_sources(d, manifest)}
    kinds = 5 if with_variants else 1
    skipped_calibration: list[str] = []
    unreadable: list[str] = []
    bar = Progress(kinds * len(images), f"agree {a} vs {b}", unit="inputs", enabled=progress)

    def inputs() -> Iterator[tuple[str, np.ndarray]]:
        for i, p in enumerate(images):
            try:
                if Path(p).is_file() and wts.sha256_file(Path(p)) in calibrated:  # hashed in chunks
                    skipped_calibration.append(str(p))
                    bar.advance(kinds)
                    continue
                rgb = read_rgb(p)
            except UserError as e:
                unreadable.append(f"{p}: {e}")
                bar.advance(kinds)
                continue
            for kind, v in (variants(rgb, seed=i) if with_variants else [("original", rgb)]):
                yield f"{Path(p).name}:{kind}", preprocess(v, resize=resize, crop=crop)

    stream = inputs()
    first = next(stream, None)  # before the runners are built: nothing to compare on is said at once
    if first is None:
        why = (f"all {len(skipped_calibration)} images were calibration images" if skipped_calibration
               else "none of the images could be read")
        raise UserError(f"nothing to compare on: {why}; give evaluation images that were not used to calibrate")
    ra, rb = runner(a, d, state, manifest, threads), runner(b, d, state, manifest, threads)
    compared, per_input = [], []
    for name, x in itertools.chain([first], stream):
        ya = np.asarray(ra.logits(x), dtype=np.float64)
        yb = np.asarray(rb.logits(x), dtype=np.float64)
        compared.append(compare(yb, ya))
        per_input.append({"input": name, "top1_a": int(np.argmax(ya)), "top1_b": int(np.argmax(yb))})
        bar.advance()
    bar.close()
    return {"a": a, "b": b, "weights": str(d), "images": len(images), "inputs": len(compared),
            "variants": with_variants, "skipped_calibration_images": skipped_calibration,
            "unreadable": unreadable, **summarize(compared), "per_input": per_input}


def compare(reference: np.ndarray, got: np.ndarray) -> tuple[float, float, float, float]:
    """One input: (1.0 if the top classes agree else 0.0, share of the reference's top 5 in got's top 5,
    max |got - reference| / max |reference|, max |reference|)."""
    ref_max = float(np.abs(reference).max())
    return (float(np.argmax(reference) == np.argmax(got)),
            len(set(np.argsort(-reference)[:5]) & set(np.argsort(-got)[:5])) / 5,
            float(np.abs(got - reference).max()) / ref_max, ref_max)


def summarize(compared: Sequence[tuple[float, float, float, float]]) -> dict[str, float]:
    """top1: share of inputs with the same top class; top5_overlap: mean share of the reference's top 5 also in
    got's top 5; rel_diff: max |got - reference| / max |reference| per input, its median and maximum."""
    top1, top5, rel, ref_max = (np.array(c, dtype=np.float64) for c in zip(*compared))
    return {"top1": float(np.mean(top1)), "top5_overlap": float(np.mean(top5)),
            "rel_diff_median": float(np.median(rel)), "rel_diff_max": float(np.max(rel)),
            "max_abs_logit_median": float(np.median(ref_max))}


def statistics(reference: Sequence[np.ndarray], got: Sequence[np.ndarray]) -> dict[str, float]:
    """summarize() over pairs of logits (reference, got)."""
    return summarize([compare(np.asarray(r), np.asarray(g)) for r, g in zip(reference, got)])
