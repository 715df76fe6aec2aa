// binding.cpp — the Python face of this stage: pyresnet._vN (the name comes from PYRESNET_MODULE, set by CMake).
//
// Exposes Model(weights_dir, threads) with logits(x) and profile(x), and every op on its own, on numpy arrays.
// The ops: maxpool, avgpool and fc.
// Every array is checked by common/binding.h before any C++ touches it: the dtype, C-contiguous layout, the number
// of dimensions and sizes that fit an int; each wrapper here then checks what only its op knows (matching sizes, a
// window that fits the padded input). A wrong array raises ValueError; nothing is converted silently and nothing
// is read out of bounds. Long work runs with the GIL released; logits() and profile() take an optional Interrupt
// (common/interrupt.h) that stops the call at its next layer.
//
// conv_fused() is the conv the network runs (plan, packed weights, padded input, every task), on its own.
//
// Model and conv_fused() take an optional isa ("avx2", "avx512"; default: $PYRESNET_ISA, else the CPU's best);
// Model.isa reports it, so a test can force the AVX2 path on any CPU.
//
// Model takes max_batch (the images that go through layer4 together; buffers sized for them at load) and
// logits() takes one image (224, 224, 3) -> (1000,) or a batch (N, 224, 224, 3) -> (N, 1000), run in chunks of
// max_batch; profile() takes a batch too. conv_fused() takes an optional leading batch dimension on x (and
// residual).
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

py::array_t<float> py_maxpool(const py::array& x, int kernel, int stride, int pad) {
  const Shape s = hwc(x, "maxpool input");
  check_window(s, kernel, stride, pad, "maxpool");
  py::array_t<float> out = new_hwc(maxpool_shape(s, kernel, stride, pad));
  maxpool(static_cast<const float*>(x.data()), s, kernel, stride, pad, out.mutable_data());
  return out;
}

py::array_t<float> py_avgpool(const py::array& x) {
  const Shape s = hwc(x, "avgpool input");
  py::array_t<float> out(s.c);
  avgpool(static_cast<const float*>(x.data()), s, out.mutable_data());
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
      .def(py::init<const std::string&, int, const std::string&, int>(), py::arg("weights_dir"),
           py::arg("threads") = 1, py::arg("isa") = "", py::arg("max_batch") = ResNet50::kDefaultBatch,
           py::call_guard<py::gil_scoped_release>(),
           "isa: 'avx2', 'avx512', or '' for $PYRESNET_ISA, else the best this CPU has; max_batch: 1 .. 1024, the "
           "images that go through layer4 together, buffers sized for them at load (a larger batch runs in chunks)")
      .def_property_readonly("threads", &ResNet50::threads)
      .def_property_readonly("max_batch", &ResNet50::max_batch, "the images that go through layer4 together")
      .def_property_readonly("isa", &ResNet50::isa, "the instruction set of this model's conv kernels")
      .def("logits", &py_logits, py::arg("x"), py::arg("interrupt") = py::none(),
           "float32 (224, 224, 3) HWC image -> float32 (1000,) logits; a batch (N, 224, 224, 3) -> (N, 1000); "
           "interrupt: an Interrupt whose set() stops the call at its next layer (KeyboardInterrupt)")
      .def("profile", &py_profile, py::arg("x"), py::arg("interrupt") = py::none(),
           "one forward pass with per-layer timers");

  m.def("conv_fused", &py_conv_fused, py::arg("x"), py::arg("weight"), py::arg("bias"), py::arg("stride") = 1,
        py::arg("pad") = 0, py::arg("residual") = py::none(), py::arg("relu") = true, py::arg("isa") = "",
        "the network's conv: x (H, W, Cin) or a batch (N, H, W, Cin), weight (Cout, K, K, Cin) OHWI, bias (Cout,), "
        "residual None or the output's shape -> relu(conv + bias + residual) ([N,] Ho, Wo, Cout); isa as for Model");
  m.def("maxpool", &py_maxpool, py::arg("x"), py::arg("kernel") = 3, py::arg("stride") = 2, py::arg("pad") = 1);
  m.def("avgpool", &py_avgpool, py::arg("x"), "global average pool (H, W, C) -> (C,)");
  m.def("fc", &py_fc, py::arg("x"), py::arg("weight"), py::arg("bias"), "x (Cin,), weight (Cout, Cin) -> (Cout,)");
}
