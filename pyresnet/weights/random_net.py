"""A deterministic random ResNet-50 whose BatchNorm layers do real work: for tests, and for machines offline."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import arch
from ..errors import WeightsError
from ..reference.numpy_ref import Model
from .format import write
from .locations import default_root


def natural_noise(rng: np.random.Generator, n: int = arch.INPUT) -> np.ndarray:
    """An n x n x 3 image of noise with a 1/f amplitude spectrum, like natural photos, unit variance per channel.

    Calibrated on white noise, the random network gives logits 50-100x larger on real photos than on noise;
    calibrated on this, real photos land within about 1-100 (measured on ../shared/images).
    """
    f = np.fft.fftfreq(n)
    radius = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    radius[0, 0] = 1.0
    channels = []
    for _ in range(3):
        spectrum = np.fft.fft2(rng.standard_normal((n, n))) / radius
        spectrum[0, 0] = 0.0
        img = np.real(np.fft.ifft2(spectrum))
        channels.append(img / img.std())
    return np.stack(channels, axis=-1).astype(np.float32)


def random_state(seed: int) -> dict[str, np.ndarray]:
    """A deterministic ResNet-50 whose BatchNorm layers do real work.

    Conv weights: torchvision's init (Kaiming normal, fan_out, ReLU gain); fc: nn.Linear's default uniform init.
    BatchNorm: with identity statistics (mean 0, var 1) a version that skipped BN would still look right, so we
    randomise all four tensors. To keep activations near O(1) through fifty layers, we run the network once
    (numpy, in float64) on a seeded image-like input (noise with a natural image's 1/f spectrum) and derive each
    BN's running statistics from the conv output it actually sees, then perturb them: mean += 0.2 std * N(0, 1), var *= U(0.5, 2), gamma ~ U(0.5, 1.5), beta ~ N(0, 0.2).
    Statistics are rounded to 4 significant digits, so the bytes do not depend on the last bits of the BLAS.
    """
    rng = np.random.Generator(np.random.PCG64(seed))
    state: dict[str, np.ndarray] = {}
    for c in arch.convs():
        std = np.sqrt(2.0 / (c.cout * c.kernel * c.kernel))
        state[f"{c.name}.weight"] = rng.standard_normal(c.weight_shape).astype(np.float32).astype(np.float64) * std
    bound = 1.0 / np.sqrt(arch.FC_IN)
    state["fc.weight"] = rng.uniform(-bound, bound, (arch.CLASSES, arch.FC_IN))
    state["fc.bias"] = rng.uniform(-bound, bound, (arch.CLASSES,))
    x = natural_noise(rng)

    def round4(a: np.ndarray) -> np.ndarray:
        return np.array([float(f"{v:.4g}") for v in a])

    class Calibrating(Model):
        def bn(self, y: np.ndarray, conv: arch.Conv) -> np.ndarray:
            mean, var = y.mean(axis=(0, 1)), np.maximum(y.var(axis=(0, 1)), 1e-4)
            s = self.state
            s[f"{conv.bn}.running_mean"] = round4(mean + 0.2 * np.sqrt(var) * rng.standard_normal(conv.cout))
            s[f"{conv.bn}.running_var"] = round4(var * rng.uniform(0.5, 2.0, conv.cout))
            s[f"{conv.bn}.weight"] = round4(rng.uniform(0.5, 1.5, conv.cout))
            s[f"{conv.bn}.bias"] = round4(0.2 * rng.standard_normal(conv.cout))
            return super().bn(y, conv)

    Calibrating(state).logits(x)
    return {k: v.astype(np.float32) for k, v in state.items()}


def random(seed: int, out: Path | None = None) -> Path:
    """Write the deterministic random network for `seed` (same seed -> identical bytes)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise WeightsError(f"seed must be a non-negative integer, got {seed!r}")
    out = Path(out) if out else default_root() / f"random-seed{seed}"
    return write(random_state(seed), out, {"source": "random", "seed": seed,
                                           "preprocess": {"resize": 256, "crop": 224}})
