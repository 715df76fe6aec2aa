#!/usr/bin/env python3
"""codegen.py: writes generated.cpp, the forward pass of ResNet-50.

The build runs it (a CMake custom command, see CMakeLists.txt) and compiles its output into the module; nothing it
writes is committed. `pyresnet codegen --out DIR` writes the same file for reading.

    python codegen.py OUT_DIR

It walks torchvision's ResNet-50 layer list (stem, four stages of bottleneck blocks, pool, fc) and emits:
  * `generated_forward()`: the whole network as straight-line calls, each layer's shapes written in as
    literals. Weights and activation buffers are arguments, never addresses baked into the code;
  * `generated_conv_params()`: the layer list it was generated from, which the model checks against its own at
    load, so that the generator and network.cpp cannot silently disagree.

The generated code hands each layer's work to the model's thread pool as tasks: conv by the task split of its
FusedConv, maxpool by output rows, fc by blocks of outputs. The tasks are fixed by the layer's shape,
never by the thread count, and each output value is computed by exactly one task with the same code, so the result
is bitwise the same for any number of threads.

Every BatchNorm is folded into its conv at load (weights and a bias), and the conv's store adds the bias, then the
residual when the layer has one, then applies ReLU when asked: no BatchNorm, add or ReLU pass is left, and the
downsample conv runs before conv3, whose store adds its output.

Every conv runs the packed-weight GEMM micro-kernel (ops/microkernel.h), which takes the shape from its FusedConv at
run time; per conv, the forward pass makes the zero-padded copy of its input when it pads, then runs the conv's
tasks on the pool.

Python standard library only: it runs inside the build, before any of pyresnet is installed.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

INPUT = 224
STAGES = ((3, 64), (4, 128), (6, 256), (3, 512))  # (blocks, width); stages 2-4 stride 2 in their first block
CLASSES = 1000
FC_BLOCK = 125  # fc outputs per task: 1000 = 8 x 125


@dataclass(frozen=True)
class Conv:
    """One conv layer: its input shape and parameters."""

    h: int
    w: int
    c: int
    cout: int
    k: int
    s: int
    p: int

    @property
    def ho(self) -> int:
        return (self.h + 2 * self.p - self.k) // self.s + 1

    @property
    def wo(self) -> int:
        return (self.w + 2 * self.p - self.k) // self.s + 1

    @property
    def flops(self) -> int:
        return 2 * self.ho * self.wo * self.cout * self.k * self.k * self.c


@dataclass(frozen=True)
class Layer:
    """One step of the forward pass, in execution order."""

    kind: str  # "conv", "maxpool", "avgpool", "fc"
    name: str
    conv: Conv | None = None
    relu: bool = False
    src: str = ""  # buffer expressions
    dst: str = ""
    residual: str = ""  # conv: the tensor its store adds, if any
    shape: tuple[int, int, int] = (0, 0, 0)  # output shape
    ishape: tuple[int, int, int] = (0, 0, 0)  # input shape (pooling, fc)


def walk() -> list[Layer]:
    """The forward pass of ResNet-50 v1.5 over the model's buffers (main[0..2], shortcut, features)."""
    layers: list[Layer] = []

    def conv(name: str, src: str, dst: str, h: int, w: int, c: int, cout: int, k: int, s: int, p: int,
             relu: bool, residual: str = "") -> Conv:
        cv = Conv(h, w, c, cout, k, s, p)
        layers.append(Layer("conv", name, cv, relu, src, dst, residual, shape=(cv.ho, cv.wo, cout)))
        return cv

    stem = conv("conv1", "image", "main[0]", INPUT, INPUT, 3, 64, 7, 2, 3, True)  # 112x112x64
    h = (stem.ho + 2 - 3) // 2 + 1  # maxpool 3x3/s2/p1: 56
    layers.append(Layer("maxpool", "maxpool", src="main[0]", dst="main[1]", shape=(h, h, 64),
                        ishape=(stem.ho, stem.wo, 64)))
    c, x = 64, 1  # the block input lives in main[x]; a block moves it one buffer on
    for stage, (blocks, width) in enumerate(STAGES):
        for b in range(blocks):
            prefix = f"layer{stage + 1}.{b}"
            stride = 2 if b == 0 and stage > 0 else 1
            xs, a, bb = f"main[{x}]", f"main[{(x + 1) % 3}]", f"main[{(x + 2) % 3}]"
            c1 = conv(f"{prefix}.conv1", xs, a, h, h, c, width, 1, 1, 0, True)
            c2 = conv(f"{prefix}.conv2", a, bb, c1.ho, c1.wo, width, width, 3, stride, 1, True)
            if b == 0:  # the downsample runs before conv3, whose store adds its output
                conv(f"{prefix}.downsample.0", xs, "shortcut", h, h, c, 4 * width, 1, stride, 0, False)
            # conv3 adds the shortcut in its store (then ReLU), into conv1's buffer, free again by then
            c3 = conv(f"{prefix}.conv3", bb, a, c2.ho, c2.wo, width, 4 * width, 1, 1, 0, True,
                      residual="shortcut" if b == 0 else xs)
            h, c, x = c3.ho, 4 * width, (x + 1) % 3
    layers.append(Layer("avgpool", "avgpool", src=f"main[{x}]", dst="features", shape=(1, 1, c), ishape=(h, h, c)))
    layers.append(Layer("fc", "fc", src="features", dst="logits", shape=(1, 1, CLASSES), ishape=(1, 1, c)))
    return layers


