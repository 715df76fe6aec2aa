"""The Python API: versions(), load(), classify(), thread counts, and one model shared by several threads."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

import pyresnet
from pyresnet import registry
from pyresnet.errors import UnknownVersionError, UserError

from conftest import noise, photos


def test_versions_in_story_order() -> None:
    vs = pyresnet.versions()
    assert vs[0] == "py" and "v1" in vs
    assert vs == sorted(vs, key=lambda k: registry.get(k).number)


def test_every_registered_version_is_built() -> None:
    """A version whose module failed to build must fail the suite, not vanish from versions()."""
    assert pyresnet.versions() == [v.key for v in registry.REGISTRY]


def test_load_by_directory_name_and_unknown(weights_dir: Path) -> None:
    assert pyresnet.load("v1_origin", weights=weights_dir).version.key == "v1"
    with pytest.raises(UnknownVersionError, match="v42"):
        pyresnet.load("v42", weights=weights_dir)


@pytest.mark.parametrize("threads", [0, -1, 1025, 2.5, "4", True])
def test_nonsense_thread_counts(threads, weights_dir: Path) -> None:
    with pytest.raises(UserError, match="threads"):
        pyresnet.load("py", weights=weights_dir, threads=threads)


def test_classify(weights_dir: Path, models) -> None:
    m = models("py")
    assert m.random_weights
    img = photos()[0] if photos() else np.full((300, 200, 3), 128, np.uint8)
    top = m.classify(img, topk=3)
    assert len(top) == 3 and [p for *_, p in top] == sorted([p for *_, p in top], reverse=True)
    idx, label, prob = top[0]
    assert label == pyresnet.labels()[idx] and 0 < prob <= 1
    with pytest.raises(UserError):
        m.classify(img, topk=0)


def test_labels() -> None:
    names = pyresnet.labels()
    assert len(names) == 1000 and names[0] == "tench" and names[281] == "tabby"


@pytest.mark.parametrize("version", [v for v in pyresnet.versions() if not registry.get(v).slow])
def test_one_model_many_threads(version: str, models) -> None:
    """Four Python threads share one model; each gets exactly what a lone call gives."""
    m = models(version)
    inputs = [noise(10 + i) for i in range(4)]
    expected = [m.logits(x) for x in inputs]
    results: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        for _ in range(2):
            results[i] = m.logits(inputs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        assert np.array_equal(results[i], expected[i]), f"thread {i} got a different answer"


THREADED = [v for v in pyresnet.versions() if registry.get(v).threaded and registry.get(v).directory]


@pytest.mark.parametrize("version", THREADED)
def test_bitwise_identical_for_any_thread_count(version: str, weights_of) -> None:
    """Work is split into blocks fixed by the layer shapes, never by the thread count: 1, 2, 3, 5 and 8 threads
    give the very same bits (and every output channel is computed, whatever the count divides)."""
    x = noise(7)
    results = {}
    for n in (1, 2, 3, 5, 8):
        m = pyresnet.load(version, weights=weights_of(version), threads=n)
        assert m.threads == n
        results[n] = m.logits(x)
    assert np.isfinite(results[1]).all()
    for n, y in results.items():
        assert np.array_equal(y, results[1]), f"{version}: {n} threads differ from 1 thread"


@pytest.mark.parametrize("version", THREADED)
@pytest.mark.parametrize("threads", [0, -3, 1025])
def test_native_model_rejects_nonsense_thread_counts(version: str, threads: int, weights_dir: Path) -> None:
    """The C++ model checks the count itself too (ValueError), for callers that bypass pyresnet.load."""
    with pytest.raises(ValueError, match="threads"):
        registry.module(version).Model(str(weights_dir), threads)


def _child_logits(model: pyresnet.Model, x: np.ndarray, queue) -> None:  # runs in the forked child
    queue.put(model.logits(x))


@pytest.mark.parametrize("version", THREADED)
def test_fork_after_use_gives_a_working_pool(version: str, weights_of) -> None:
    """After a threaded model has run, a forked child (multiprocessing's default on Linux, gunicorn, DataLoader
    workers) has none of the pool's worker threads: its first logits() must start new ones, not wait forever."""
    import multiprocessing

    m = pyresnet.load(version, weights=weights_of(version), threads=3)
    x = noise(5)
    expected = m.logits(x)  # the pool has run: its workers are spinning or asleep in the parent
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_logits, args=(m, x, queue))
    child.start()
    try:
        got = queue.get(timeout=30)
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
    assert child.exitcode == 0
    assert np.array_equal(got, expected), "the forked child's logits differ from the parent's"
    assert np.array_equal(m.logits(x), expected)  # and the parent's pool still works


