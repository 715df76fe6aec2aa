// binding.cpp — the Python face of this stage: pyresnet._vN (the name comes from PYRESNET_MODULE, set by CMake).
//
// Exposes Model(weights_dir, threads) with logits(x) and profile(x), and every op on its own, on numpy arrays.
// The ops: conv_int8 and fc (the network's pooling runs on uint8 activations, inside the model only).
// Every array is checked by common/binding.h before any C++ touches it: the dtype, C-contiguous layout, the number
// of dimensions and sizes that fit an int; each wrapper here then checks what only its op knows (matching sizes, a
// window that fits the padded input). A wrong array raises ValueError; nothing is converted silently and nothing
// is read out of bounds. Long work runs with the GIL released; logits() and profile() take an optional Interrupt
// (common/interrupt.h) that stops the call at its next layer.
//
// conv_int8() is the conv the network runs (plan, packed weights, padded input, every task), on its own, on uint8
// and int8 arrays; with winograd=True, its Winograd form (transformed weights, the two passes).
//
// Model and conv_int8() take an optional isa ("avx2", "avx512": vpmaddubsw on 7-bit weights; "avx512_vnni":
// vpdpbusd; default: $PYRESNET_ISA, else the CPU's best); Model.isa reports it, so a test can force the AVX2 path on
// any CPU. Model takes weight_bits (7 or 8; 0: 8 on avx512_vnni, else 7) and reports it; conv_int8() refuses a
// weight its path cannot sum exactly.
// cpu_isas() lists the paths this CPU can run.
//
// Model takes max_batch (the images that go through layer4 together; buffers sized for them at load) and
// logits() takes one image (224, 224, 3) -> (1000,) or a batch (N, 224, 224, 3) -> (N, 1000), run in chunks of
// max_batch; profile() takes a batch too. conv_int8() takes an optional leading batch dimension on x (and
// residual).
//
// The weights directory must hold a calibration (calibration.bin, `pyresnet calibrate`).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/binding.h"
#include "network.h"
#include "ops.h"
#include "ops/conv_fused.h"
#include "weights.h"

