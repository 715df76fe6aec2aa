#!/usr/bin/env python3
"""codegen.py: writes generated.cpp, the shape-specialised kernels and forward pass of ResNet-50.

The build runs it (a CMake custom command, see CMakeLists.txt) and compiles its output into the module; nothing it
writes is committed. `pyresnet codegen --out DIR` writes the same file for reading.

    python codegen.py OUT_DIR

It walks torchvision's ResNet-50 layer list (stem, four stages of bottleneck blocks, pool, fc) and emits:
  * one conv kernel per distinct layer shape (input H, W, C; output channels; kernel, stride, pad): a direct
    convolution (one dot product per output value, four AVX2 accumulators) with every shape quantity, loop bound
    and offset a compile-time constant, so the compiler can unroll, fold the window clipping away where it cannot
    happen and drop the tails it can prove empty;
  * `generated_forward()`: the whole network as straight-line calls, each layer's shapes written in as
    literals. Weights and activation buffers are arguments, never addresses baked into the code;
  * `generated_conv_params()`: the layer list it was generated from, which the model checks against its own at
    load, so that the generator and network.cpp cannot silently disagree.

Python standard library only: it runs inside the build, before any of pyresnet is installed.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

INPUT = 224
STAGES = ((3, 64), (4, 128), (6, 256), (3, 512))  # (blocks, width); stages 2-4 stride 2 in their first block
CLASSES = 1000


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
    def kernel_name(self) -> str:
        return f"conv_{self.h}x{self.w}x{self.c}_k{self.k}s{self.s}p{self.p}_{self.cout}"

    @property
    def flops(self) -> int:
        return 2 * self.ho * self.wo * self.cout * self.k * self.k * self.c


@dataclass(frozen=True)
class Layer:
    """One step of the forward pass, in execution order."""

    kind: str  # "conv", "maxpool", "add", "avgpool", "fc"
    name: str
    conv: Conv | None = None
    relu: bool = False
    src: str = ""  # buffer expressions
    dst: str = ""
    other: str = ""  # add: the identity
    shape: tuple[int, int, int] = (0, 0, 0)  # output shape
    ishape: tuple[int, int, int] = (0, 0, 0)  # input shape (pooling, fc)


def walk() -> list[Layer]:
    """The forward pass of ResNet-50 v1.5 over the model's buffers (main[0..2], shortcut, features)."""
    layers: list[Layer] = []

    def conv(name: str, src: str, dst: str, h: int, w: int, c: int, cout: int, k: int, s: int, p: int,
             relu: bool) -> Conv:
        cv = Conv(h, w, c, cout, k, s, p)
        layers.append(Layer("conv", name, cv, relu, src, dst, shape=(cv.ho, cv.wo, cout)))
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
            c3 = conv(f"{prefix}.conv3", bb, a, c2.ho, c2.wo, width, 4 * width, 1, 1, 0, False)
            identity = xs
            if b == 0:
                conv(f"{prefix}.downsample.0", xs, "shortcut", h, h, c, 4 * width, 1, stride, 0, False)
                identity = "shortcut"
            layers.append(Layer("add", f"{prefix}.add", src=a, dst=a, other=identity, shape=(c3.ho, c3.wo, 4 * width)))
            h, c, x = c3.ho, 4 * width, (x + 1) % 3
    layers.append(Layer("avgpool", "avgpool", src=f"main[{x}]", dst="features", shape=(1, 1, c), ishape=(h, h, c)))
    layers.append(Layer("fc", "fc", src="features", dst="logits", shape=(1, 1, CLASSES), ishape=(1, 1, c)))
    return layers


KERNEL_1X1 = """\
// {comment}
void {name}(const float* __restrict in, const float* __restrict weight, float* __restrict out) {{
  constexpr int W = {w}, C = {c}, COUT = {cout}, S = {s}, HO = {ho}, WO = {wo};
  for (int co = 0; co < COUT; co++) {{
    const float* w = weight + co * C;
    for (int ho = 0; ho < HO; ho++) {{
      for (int wo = 0; wo < WO; wo++) {{
        const float* x = in + (ho * S * W + wo * S) * C;
        __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(), acc2 = _mm256_setzero_ps(),
               acc3 = _mm256_setzero_ps();
        float tail = 0.0f;
        int i = 0;
        for (; i + 32 <= C; i += 32) {{
          acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(w + i), acc0);
          acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(w + i + 8), acc1);
          acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(w + i + 16), acc2);
          acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(w + i + 24), acc3);
        }}
        for (; i + 8 <= C; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(w + i), acc0);
        for (; i < C; i++) tail += x[i] * w[i];
        const __m256 acc = _mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3));
        out[(ho * WO + wo) * COUT + co] = hsum(acc) + tail;
      }}
    }}
  }}
}}
"""