HEADER = """\
// generated.cpp — WRITTEN BY codegen.py AT BUILD TIME; do not edit, do not commit (edit codegen.py instead).
//
// ResNet-50's forward pass as straight-line calls. Each of the {nconv} convs runs the GEMM micro-kernel
// (ops/microkernel.h: BatchNorm folded into packed weights, bias + residual + ReLU in the store) as tasks on the
// model's ThreadPool, after a zero-padded copy of its input when it pads. Weights and buffers are arguments, shapes
// are literals.
#include "network.h"
#include "ops.h"
#include "ops/conv_fused.h"
#include "common/profile.h"
#include "threadpool.h"

"""


def shape(s: tuple[int, int, int]) -> str:
    return f"Shape{{{s[0]}, {s[1]}, {s[2]}}}"


def forward(layers: list[Layer]) -> str:
    out = ["void generated_forward(const ConvKernels& kern, const FusedConv* conv, const float* fc_weight,",
           "                       const float* fc_bias, float* const* main, float* shortcut, float* padded,",
           "                       float* features, const float* image, float* logits, ThreadPool& tp, Profiler* prof) {"]
    i = 0
    for L in layers:
        out.append(f"  {{  // {L.name}")
        out.append("    LayerTimer t(prof);")
        n = L.shape[0] * L.shape[1] * L.shape[2]
        if L.kind == "conv":
            cv = L.conv
            assert cv is not None
            relu = "true" if L.relu else "false"
            stride = f"/s{cv.s}" if cv.s > 1 else ""
            op = f"conv{cv.k}x{cv.k}{stride}+bias{'+add' if L.residual else ''}{'+relu' if L.relu else ''}"
            src = L.src
            if cv.p > 0:
                out.append(f"    tp.parallel_for({cv.h + 2 * cv.p}, [&](int r) {{ pad_row({L.src}, "
                           f"Shape{{{cv.h}, {cv.w}, {cv.c}}}, {cv.p}, padded, r); }});")
                src = "padded"
            out.append(f"    tp.parallel_for(conv_tasks(conv[{i}], kern), [&](int task) {{ kern.task(conv[{i}], {src}, "
                       f"{L.dst}, {L.residual or 'nullptr'}, {relu}, task); }});")
            out.append(f'    t.done("{L.name}", "{op}", {shape(L.shape)}, {cv.flops}.0);')
            i += 1
        elif L.kind == "maxpool":
            out.append(f"    tp.parallel_for({L.shape[0]}, [&](int r) {{ maxpool_rows({L.src}, {shape(L.ishape)}, 3, 2, 1, "
                       f"{L.dst}, r, r + 1); }});")
            out.append(f'    t.done("maxpool", "maxpool3x3/s2", {shape(L.shape)}, {9 * n}.0);')
        elif L.kind == "avgpool":
            out.append(f"    avgpool({L.src}, {shape(L.ishape)}, {L.dst});")
            out.append(f'    t.done("avgpool", "avgpool", {shape(L.shape)}, {L.ishape[0] * L.ishape[1] * L.ishape[2]}.0);')
        elif L.kind == "fc":
            cin = L.ishape[2]
            out.append(f"    tp.parallel_for({CLASSES // FC_BLOCK}, [&](int task) {{ fc({L.src}, {cin}, "
                       f"fc_weight + task * {FC_BLOCK * cin}, fc_bias + task * {FC_BLOCK}, {FC_BLOCK}, {L.dst} + task * {FC_BLOCK}); }});")
            out.append(f'    t.done("fc", "fc", {shape(L.shape)}, {2 * L.ishape[2] * CLASSES}.0);')
        out.append("  }")
    out.append("}")
    return "\n".join(out) + "\n"


def generate() -> str:
    """The whole of generated.cpp."""
    layers = walk()
    convs = [L for L in layers if L.kind == "conv"]
    parts = [HEADER.format(nconv=len(convs))]
    params = ",\n".join(f"    {{{L.conv.c}, {{{L.conv.cout}, {L.conv.k}, {L.conv.s}, {L.conv.p}}}}}"  # type: ignore[union-attr]
                        for L in convs)
    parts.append(f"// The layer list this file was generated from: (input channels, conv parameters) per conv, in\n"
                 f"// execution order. The model compares it with its own walk at load.\n"
                 f"const GeneratedConv* generated_conv_params(int* count) {{\n"
                 f"  static const GeneratedConv params[{len(convs)}] = {{\n{params}}};\n"
                 f"  *count = {len(convs)};\n  return params;\n}}\n\n")
    parts.append(forward(layers))
    return "".join(parts)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: codegen.py OUT_DIR", file=sys.stderr)
        return 2
    out = Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    text = generate()
    target = out / "generated.cpp"
    if not target.exists() or target.read_text() != text:  # unchanged output keeps its timestamp: no rebuild
        target.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