namespace {

// The network's int8 conv on numpy arrays (ops/conv_fused.h, FusedConv): x uint8 (H, W, Cin) or
// (N, H, W, Cin), weight int8 OHWI, scale and bias float32 (Cout,), residual None, uint8 (res_scale: its step) or
// float32 of the output's shape; out_scale None: float32 output (real values), else uint8 with that step.
py::array py_conv_int8(const py::array& x, const py::array& w, const py::array& scale, const py::array& bias,
                       int stride, int pad, const std::optional<py::array>& residual, float res_scale, bool relu,
                       std::optional<float> out_scale, const std::string& isa, bool winograd) {
  int n = 1;
  const Shape s = hwc_batch<std::uint8_t>(x, "conv_int8 input", &n);
  const std::int8_t* wp = checked<std::int8_t>(w, "conv_int8 weight (OHWI)", 4);
  const int k = static_cast<int>(w.shape(1));
  if (w.shape(2) != k) throw py::value_error("conv_int8 weight (OHWI): kernel must be square");
  if (w.shape(3) != s.c)
    throw py::value_error("conv_int8 weight (OHWI): has " + std::to_string(w.shape(3)) +
                          " input channels, input has " + std::to_string(s.c));
  check_window(s, k, stride, pad, "conv_int8");
  const ConvParams p{static_cast<int>(w.shape(0)), k, stride, pad};
  const float* sp = vec(scale, "conv_int8 scale", p.cout);
  const float* bp = vec(bias, "conv_int8 bias", p.cout);
  if (out_scale && !(*out_scale > 0.0f && std::isfinite(*out_scale)))
    throw py::value_error("conv_int8: out_scale must be a positive finite number or None");
  const Shape o = conv2d_shape(s, p);
  const void* rp = nullptr;
  bool res_f32 = false;
  if (residual) {
    int rn = 1;
    res_f32 = residual->dtype().is(py::dtype::of<float>());
    const Shape r = res_f32 ? hwc_batch<float>(*residual, "conv_int8 residual", &rn)
                            : hwc_batch<std::uint8_t>(*residual, "conv_int8 residual (uint8 or float32)", &rn);
    if (residual->ndim() != x.ndim() || rn != n || r.h != o.h || r.w != o.w || r.c != o.c)
      throw py::value_error("conv_int8 residual: expected the output's shape (" +
                            (x.ndim() == 4 ? std::to_string(n) + ", " : "") + std::to_string(o.h) + ", " +
                            std::to_string(o.w) + ", " + std::to_string(o.c) + ")");
    rp = residual->data();
  }
  const ConvKernels kern = conv_kernels(isa);
  plan_conv(s, p, kern, winograd);  // a shape the kernels cannot run is a ValueError here, before any work
  if (winograd && residual) throw py::value_error("conv_int8 with winograd=True adds no residual");
  std::vector<py::ssize_t> shape = {o.h, o.w, o.c};
  if (x.ndim() == 4) shape.insert(shape.begin(), n);
  py::array out = out_scale ? py::array(py::array_t<std::uint8_t>(shape)) : py::array(py::array_t<float>(shape));
  void* op = out.mutable_data();
  const std::uint8_t* xp = static_cast<const std::uint8_t*>(x.data());
  const float inv_out = out_scale ? 1.0f / *out_scale : 0.0f;
  {
    py::gil_scoped_release nogil;
    conv_int8(xp, n, s, wp, sp, bp, p, rp, res_f32, res_scale, relu, !out_scale, inv_out, kern, winograd, op);
  }
  return out;
}

py::array_t<float> py_fc(const py::array& x, const py::array& w, const py::array& bias) {
  const float* xp = checked(x, "fc input", 1);
  const float* wp = checked(w, "fc weight [out, in]", 2);
  if (w.shape(1) != x.shape(0))
    throw py::value_error("fc weight [out, in]: has " + std::to_string(w.shape(1)) + " inputs, input has " +
                          std::to_string(x.shape(0)));
  const int cin = static_cast<int>(x.shape(0)), cout = static_cast<int>(w.shape(0));
  const float* bp = vec(bias, "fc bias", cout);
  py::array_t<float> out(cout);
  float* op = out.mutable_data();
  {
    py::gil_scoped_release nogil;
    fc(xp, cin, wp, bp, cout, op);
  }
  return out;
}

// The network's input: one image (224, 224, 3) or a batch (N, 224, 224, 3), N >= 1; returns N (1 for one image).
int images(const py::array& x, const char* what) {
  int n = 1;
  const Shape s = hwc_batch(x, what, &n);
  if (s.h != ResNet50::kInput || s.w != ResNet50::kInput || s.c != 3)
    throw py::value_error(std::string(what) + ": expected shape (224, 224, 3) or (N, 224, 224, 3), got (" +
                          (x.ndim() == 4 ? std::to_string(n) + ", " : "") + std::to_string(s.h) + ", " +
                          std::to_string(s.w) + ", " + std::to_string(s.c) + ")");
  return n;
}

py::array_t<float> py_logits(const ResNet50& net, const py::array& x, const Interrupt* interrupt) {
  const int n = images(x, "logits input");
  py::array_t<float> out = x.ndim() == 4 ? py::array_t<float>({n, ResNet50::kClasses})
                                         : py::array_t<float>(ResNet50::kClasses);
  float* op = out.mutable_data();
  const float* xp = static_cast<const float*>(x.data());
  {
    py::gil_scoped_release nogil;  // x and out stay alive: this frame holds references to both
    InterruptScope scope(interrupt);  // a raised flag stops the call at its next layer
    net.forward(xp, n, op);
  }
  return out;
}

// One forward pass with per-layer timers: [(name, op, (h, w, c), flops, ms), ...] in execution order; for a batch,
// flops count every image, and a batch larger than max_batch gives one record per layer and chunk.
py::list py_profile(const ResNet50& net, const py::array& x, const Interrupt* interrupt) {
  const int n = images(x, "profile input");
  std::vector<float> logits(static_cast<size_t>(n) * ResNet50::kClasses);
  Profiler prof;
  const float* xp = static_cast<const float*>(x.data());
  {
    py::gil_scoped_release nogil;
    InterruptScope scope(interrupt);  // a raised flag stops the call at its next layer
    net.forward(xp, n, logits.data(), &prof);
  }
  return profile_records(prof);
}

}  // namespace

