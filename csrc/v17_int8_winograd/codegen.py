#!/usr/bin/env python3
"""codegen.py: writes generated.cpp, the forward pass of ResNet-50.

The build runs it (a CMake custom command, see CMakeLists.txt) and compiles its output into the module; nothing it
writes is committed. `pyresnet codegen --out DIR` writes the same file for reading.

    python codegen.py OUT_DIR

It walks torchvision's ResNet-50 layer list (stem, four stages of bottleneck blocks, pool, fc) and emits:
  * `generated_head()` and `generated_tail()`: the whole network as straight-line calls, each layer's shapes
    written in as literals. Weights and activation buffers are arguments, never addresses baked into the code;
  * `generated_conv_params()`: the layer list it was generated from, which the model checks against its own at
    load, so that the generator and network.cpp cannot silently disagree.

The generated code hands each layer's work to the model's thread pool as tasks: conv by the task split of its
FusedConv, maxpool by output rows, fc by blocks of outputs. The tasks are fixed by the layer's shape and n,
never by the thread count, and each output value is computed by exactly one task with the same code, so the result
is bitwise the same for any number of threads.

Every BatchNorm is folded into its conv at load (weights and a bias), and the conv's store adds the bias, then the
residual when the layer has one, then applies ReLU when asked: no BatchNorm, add or ReLU pass is left, and the
downsample conv runs before conv3, whose store adds its output.

Every conv runs the packed-weight GEMM micro-kernel (ops/microkernel.h), which takes the shape from its FusedConv at
run time; per conv, the forward pass makes the zero-padded copy of its input when it pads, then runs the conv's
tasks on the pool; a 3x3 stride-1 conv whose FusedConv says wino (network.cpp) runs Winograd's two passes
instead (input transform; GEMMs with the output transform; ops/winograd.h), which read the unpadded input.

The forward pass is written as two functions. generated_head() runs one image through the layers before ResNet
stage BATCHED_FROM and writes its output into the batch's input buffer; generated_tail() runs a batch of n images
through the rest (n is an argument, the shapes stay literals per image): the conv kernels take n and treat the
batch's pixels as one GEMM, so the wide late layers load each weight panel once per batch; avgpool runs per image,
and each fc task applies its block of weights to every image in turn. The emitted code of a layer is the same in
both: the head declares n = 1.

Every conv runs the int8 kernel on the uint8 buffers: the stem on the image quantized as it is padded
(quantize_pad_row, with a zero point: the image is signed), the downsample writing fp32 real values into `shortcut`,
which its block's conv3 adds. maxpool pools uint8, and avgpool reads the last block's uint8 output with its scale.

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
# The first ResNet stage whose layers run on the whole batch at once; the earlier ones take one image at a time.
# Measured (README.md): batched, layer4's weights (4-16 MB a conv) are loaded once per batch and its convs get faster;
# layer1-3's weights are small, and batched their activations do not stay in L2 and L3 between passes, which costs
# more than it saves.
BATCHED_FROM = 4


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
    batched: bool = False  # in generated_tail(), on the whole batch


def walk() -> list[Layer]:
    """The forward pass of ResNet-50 v1.5 over the model's buffers (main[0..2], shortcut, features): the head's last
    layer writes `out`, the tail's first block reads `in`, and each part has its own buffers."""
    assert 2 <= BATCHED_FROM <= len(STAGES), "the head holds the stem and layer1, the tail at least layer4"
    layers: list[Layer] = []
    batched = False  # read by conv(): the stage being walked runs on the whole batch

    def conv(name: str, src: str, dst: str, h: int, w: int, c: int, cout: int, k: int, s: int, p: int,
             relu: bool, residual: str = "") -> Conv:
        cv = Conv(h, w, c, cout, k, s, p)
        layers.append(Layer("conv", name, cv, relu, src, dst, residual, shape=(cv.ho, cv.wo, cout), batched=batched))
        return cv

    stem = conv("conv1", "image", "main[0]", INPUT, INPUT, 3, 64, 7, 2, 3, True)  # 112x112x64
    h = (stem.ho + 2 - 3) // 2 + 1  # maxpool 3x3/s2/p1: 56
    layers.append(Layer("maxpool", "maxpool", src="main[0]", dst="main[1]", shape=(h, h, 64),
                        ishape=(stem.ho, stem.wo, 64)))
    c, x = 64, 1  # the block input lives in main[x]; a block moves it one buffer on
    for stage, (blocks, width) in enumerate(STAGES):
        batched = stage + 1 >= BATCHED_FROM
        for b in range(blocks):
            prefix = f"layer{stage + 1}.{b}"
            stride = 2 if b == 0 and stage > 0 else 1
            xs, a, bb = f"main[{x}]", f"main[{(x + 1) % 3}]", f"main[{(x + 2) % 3}]"
            if stage + 1 == BATCHED_FROM and b == 0:  # the tail's input: the head's outputs, image after image
                xs, a, bb, x = "in", "main[0]", "main[1]", 2
            # the head's last conv writes its image's slot of the tail's input
            out = "out" if stage + 2 == BATCHED_FROM and b == blocks - 1 else a
            c1 = conv(f"{prefix}.conv1", xs, a, h, h, c, width, 1, 1, 0, True)
            c2 = conv(f"{prefix}.conv2", a, bb, c1.ho, c1.wo, width, width, 3, stride, 1, True)
            if b == 0:  # the downsample runs before conv3, whose store adds its output
                conv(f"{prefix}.downsample.0", xs, "shortcut", h, h, c, 4 * width, 1, stride, 0, False)
            # conv3 adds the shortcut in its store (then ReLU), into conv1's buffer, free again by then
            c3 = conv(f"{prefix}.conv3", bb, out, c2.ho, c2.wo, width, 4 * width, 1, 1, 0, True,
                      residual="shortcut" if b == 0 else xs)
            h, c, x = c3.ho, 4 * width, (x + 1) % 3
    layers.append(Layer("avgpool", "avgpool", src=f"main[{x}]", dst="features", shape=(1, 1, c), ishape=(h, h, c),
                        batched=True))
    layers.append(Layer("fc", "fc", src="features", dst="logits", shape=(1, 1, CLASSES), ishape=(1, 1, c),
                        batched=True))
    return layers