def test_options_pass_through_the_checked_loader(weights_dir: Path) -> None:
    """pyresnet.load(version, ..., **options): a stage's native options, checked in Python first."""
    with_isa = [v for v in pyresnet.versions() if registry.get(v).has("isa")]
    without = [v for v in pyresnet.versions() if not registry.get(v).has("isa")]
    with pytest.raises(TypeError, match="frobnicate"):
        pyresnet.load(pyresnet.versions()[-1], weights=weights_dir, frobnicate=1)
    if without:
        with pytest.raises(UserError, match="no option 'isa'"):
            pyresnet.load(without[-1], weights=weights_dir, isa="avx2")
    if with_isa:
        assert pyresnet.load(with_isa[0], weights=weights_dir, threads=1, isa="avx2").native.isa == "avx2"
        for bad in ("sse2", "", 3):
            with pytest.raises(UserError, match="isa must be"):
                pyresnet.load(with_isa[0], weights=weights_dir, isa=bad)
    for v in [v for v in pyresnet.versions() if registry.get(v).has("winograd")]:
        for bad in (1, "no"):
            with pytest.raises(UserError, match="winograd must be"):
                pyresnet.load(v, weights=weights_dir, winograd=bad)
        assert pyresnet.load(v, weights=weights_dir, threads=1, winograd=False).native.winograd is False
        assert pyresnet.load(v, weights=weights_dir, threads=1, winograd=None).native.winograd is True  # default


def test_features_only_accumulate() -> None:
    """Each compiled stage keeps what the stage it builds on could do, except what it declares it drops."""
    compiled = [v for v in registry.REGISTRY if v.directory]
    for v in compiled[1:]:
        base = v.builds_on
        assert base is not None and base.number < v.number, v.key
        assert base.features - v.drops <= v.features, (base.key, v.key)
        assert not v.drops & v.adds and v.drops <= base.features, f"{v.key} drops what it adds or never had"
    with pytest.raises(KeyError):
        compiled[0].has("teleport")


@pytest.mark.parametrize("version", [v for v in pyresnet.versions() if not registry.get(v).slow])
def test_batch_is_bitwise_the_images_one_by_one(version: str, models) -> None:
    """logits((N, 224, 224, 3)) -> (N, 1000), each row exactly what the image alone gives (a native batch
    computes every image's outputs with the same code and order of additions as batch 1)."""
    m = models(version)
    batch = np.stack([noise(20 + i) for i in range(3)])
    got = m.logits(batch)
    assert got.shape == (3, 1000) and got.dtype == np.float32
    for i in range(3):
        assert np.array_equal(got[i], m.logits(batch[i])), f"{version}: image {i} of the batch differs"


