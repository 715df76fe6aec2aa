// binding.cpp — the Python face of this stage: pyresnet._vN (the name comes from PYRESNET_MODULE, set by CMake).
//
// Exposes Model(weights_dir, threads) with logits(x) and profile(x), and every op on its own, on numpy arrays.
// The ops: fc (the network's pooling runs on bf16 activations, inside the model only) and to_bf16.
// Every array is checked by common/binding.h before any C++ touches it: the dtype, C-contiguous layout, the number
// of dimensions and sizes that fit an int; each wrapper here then checks what only its op knows (matching sizes, a
// window that fits the padded input). A wrong array raises ValueError; nothing is converted silently and nothing
// is read out of bounds. Long work runs with the GIL released; logits() and profile() take an optional Interrupt
// (common/interrupt.h) that stops the call at its next layer.
//
// conv_fused() is the conv the network runs (plan, packed weights, padded input, every task), on its own.
//
// Model and conv_fused() take an optional isa ("avx2", "avx512": bf16 widened to fp32, FMA; "avx512_bf16":
// vdpbf16ps; default: $PYRESNET_ISA, else the CPU's best); Model.isa reports it, so a test can force the AVX2 path on
// any CPU.
//
// Model takes winograd=True (the 3x3 stride-1 convs by Winograd) or False (every conv direct), reported as
// Model.winograd, so the two can be compared in one process. Only True or False is taken (noconvert): pybind11
// would otherwise read None, 2 or 0.5 as a bool without a word. conv_winograd() runs the Winograd conv alone.
//
// Model takes max_batch (the images that go through layer4 together; buffers sized for them at load) and
// logits() takes one image (224, 224, 3) -> (1000,) or a batch (N, 224, 224, 3) -> (N, 1000), run in chunks of
// max_batch; profile() takes a batch too. conv_fused() and conv_winograd() take an optional leading batch dimension
// on x (and residual).
//
// conv_fused() and conv_winograd() take and return fp32 arrays but compute as the network does, in bf16 (their input,
// weights and residual rounded to bf16 — conv_winograd()'s weights and input after their transforms —, the output
// rounded to bf16 and widened back). to_bf16(x): the rounding the stage uses
// (nearest even), on a float32 array, for tests.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>

#include "common/binding.h"
#include "network.h"
#include "ops.h"
#include "ops/conv_fused.h"
#include "weights.h"