PYBIND11_MODULE(PYRESNET_MODULE, m) {
  init_module(m);

  py::class_<ResNet50>(m, "Model", py::module_local())
      .def(py::init([](const std::string& dir, int threads, const std::string& isa, int max_batch, int weight_bits,
                        std::optional<bool> winograd) {
             return new ResNet50(dir, threads, isa, max_batch, weight_bits, winograd ? *winograd : -1);
           }),
           py::arg("weights_dir"), py::arg("threads") = 1, py::arg("isa") = "",
           py::arg("max_batch") = ResNet50::kDefaultBatch, py::arg("weight_bits") = 0, py::arg("winograd") = py::none(),
           py::call_guard<py::gil_scoped_release>(),
           "isa: 'avx2', 'avx512' (AVX-512BW), 'avx512_vnni', or '' for $PYRESNET_ISA, else the best this CPU has; "
           "max_batch: 1 .. 1024, the images that go through layer4 together, buffers sized for them at load (a "
           "larger batch runs in chunks); weight_bits: 7 or 8, or 0 for the path's default (8 on avx512_vnni, else 7: "
           "vpmaddubsw sums 7-bit weights only); winograd: the 3x3 stride-1 convs by the exact integer Winograd "
           "F(2x2, 3x3), True for every 3x3 stride-1 conv, False for none, None (default) for those the path runs "
           "faster so (none on avx512_vnni); the same logits. The weights directory must hold a calibration "
           "(`pyresnet calibrate`)")
      .def_property_readonly("threads", &ResNet50::threads)
      .def_property_readonly("max_batch", &ResNet50::max_batch, "the images that go through layer4 together")
      .def_property_readonly("isa", &ResNet50::isa, "the instruction-set path of this model's int8 conv kernels")
      .def_property_readonly("weight_bits", &ResNet50::weight_bits, "7 or 8: the range of the int8 weights")
      .def_property_readonly("winograd", &ResNet50::winograd, "whether any 3x3 stride-1 conv runs as Winograd")
      .def("logits", &py_logits, py::arg("x"), py::arg("interrupt") = py::none(),
           "float32 (224, 224, 3) HWC image -> float32 (1000,) logits; a batch (N, 224, 224, 3) -> (N, 1000); "
           "interrupt: an Interrupt whose set() stops the call at its next layer (KeyboardInterrupt)")
      .def("profile", &py_profile, py::arg("x"), py::arg("interrupt") = py::none(),
           "one forward pass with per-layer timers");

  m.def("conv_int8", &py_conv_int8, py::arg("x"), py::arg("weight"), py::arg("scale"), py::arg("bias"),
        py::arg("stride") = 1, py::arg("pad") = 0, py::arg("residual") = py::none(), py::arg("res_scale") = 0.0f,
        py::arg("relu") = true, py::arg("out_scale") = py::none(), py::arg("isa") = "", py::arg("winograd") = false,
        "the network's int8 conv: x uint8 (H, W, Cin) or (N, H, W, Cin), weight int8 (Cout, K, K, Cin) OHWI, scale "
        "and bias float32 (Cout,): r = fma(float(int32 sum), scale, bias), + residual (uint8: fma(float(res), "
        "res_scale, r); float32: r + res), ReLU if relu; out_scale None: r as float32, else uint8 "
        "clamp(round_half_even(r * (1 / out_scale)), 0, 255); isa as for Model; on 'avx2' and 'avx512' every weight must "
        "be in -64 .. 63 (vpmaddubsw); winograd=True: as the exact integer Winograd F(2x2, 3x3) (3x3, stride 1, pad "
        "1, channels multiples of 64, no residual), the same values as direct");
  m.def("cpu_isas", [] {
    std::vector<std::string> out = {"avx2"};
    if (cpu_has_avx512()) out.push_back("avx512");
    if (cpu_has_avx512_vnni()) out.push_back("avx512_vnni");
    return out;
  }, "the instruction-set paths this CPU can run, best last");
  m.def("fc", &py_fc, py::arg("x"), py::arg("weight"), py::arg("bias"), "x (Cin,), weight (Cout, Cin) -> (Cout,)");
}