HEADER = """\
// generated.cpp — WRITTEN BY codegen.py AT BUILD TIME; do not edit, do not commit (edit codegen.py instead).
//
// ResNet-50's forward pass as straight-line calls, in two parts: generated_head() takes one image through the
// layers before layer{batched_from}, generated_tail() takes a batch of n images through the rest. Each of the
// {nconv} convs runs the GEMM micro-kernel (ops/microkernel.h: BatchNorm folded into packed weights, bias + residual
// + ReLU in the store) over the pixels of its n images as tasks on the model's ThreadPool, after a zero-padded copy
// of its input when it pads: int8 weights on uint8 activations, int32 sums, requantized in the store. Weights,
// buffers and n are arguments, the per-image shapes are literals.
#include "network.h"
#include "ops.h"
#include "ops/conv_fused.h"
#include "ops/winograd.h"
#include "common/profile.h"
#include "threadpool.h"

"""


def shape(s: tuple[int, int, int]) -> str:
    return f"Shape{{{s[0]}, {s[1]}, {s[2]}}}"


HEAD = """\
void generated_head(const ConvKernels& kern, const FusedConv* conv, std::uint8_t* const* main, float* shortcut,
                    std::uint8_t* padded, std::int16_t* wino_v, float input_inv_step, int input_zero,
                    const float* image, std::uint8_t* out, ThreadPool& tp, Profiler* prof) {
  constexpr int n = 1;  // one image at a time"""
TAIL = """\
void generated_tail(const ConvKernels& kern, const FusedConv* conv, const float* fc_weight, const float* fc_bias,
                    std::uint8_t* const* main, float* shortcut, std::uint8_t* padded, std::int16_t* wino_v,
                    float* features, float out_scale,
                    const std::uint8_t* in, int n, float* logits, ThreadPool& tp, Profiler* prof) {"""


