"""ResNet-50's layer list (torchvision's v1.5), the one place Python states the architecture.

The weights tooling (expected names and shapes), the numpy reference, the random-weights generator and the
FLOP counts read it. The C++ versions state the same walk in their own network code, and the torch oracle
(reference/oracle.py) states it again independently, so a mistake here cannot hide behind itself.
"""

from __future__ import annotations

from dataclasses import dataclass

INPUT = 224  # input image is INPUT x INPUT x 3
CLASSES = 1000
BLOCKS = (3, 4, 6, 3)  # bottleneck blocks per stage
WIDTHS = (64, 128, 256, 512)  # bottleneck width per stage; the block outputs 4x that
EXPANSION = 4
BN_EPS = 1e-5


@dataclass(frozen=True)
class Conv:
    """A bias-free square conv followed by BatchNorm; names are torchvision state_dict prefixes."""

    name: str  # e.g. 'layer2.0.conv2'
    bn: str  # e.g. 'layer2.0.bn2'
    cin: int
    cout: int
    kernel: int
    stride: int
    pad: int
    hin: int  # input height = width for a 224x224 image

    @property
    def hout(self) -> int:
        return (self.hin + 2 * self.pad - self.kernel) // self.stride + 1

    @property
    def macs(self) -> int:
        return self.hout * self.hout * self.cout * self.kernel * self.kernel * self.cin

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        """OHWI, the layout of the weights format."""
        return (self.cout, self.kernel, self.kernel, self.cin)


@dataclass(frozen=True)
class Block:
    """One bottleneck: conv1 1x1 -> conv2 3x3 (carries the stride) -> conv3 1x1, plus the shortcut."""

    prefix: str  # 'layer1.0'
    conv1: Conv
    conv2: Conv
    conv3: Conv
    downsample: Conv | None  # strided 1x1 conv + BN on the shortcut, first block of each stage


def stem() -> Conv:
    return Conv("conv1", "bn1", 3, 64, 7, 2, 3, INPUT)


def blocks() -> list[Block]:
    """The sixteen bottleneck blocks in execution order."""
    out: list[Block] = []
    cin, h = 64, INPUT // 4  # after the stem conv (stride 2) and the maxpool (stride 2): 56x56x64
    for stage, (n, width) in enumerate(zip(BLOCKS, WIDTHS)):
        for b in range(n):
            p = f"layer{stage + 1}.{b}"
            stride = 2 if (b == 0 and stage > 0) else 1
            cout = width * EXPANSION
            c1 = Conv(f"{p}.conv1", f"{p}.bn1", cin, width, 1, 1, 0, h)
            c2 = Conv(f"{p}.conv2", f"{p}.bn2", width, width, 3, stride, 1, h)
            c3 = Conv(f"{p}.conv3", f"{p}.bn3", width, cout, 1, 1, 0, c2.hout)
            ds = Conv(f"{p}.downsample.0", f"{p}.downsample.1", cin, cout, 1, stride, 0, h) if b == 0 else None
            out.append(Block(p, c1, c2, c3, ds))
            cin, h = cout, c2.hout
    return out


def convs() -> list[Conv]:
    """Every conv in execution order (within a block: conv1, conv2, conv3, downsample)."""
    out = [stem()]
    for b in blocks():
        out += [b.conv1, b.conv2, b.conv3] + ([b.downsample] if b.downsample else [])
    return out


FC_IN = WIDTHS[-1] * EXPANSION  # 2048
BN_SUFFIXES = ("weight", "bias", "running_mean", "running_var")


def state_shapes() -> dict[str, tuple[int, ...]]:
    """Every tensor of the weights format: torchvision state_dict key -> shape (conv weights OHWI)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for c in convs():
        shapes[f"{c.name}.weight"] = c.weight_shape
        for s in BN_SUFFIXES:
            shapes[f"{c.bn}.{s}"] = (c.cout,)
    shapes["fc.weight"] = (CLASSES, FC_IN)
    shapes["fc.bias"] = (CLASSES,)
    return shapes


def total_macs() -> int:
    """Multiply-accumulates for one 224x224 image (convs + fc): about 4.1 G."""
    return sum(c.macs for c in convs()) + CLASSES * FC_IN


def calibration_points() -> list[str]:
    """The tensors a calibration records a range for, in a fixed order: the input image; then in load order, every
    conv's output as the network keeps it (after BatchNorm, and ReLU where one follows; conv3 before the residual
    add), and after each block's conv3 (and downsample) the block's output (after the add and ReLU)."""
    names = ["input", stem().name]
    for b in blocks():
        names += [b.conv1.name, b.conv2.name, b.conv3.name]
        if b.downsample:
            names.append(b.downsample.name)
        names.append(f"{b.prefix}.out")
    return names