@pytest.mark.parametrize("bad,fragment", [
    (np.zeros((0, 224, 224, 3), np.float32), "empty batch"),
    (np.zeros((2, 224, 224, 3), np.float64), "float32"),
    (np.zeros((2, 224, 224, 4), np.float32), "shape"),
    (np.zeros((1, 2, 224, 224, 3), np.float32), "shape"),
    (np.zeros((2, 200, 224, 3), np.float32), "shape"),  # images of the wrong size in a batch
    ([[0.0]], "numpy array"),
])
def test_bad_batches_are_one_sentence(bad, fragment: str, models) -> None:
    """The reference, and every stage with a native batch (the fp32, bf16 and int8 ones)."""
    for version in ["py"] + [v for v in pyresnet.versions() if registry.get(v).has("batch")]:
        with pytest.raises(ValueError, match=fragment):
            models(version).logits(bad)


def test_classify_a_list_of_images(models) -> None:
    m = models(pyresnet.versions()[-1])
    imgs = [np.full((64, 80, 3), v, np.uint8) for v in (30, 200)]
    both = m.classify(imgs, topk=2)
    assert [len(t) for t in both] == [2, 2]
    assert both == [m.classify(i, topk=2) for i in imgs]
    with pytest.raises(ValueError, match="empty"):
        m.classify([], topk=2)


BATCHED = [v for v in pyresnet.versions() if registry.get(v).has("batch")]


@pytest.mark.parametrize("version", BATCHED)
def test_batch_bitwise_for_any_max_batch_and_thread_count(version: str, weights_of) -> None:
    """A native batch computes each image's outputs with the same code and order of additions as the image alone:
    5 images on max_batch 1, 2 (chunks of 2, 2, 1) and 5, on 1 and 3 threads, give bitwise the batch-1 logits."""
    batch = np.stack([noise(40 + i) for i in range(5)])
    alone = pyresnet.load(version, weights=weights_of(version), threads=1, max_batch=1)
    expected = np.stack([alone.logits(x) for x in batch])
    assert np.isfinite(expected).all()
    for max_batch in (1, 2, 5):
        for threads in (1, 3):
            m = pyresnet.load(version, weights=weights_of(version), threads=threads, max_batch=max_batch)
            assert m.native.max_batch == max_batch  # the option reaches the native model
            got = m.logits(batch)
            assert got.shape == (5, 1000) and got.dtype == np.float32
            for i in range(5):
                assert np.array_equal(got[i], expected[i]), \
                    f"{version}: image {i} of 5, max_batch {max_batch}, {threads} threads differs from the image alone"


@pytest.mark.parametrize("version", BATCHED)
def test_native_batch_checks(version: str, weights_of, models) -> None:
    """The C++ model checks max_batch and its input arrays itself (ValueError), for callers that bypass
    pyresnet.load and pyresnet.Model; a batch of one is (1, 1000), one image (1000,)."""
    native = registry.module(version).Model
    for bad in (0, -1, 1025):
        with pytest.raises(ValueError, match="max_batch"):
            native(str(weights_of(version)), 1, max_batch=bad)
    with pytest.raises(UserError, match="max_batch"):
        pyresnet.load(version, weights=weights_of(version), max_batch=0)
    m = models(version).native
    x = noise(3)
    assert m.logits(x).shape == (1000,) and m.logits(x[None]).shape == (1, 1000)
    assert np.array_equal(m.logits(x[None])[0], m.logits(x))
    bad_inputs = [
        (np.zeros((0, 224, 224, 3), np.float32), "size 0"),
        (np.zeros((2, 224, 224, 3), np.float64), "float32"),
        (np.zeros((2, 224, 224, 4), np.float32), r"\(224, 224, 3\)"),
        (np.zeros((2, 225, 224, 3), np.float32), r"\(224, 224, 3\)"),
        (np.zeros((1, 2, 224, 224, 3), np.float32), "dimensions"),
        (np.zeros((224, 3), np.float32), "dimensions"),
        (np.zeros((224, 224, 3, 2), np.float32)[..., 0], "C-contiguous"),
        (np.zeros((4, 224, 224, 3), np.float32)[::2], "C-contiguous"),
    ]
    for bad, fragment in bad_inputs:
        with pytest.raises(ValueError, match=fragment):
            m.logits(bad)