def forward(layers: list[Layer]) -> str:
    out = [HEAD]
    i = 0
    in_tail = False
    for L in layers:
        if L.batched and not in_tail:  # the head's layers come first, then the tail's
            out += ["}", "", TAIL]
            in_tail = True
        out.append(f"  {{  // {L.name}")
        out.append("    LayerTimer t(prof);")
        n = L.shape[0] * L.shape[1] * L.shape[2]
        if L.kind == "conv":
            cv = L.conv
            assert cv is not None
            relu = "true" if L.relu else "false"
            stride = f"/s{cv.s}" if cv.s > 1 else ""
            op = f"conv{cv.k}x{cv.k}{stride}+bias{'+add' if L.residual else ''}{'+relu' if L.relu else ''}"
            src, ind = L.src, "    "
            if cv.k == 3 and cv.s == 1:  # Winograd when the model planned it for this layer, else direct
                assert L.relu and not L.residual, "a Winograd layer stores uint8 with ReLU and no residual"
                out.append(f"    if (conv[{i}].wino) {{")
                out.append(f"      tp.parallel_for(wino_input_tasks(conv[{i}], n), [&](int task) {{ "
                           f"kern.wino_input(conv[{i}], n, {L.src}, wino_v, task); }});")
                out.append(f"      tp.parallel_for(wino_tasks(conv[{i}], kern, n), [&](int task) {{ "
                           f"kern.wino_task(conv[{i}], n, wino_v, {L.dst}, {relu}, task); }});")
                out.append(f'      t.done("{L.name}", "{op} int8 F(2x2)", {shape(L.shape)}, n * {cv.flops}.0);')
                out.append("    } else {")
                ind = "      "
            if cv.p > 0 and L.src == "image":  # the signed fp32 image, quantized with a zero point as it is padded
                out.append(f"{ind}tp.parallel_for(n * {cv.h + 2 * cv.p}, [&](int r) {{ quantize_pad_row({L.src}, "
                           f"Shape{{{cv.h}, {cv.w}, {cv.c}}}, {cv.p}, input_inv_step, input_zero, padded, r); }});")
                src = "padded"
            elif cv.p > 0:
                out.append(f"{ind}tp.parallel_for(n * {cv.h + 2 * cv.p}, [&](int r) {{ pad_row({L.src}, "
                           f"Shape{{{cv.h}, {cv.w}, {cv.c}}}, {cv.p}, padded, r); }});")
                src = "padded"
            assert src != "image", "the fp32 image is quantized by the stem's padded copy"
            out.append(f"{ind}tp.parallel_for(conv_tasks(conv[{i}], kern, n), [&](int task) {{ kern.task(conv[{i}], n, "
                       f"{src}, {L.dst}, {L.residual or 'nullptr'}, {relu}, task); }});")
            out.append(f'{ind}t.done("{L.name}", "{op} int8", {shape(L.shape)}, n * {cv.flops}.0);')
            if ind != "    ":
                out.append("    }")
            i += 1
        elif L.kind == "maxpool":
            assert not L.batched, "maxpool runs in the head, one image at a time"
            out.append(f"    tp.parallel_for({L.shape[0]}, [&](int r) {{ maxpool_rows({L.src}, {shape(L.ishape)}, 3, 2, 1, "
                       f"{L.dst}, r, r + 1); }});")
            out.append(f'    t.done("maxpool", "maxpool3x3/s2", {shape(L.shape)}, {9 * n}.0);')
        elif L.kind == "avgpool":
            isize = L.ishape[0] * L.ishape[1] * L.ishape[2]
            out.append(f"    for (int i = 0; i < n; i++) avgpool({L.src} + i * {isize}L, {shape(L.ishape)}, out_scale, "
                       f"{L.dst} + i * {L.ishape[2]});")
            out.append(f'    t.done("avgpool", "avgpool", {shape(L.shape)}, n * {isize}.0);')
        elif L.kind == "fc":
            cin = L.ishape[2]
            out.append(f"    tp.parallel_for({CLASSES // FC_BLOCK}, [&](int task) {{ for (int i = 0; i < n; i++) "
                       f"fc({L.src} + i * {cin}, {cin}, fc_weight + task * {FC_BLOCK * cin}, "
                       f"fc_bias + task * {FC_BLOCK}, {FC_BLOCK}, {L.dst} + i * {CLASSES} + task * {FC_BLOCK}); }});")
            out.append(f'    t.done("fc", "fc", {shape(L.shape)}, n * {2 * L.ishape[2] * CLASSES}.0);')
        out.append("  }")
    out.append("}")
    return "\n".join(out) + "\n"


def generate() -> str:
    """The whole of generated.cpp."""
    layers = walk()
    convs = [L for L in layers if L.kind == "conv"]
    parts = [HEADER.format(nconv=len(convs), batched_from=BATCHED_FROM)]
    params = ",\n".join(f"    {{{L.conv.c}, {{{L.conv.cout}, {L.conv.k}, {L.conv.s}, {L.conv.p}}}}}"  # type: ignore[union-attr]
                        for L in convs)
    first_batched = next(k for k, L in enumerate(convs) if L.batched)
    parts.append(f"// The layer list this file was generated from: (input channels, conv parameters) per conv, in\n"
                 f"// execution order, and the first conv of generated_tail(). The model compares them with its own\n"
                 f"// walk at load.\n"
                 f"const GeneratedConv* generated_conv_params(int* count, int* first_batched) {{\n"
                 f"  static const GeneratedConv params[{len(convs)}] = {{\n{params}}};\n"
                 f"  *count = {len(convs)};\n  *first_batched = {first_batched};\n  return params;\n}}\n\n")
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
