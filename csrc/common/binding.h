// common/binding.h — what every stage's binding.cpp does the same way: check the numpy arrays that reach C++, turn a
// profile into Python objects, and set up the module (its flags, its WeightsError, the Interrupt of a long call).
//
// Arrays are checked before any C++ touches them: the dtype, C-contiguous layout, the number of dimensions and sizes
// that fit an int. A wrong array raises ValueError naming the argument; nothing is converted silently and nothing is
// read out of bounds. Include it in binding.cpp only: the functions are inline, each module has its own copy.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <limits>
#include <string>

#include "common/interrupt.h"
#include "common/profile.h"
#include "common/shape.h"
#include "common/weights_error.h"

namespace py = pybind11;

// Checks dtype (T), layout and rank of an input array; returns its data pointer.
template <class T = float>
inline const T* checked(const py::array& a, const char* what, int ndim) {
  if (!a.dtype().is(py::dtype::of<T>()))
    throw py::value_error(std::string(what) + ": expected a " + py::str(py::dtype::of<T>()).cast<std::string>() +
                          " array, got dtype " + py::str(a.dtype()).cast<std::string>());
  if (a.ndim() != ndim)
    throw py::value_error(std::string(what) + ": expected " + std::to_string(ndim) + " dimensions, got " +
                          std::to_string(a.ndim()));
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(what) + ": array must be C-contiguous (use numpy.ascontiguousarray)");
  for (int d = 0; d < ndim; d++)
    if (a.shape(d) <= 0 || a.shape(d) > std::numeric_limits<int>::max() / 16)
      throw py::value_error(std::string(what) + ": dimension " + std::to_string(d) + " has size " +
                            std::to_string(a.shape(d)));
  return static_cast<const T*>(a.data());
}

// An HWC activation (batch 1): float32, shape (H, W, C).
inline Shape hwc(const py::array& a, const char* what) {
  checked(a, what, 3);
  return {static_cast<int>(a.shape(0)), static_cast<int>(a.shape(1)), static_cast<int>(a.shape(2))};
}

// HWC activations of dtype T, one (H, W, C) or a batch (N, H, W, C): the shape of one, and the count in *n.
template <class T = float>
inline Shape hwc_batch(const py::array& a, const char* what, int* n) {
  if (a.ndim() != 3 && a.ndim() != 4)
    throw py::value_error(std::string(what) + ": expected (H, W, C) or (N, H, W, C), got " +
                          std::to_string(a.ndim()) + " dimensions");
  checked<T>(a, what, static_cast<int>(a.ndim()));
  const int d = static_cast<int>(a.ndim()) - 3;
  *n = d ? static_cast<int>(a.shape(0)) : 1;
  return {static_cast<int>(a.shape(d)), static_cast<int>(a.shape(d + 1)), static_cast<int>(a.shape(d + 2))};
}

// A 1-D float32 vector of exactly n values.
inline const float* vec(const py::array& a, const char* what, py::ssize_t n) {
  const float* p = checked(a, what, 1);
  if (a.shape(0) != n)
    throw py::value_error(std::string(what) + ": expected " + std::to_string(n) + " values, got " +
                          std::to_string(a.shape(0)));
  return p;
}

// A new float32 HWC output of shape s; new_hwc_like: with the leading N of `like` when it has one.
inline py::array_t<float> new_hwc(Shape s) { return py::array_t<float>({s.h, s.w, s.c}); }
inline py::array_t<float> new_hwc_like(const py::array& like, int n, Shape s) {
  if (like.ndim() == 4) return py::array_t<float>({n, s.h, s.w, s.c});
  return new_hwc(s);
}

// A kernel x kernel window with this stride and padding must fit the padded input.
inline void check_window(Shape s, int kernel, int stride, int pad, const char* op) {
  if (kernel < 1 || stride < 1 || pad < 0 || pad >= kernel)
    throw py::value_error(std::string(op) + ": need kernel >= 1, stride >= 1 and 0 <= pad < kernel");
  if (s.h + 2 * pad < kernel || s.w + 2 * pad < kernel)
    throw py::value_error(std::string(op) + ": the " + std::to_string(kernel) + "x" + std::to_string(kernel) +
                          " window does not fit the padded input");
}

// A profiled pass as Python objects: [(name, op, (h, w, c), flops, ms), ...] in execution order.
inline py::list profile_records(const Profiler& prof) {
  py::list out;
  for (const LayerRecord& r : prof.records)
    out.append(py::make_tuple(r.name, r.op, py::make_tuple(r.out.h, r.out.w, r.out.c), r.flops, r.ms));
  return out;
}

// The module's constants (compile flags and compiler, set by CMake), its WeightsError, and Interrupt: a flag that
// Model.logits(x, interrupt) and Model.profile(x, interrupt) check at every layer (common/interrupt.h); a raised
// one ends the call with KeyboardInterrupt.
//
// Every stage defines its own ResNet50 and WeightsError under the same names, and several stages are loaded into one
// Python process (tests, bench). To pybind11 (and to C++ exception matching, which compares type names across shared
// objects) they look like one type, so a globally registered second "Model" would fail to import and a global
// exception translator would catch another stage's WeightsError: both are registered module-local (the binding
// passes py::module_local() to its Model class).
inline void init_module(py::module_& m) {
  m.doc() = "one stage of the pyresnet lab: ResNet-50 and its ops in C++";
  m.attr("FLAGS") = PYRESNET_FLAGS;
  m.attr("COMPILER") = PYRESNET_COMPILER;
  py::register_local_exception<WeightsError>(m, "WeightsError", PyExc_RuntimeError);
  py::class_<Interrupt>(m, "Interrupt", py::module_local())
      .def(py::init<>())
      .def("set", &Interrupt::set, "stop the call at its next layer (from any thread)")
      .def_property_readonly("is_set", &Interrupt::is_set);
  py::register_local_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Interrupted& e) {
      PyErr_SetString(PyExc_KeyboardInterrupt, e.what());
    }
  });
}