KERNEL_KXK = """\
// {comment}
void {name}(const float* __restrict in, const float* __restrict weight, float* __restrict out) {{
  constexpr int H = {h}, W = {w}, C = {c}, COUT = {cout}, K = {k}, S = {s}, P = {p}, HO = {ho}, WO = {wo};
  for (int co = 0; co < COUT; co++) {{
    const float* wco = weight + co * K * K * C;
    for (int ho = 0; ho < HO; ho++) {{
      const int h0 = ho * S - P;
      const int kh_begin = std::max(0, -h0), kh_end = std::min(K, H - h0);
      for (int wo = 0; wo < WO; wo++) {{
        const int w0 = wo * S - P;
        const int kw_begin = std::max(0, -w0), kw_end = std::min(K, W - w0);
        const int run = (kw_end - kw_begin) * C;
        __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(), acc2 = _mm256_setzero_ps(),
               acc3 = _mm256_setzero_ps();
        float tail = 0.0f;
        for (int kh = kh_begin; kh < kh_end; kh++) {{
          const float* x = in + ((h0 + kh) * W + (w0 + kw_begin)) * C;
          const float* w = wco + (kh * K + kw_begin) * C;
          int i = 0;
          for (; i + 32 <= run; i += 32) {{
            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(w + i), acc0);
            acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(w + i + 8), acc1);
            acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(w + i + 16), acc2);
            acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(w + i + 24), acc3);
          }}
          for (; i + 8 <= run; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(w + i), acc0);
          for (; i < run; i++) tail += x[i] * w[i];
        }}
        const __m256 acc = _mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3));
        out[(ho * WO + wo) * COUT + co] = hsum(acc) + tail;
      }}
    }}
  }}
}}
"""

HEADER = """\
// generated.cpp — WRITTEN BY codegen.py AT BUILD TIME; do not edit, do not commit (edit codegen.py instead).
//
// ResNet-50's {nconv} convolutions need {nkernels} distinct kernels. Each is a direct convolution (HWC in, OHWI
// weights, four AVX2 accumulators per output) with its shape written in as constants; 1x1 kernels have no window
// to clip. generated_forward() is the network as straight-line calls: weights and buffers are arguments, shapes
// are literals.
#include <immintrin.h>

#include <algorithm>

#include "network.h"
#include "ops.h"
#include "common/profile.h"

namespace {{

// The sum of the 8 lanes of v: 8 -> 4 -> 2 -> 1.
inline float hsum(__m256 v) {{
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}}

"""


def kernel(cv: Conv, users: list[str]) -> str:
    comment = (f"{cv.h}x{cv.w}x{cv.c} -> {cv.ho}x{cv.wo}x{cv.cout}, {cv.k}x{cv.k} stride {cv.s} pad {cv.p}: "
               f"{', '.join(users)}")
    tmpl = KERNEL_1X1 if cv.k == 1 and cv.p == 0 else KERNEL_KXK
    return tmpl.format(comment=comment, name=cv.kernel_name, h=cv.h, w=cv.w, c=cv.c, cout=cv.cout, k=cv.k,
                       s=cv.s, p=cv.p, ho=cv.ho, wo=cv.wo)


def shape(s: tuple[int, int, int]) -> str:
    return f"Shape{{{s[0]}, {s[1]}, {s[2]}}}"


def forward(layers: list[Layer]) -> str:
    out = ["void generated_forward(const ConvBN* conv, const float* fc_weight, const float* fc_bias, float* const* main,",
           "                       float* shortcut, float* features, const float* image, float* logits, Profiler* prof) {"]
    i = 0
    for L in layers:
        out.append(f"  {{  // {L.name}")
        out.append("    LayerTimer t(prof);")
        n = L.shape[0] * L.shape[1] * L.shape[2]
        if L.kind == "conv":
            cv = L.conv
            assert cv is not None
            out.append(f"    {cv.kernel_name}({L.src}, conv[{i}].weight, {L.dst});")
            out.append(f"    batchnorm({L.dst}, {shape(L.shape)}, conv[{i}].mean, conv[{i}].var, conv[{i}].gamma, "
                       f"conv[{i}].beta, 1e-5f, {L.dst});")
            if L.relu:
                out.append(f"    relu({L.dst}, {n}, {L.dst});")
            stride = f"/s{cv.s}" if cv.s > 1 else ""
            op = f"conv{cv.k}x{cv.k}{stride}+bn{'+relu' if L.relu else ''}"
            out.append(f'    t.done("{L.name}", "{op}", {shape(L.shape)}, {cv.flops}.0);')
            i += 1
        elif L.kind == "maxpool":
            out.append(f"    maxpool({L.src}, {shape(L.ishape)}, 3, 2, 1, {L.dst});")
            out.append(f'    t.done("maxpool", "maxpool3x3/s2", {shape(L.shape)}, {9 * n}.0);')
        elif L.kind == "add":
            out.append(f"    add({L.src}, {L.other}, {n}, {L.dst});")
            out.append(f"    relu({L.dst}, {n}, {L.dst});")
            out.append(f'    t.done("{L.name}", "add+relu", {shape(L.shape)}, {n}.0);')
        elif L.kind == "avgpool":
            out.append(f"    avgpool({L.src}, {shape(L.ishape)}, {L.dst});")
            out.append(f'    t.done("avgpool", "avgpool", {shape(L.shape)}, {L.ishape[0] * L.ishape[1] * L.ishape[2]}.0);')
        elif L.kind == "fc":
            out.append(f"    fc({L.src}, {L.ishape[2]}, fc_weight, fc_bias, {CLASSES}, {L.dst});")
            out.append(f'    t.done("fc", "fc", {shape(L.shape)}, {2 * L.ishape[2] * CLASSES}.0);')
        out.append("  }")
    out.append("}")
    return "\n".join(out) + "\n"


def generate() -> str:
    """The whole of generated.cpp."""
    layers = walk()
    convs = [L for L in layers if L.kind == "conv"]
    users: dict[Conv, list[str]] = {}
    for L in convs:
        assert L.conv is not None
        users.setdefault(L.conv, []).append(L.name)
    parts = [HEADER.format(nconv=len(convs), nkernels=len(users))]
    parts += [kernel(cv, names) + "\n" for cv, names in users.items()]
    parts.append("}  // namespace\n\n")
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
