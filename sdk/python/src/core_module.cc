// flowrun._core: the Python SDK's binding of the C++ runtime (nanobind).
//
// The binding is deliberately narrow and exchanges JSON *text*: Python turns
// its values into JSON (pydantic), C++ parses, canonicalises, validates,
// fingerprints, prices and stores them. Everything that must behave the same
// for a C++ agent, a Python agent and the controller stays in runtime-lib.
// Each concept is bound in its own file; this one only assembles the module.
#include <nanobind/nanobind.h>

#include "bindings.h"

NB_MODULE(_core, m) {
  m.doc() = "flowrun's C++ runtime, bound for the Python SDK (internal: use the flowrun package)";
  flowrun::python::BindContract(m);
  flowrun::python::BindPrices(m);
  flowrun::python::BindExecution(m);
}
