// Raising a flowrun Status as the matching flowrun.errors exception
// (ABORTED → FencedError, DATA_LOSS → DivergenceError, store codes →
// StoreError, bad input → UsageError; the table is flowrun/errors.py's).
// Must be called with the GIL held.
#pragma once

#include <string>

#include <nanobind/nanobind.h>

#include "flowrun/status.h"

namespace flowrun::python {

[[noreturn]] inline void RaiseStatus(const Status& status) {
  namespace nb = nanobind;
  nb::object errors = nb::module_::import_("flowrun.errors");
  nb::object exc = errors.attr("_from_status")(std::string(StatusCodeName(status.code())), status.message());
  PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.ptr())), exc.ptr());
  throw nb::python_error();
}

template <typename T>
T ValueOrRaise(StatusOr<T> v) {
  if (!v.ok()) RaiseStatus(v.status());
  return std::move(v).value();
}

inline void OkOrRaise(const Status& s) {
  if (!s.ok()) RaiseStatus(s);
}

}  // namespace flowrun::python
