// binding.cpp — the Python face of this stage: pyresnet._vN (the name comes from PYRESNET_MODULE, set by CMake).
//
// Exposes Model(weights_dir, threads) with logits(x) and profile(x), and every op on its own, on numpy arrays.
// The ops: conv2d, batchnorm, relu, maxpool, avgpool, add and fc.
// Every array is checked by common/binding.h before any C++ touches it: the dtype, C-contiguous layout, the number
// of dimensions and sizes that fit an int; each wrapper here then checks what only its op knows (matching sizes, a
// window that fits the padded input). A wrong array raises ValueError; nothing is converted silently and nothing
// is read out of bounds. Long work runs with the GIL released; logits() and profile() take an optional Interrupt
// (common/interrupt.h) that stops the call at its next layer.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "common/binding.h"
#include "network.h"
#include "ops.h"
#include "weights.h"

namespace {

py::array_t<float> py_conv2d(const py::array& x, const py::array& w, int stride, int pad) {
  const Shape s = hwc(x, "conv2d input");
  const float* wp = checked(w, "conv2d weight (OHWI)", 4);
  const int k = static_cast<int>(w.shape(1));
  if (w.shape(2) != k) throw py::value_error("conv2d weight (OHWI): kernel must be square");
  if (w.shape(3) != s.c)
    throw py::value_error("conv2d weight (OHWI): has " + std::to_string(w.shape(3)) + " input channels, input has " +
                          std::to_string(s.c));
  check_window(s, k, stride, pad, "conv2d");
  const ConvParams p{static_cast<int>(w.shape(0)), k, stride, pad};
  py::array_t<float> out = new_hwc(conv2d_shape(s, p));
  float* op = out.mutable_data();
  const float* xp = static_cast<const float*>(x.data());
  {
    py::gil_scoped_release nogil;
    conv2d(xp, s, wp, p, op);
  }
  return out;
}

py::array_t<float> py_batchnorm(const py::array& x, const py::array& mean, const py::array& var,
                                const py::array& gamma, const py::array& beta, float eps) {
  const Shape s = hwc(x, "batchnorm input");
  const float* m = vec(mean, "batchnorm running_mean", s.c);
  const float* v = vec(var, "batchnorm running_var", s.c);
  const float* g = vec(gamma, "batchnorm weight", s.c);
  const float* b = vec(beta, "batchnorm bias", s.c);
  py::array_t<float> out = new_hwc(s);
  float* op = out.mutable_data();
  const float* xp = static_cast<const float*>(x.data());
  {
    py::gil_scoped_release nogil;
    batchnorm(xp, s, m, v, g, b, eps, op);
  }
  return out;
}

py::array_t<float> py_relu(const py::array& x) {
  const Shape s = hwc(x, "relu input");
  py::array_t<float> out = new_hwc(s);
  relu(static_cast<const float*>(x.data()), s.size(), out.mutable_data());
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

py::array_t<float> py_add(const py::array& a, const py::array& b) {
  const Shape s = hwc(a, "add input a");
  const Shape t = hwc(b, "add input b");
  if (s.h != t.h || s.w != t.w || s.c != t.c) throw py::value_error("add: inputs have different shapes");
  py::array_t<float> out = new_hwc(s);
  add(static_cast<const float*>(a.data()), static_cast<const float*>(b.data()), s.size(), out.mutable_data());
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

py::array_t<float> py_logits(const ResNet50& net, const py::array& x, const Interrupt* interrupt) {
  const Shape s = hwc(x, "logits input");
  if (s.h != ResNet50::kInput || s.w != ResNet50::kInput || s.c != 3)
    throw py::value_error("logits input: expected shape (224, 224, 3), got (" + std::to_string(s.h) + ", " +
                          std::to_string(s.w) + ", " + std::to_string(s.c) + ")");
  py::array_t<float> out(ResNet50::kClasses);
  float* op = out.mutable_data();
  const float* xp = static_cast<const float*>(x.data());
  {
    py::gil_scoped_release nogil;  // x and out stay alive: this frame holds references to both
    InterruptScope scope(interrupt);  // a raised flag stops the call at its next layer
    net.forward(xp, op);
  }
  return out;
}

// One forward pass with per-layer timers: [(name, op, (h, w, c), flops, ms), ...] in execution order.
py::list py_profile(const ResNet50& net, const py::array& x, const Interrupt* interrupt) {
  const Shape s = hwc(x, "profile input");
  if (s.h != ResNet50::kInput || s.w != ResNet50::kInput || s.c != 3)
    throw py::value_error("profile input: expected shape (224, 224, 3)");
  std::vector<float> logits(ResNet50::kClasses);
  Profiler prof;
  const float* xp = static_cast<const float*>(x.data());
  {
    py::gil_scoped_release nogil;
    InterruptScope scope(interrupt);  // a raised flag stops the call at its next layer
    net.forward(xp, logits.data(), &prof);
  }
  return profile_records(prof);
}

}  // namespace

PYBIND11_MODULE(PYRESNET_MODULE, m) {
  init_module(m);

  py::class_<ResNet50>(m, "Model", py::module_local())
      .def(py::init<const std::string&, int>(), py::arg("weights_dir"), py::arg("threads") = 1,
           py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("threads", &ResNet50::threads)
      .def("logits", &py_logits, py::arg("x"), py::arg("interrupt") = py::none(),
           "float32 (224, 224, 3) HWC image -> float32 (1000,) logits; interrupt: an Interrupt whose set() stops the "
           "call at its next layer (KeyboardInterrupt)")
      .def("profile", &py_profile, py::arg("x"), py::arg("interrupt") = py::none(),
           "one forward pass with per-layer timers");

  m.def("conv2d", &py_conv2d, py::arg("x"), py::arg("weight"), py::arg("stride") = 1, py::arg("pad") = 0,
        "x (H, W, Cin), weight (Cout, K, K, Cin) OHWI -> (Ho, Wo, Cout); no bias");
  m.def("batchnorm", &py_batchnorm, py::arg("x"), py::arg("mean"), py::arg("var"), py::arg("gamma"),
        py::arg("beta"), py::arg("eps") = 1e-5f, "inference BatchNorm over the channels of x (H, W, C)");
  m.def("relu", &py_relu, py::arg("x"));
  m.def("maxpool", &py_maxpool, py::arg("x"), py::arg("kernel") = 3, py::arg("stride") = 2, py::arg("pad") = 1);
  m.def("avgpool", &py_avgpool, py::arg("x"), "global average pool (H, W, C) -> (C,)");
  m.def("add", &py_add, py::arg("a"), py::arg("b"));
  m.def("fc", &py_fc, py::arg("x"), py::arg("weight"), py::arg("bias"), "x (Cin,), weight (Cout, Cin) -> (Cout,)");
}