namespace {

// The network's conv, bias, optional residual and ReLU on numpy arrays (ops/conv_fused.h).
py::array_t<float> py_conv_fused(const py::array& x, const py::array& w, const py::array& bias, int stride, int pad,
                                 const std::optional<py::array>& residual, bool relu, const std::string& isa) {
  int n = 1;
  const Shape s = hwc_batch(x, "conv_fused input", &n);
  const float* wp = checked(w, "conv_fused weight (OHWI)", 4);
  const int k = static_cast<int>(w.shape(1));
  if (w.shape(2) != k) throw py::value_error("conv_fused weight (OHWI): kernel must be square");
  if (w.shape(3) != s.c)
    throw py::value_error("conv_fused weight (OHWI): has " + std::to_string(w.shape(3)) +
                          " input channels, input has " + std::to_string(s.c));
  check_window(s, k, stride, pad, "conv_fused");
  const ConvParams p{static_cast<int>(w.shape(0)), k, stride, pad};
  const float* bp = vec(bias, "conv_fused bias", p.cout);
  const Shape o = conv2d_shape(s, p);
  const float* rp = nullptr;
  if (residual) {
    int rn = 1;
    const Shape r = hwc_batch(*residual, "conv_fused residual", &rn);
    if (residual->ndim() != x.ndim() || rn != n || r.h != o.h || r.w != o.w || r.c != o.c)
      throw py::value_error("conv_fused residual: expected the output's shape (" +
                            (x.ndim() == 4 ? std::to_string(n) + ", " : "") + std::to_string(o.h) + ", " +
                            std::to_string(o.w) + ", " + std::to_string(o.c) + ")");
    rp = static_cast<const float*>(residual->data());
  }
  const ConvKernels kern = conv_kernels(isa);
  plan_conv(s, p, kern);  // a shape the kernels cannot run is a ValueError here, before any work
  py::array_t<float> out = new_hwc_like(x, n, o);
  float* op = out.mutable_data();
  const float* xp = static_cast<const float*>(x.data());
  {
    py::gil_scoped_release nogil;
    conv_fused(xp, n, s, wp, bp, p, rp, relu, kern, op);
  }
  return out;
}

// The network's Winograd conv (3x3, stride 1, pad 1), bias and ReLU on numpy arrays (ops/winograd.h), computed in
// bf16 as the network does (conv_fused.h, conv_winograd()).
py::array_t<float> py_conv_winograd(const py::array& x, const py::array& w, const py::array& bias, bool relu, int tile,
                                    const std::string& isa) {
  int n = 1;
  const Shape s = hwc_batch(x, "conv_winograd input", &n);
  const float* wp = checked(w, "conv_winograd weight (OHWI)", 4);
  if (w.shape(1) != 3 || w.shape(2) != 3)
    throw py::value_error("conv_winograd weight (OHWI): only 3x3 kernels, got " + std::to_string(w.shape(1)) + "x" +
                          std::to_string(w.shape(2)));
  if (w.shape(3) != s.c)
    throw py::value_error("conv_winograd weight (OHWI): has " + std::to_string(w.shape(3)) +
                          " input channels, input has " + std::to_string(s.c));
  const int cout = static_cast<int>(w.shape(0));
  const float* bp = vec(bias, "conv_winograd bias", cout);
  const ConvKernels kern = conv_kernels(isa);
  plan_conv(s, {cout, 3, 1, 1}, kern, tile);  // a shape or tile the kernels cannot run is a ValueError here
  py::array_t<float> out = new_hwc_like(x, n, {s.h, s.w, cout});
  float* op = out.mutable_data();
  const float* xp = static_cast<const float*>(x.data());
  {
    py::gil_scoped_release nogil;
    conv_winograd(xp, n, s, wp, bp, cout, tile, relu, kern, op);
  }
  return out;
}

// x rounded to bf16 (ops.h, to_bf16(): nearest, ties to even; NaN stays NaN) and widened back to float32, any shape.
py::array_t<float> py_to_bf16(const py::array& x) {
  const float* xp = checked(x, "to_bf16 input", static_cast<int>(x.ndim()));
  std::vector<py::ssize_t> shape(x.shape(), x.shape() + x.ndim());
  py::array_t<float> out(shape);
  float* op = out.mutable_data();
  for (py::ssize_t i = 0; i < x.size(); i++) op[i] = from_bf16(to_bf16(xp[i]));
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
      .def(py::init<const std::string&, int, const std::string&, bool, int>(), py::arg("weights_dir"),
           py::arg("threads") = 1, py::arg("isa") = "", py::arg("winograd").noconvert() = true,
           py::arg("max_batch") = ResNet50::kDefaultBatch, py::call_guard<py::gil_scoped_release>(),
           "isa: 'avx2' or 'avx512' (bf16 widened to fp32, FMA), 'avx512_bf16' (vdpbf16ps), or '' / 'auto' for "
           "$PYRESNET_ISA, else the best this CPU has; winograd: the 3x3 stride-1 convs by Winograd F(m x m, 3 x 3) "
           "(True) or directly (False); max_batch: 1 .. 1024, the images that go through layer4 together, buffers "
           "sized for them at load (a larger batch runs in chunks)")
      .def_property_readonly("threads", &ResNet50::threads)
      .def_property_readonly("max_batch", &ResNet50::max_batch, "the images that go through layer4 together")
      .def_property_readonly("isa", &ResNet50::isa, "the instruction set of this model's conv kernels")
      .def_property_readonly("winograd", &ResNet50::winograd, "whether the 3x3 stride-1 convs run as Winograd")
      .def("logits", &py_logits, py::arg("x"), py::arg("interrupt") = py::none(),
           "float32 (224, 224, 3) HWC image -> float32 (1000,) logits; a batch (N, 224, 224, 3) -> (N, 1000); "
           "interrupt: an Interrupt whose set() stops the call at its next layer (KeyboardInterrupt)")
      .def("profile", &py_profile, py::arg("x"), py::arg("interrupt") = py::none(),
           "one forward pass with per-layer timers");

  m.def("conv_fused", &py_conv_fused, py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("stride") = 1,
        py::arg("pad") = 0, py::arg("residual") = py::none(), py::arg("relu") = true, py::arg("isa") = "",
        "the network's conv: x (H, W, Cin) or a batch (N, H, W, Cin), weight (Cout, K, K, Cin) OHWI, bias (Cout,), "
        "residual None or the output's shape -> relu(conv + bias + residual) ([N,] Ho, Wo, Cout), computed in bf16 "
        "as the network does (x, weight and residual rounded to bf16, fp32 sums, the output rounded to bf16); isa as "
        "for Model");
  m.def("conv_winograd", &py_conv_winograd, py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("relu") = true,
        py::arg("tile") = 4, py::arg("isa") = "",
        "the network's Winograd conv F(tile x tile, 3 x 3): x (H, W, Cin) or a batch (N, H, W, Cin), weight "
        "(Cout, 3, 3, Cin) OHWI, bias (Cout,) -> relu(conv(stride 1, pad 1) + bias) ([N,] H, W, Cout), computed as the "
        "network does (x rounded to bf16, the transformed weights and input rounded to bf16, fp32 sums, the output "
        "rounded to bf16); isa as for Model");
  m.def("to_bf16", &py_to_bf16, py::arg("x"),
        "float32 array -> the same values rounded to bf16 (nearest, ties to even) as float32: the stage's rounding");
  m.def("fc", &py_fc, py::arg("x"), py::arg("weight"), py::arg("bias"), "x (Cin,), weight (Cout, Cin) -> (Cout,)");
}
