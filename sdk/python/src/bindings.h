// The parts of flowrun._core, one function per bound concept (see core_module.cc).
#pragma once

#include <nanobind/nanobind.h>

namespace flowrun::python {

// Exit codes, fingerprints, JSON Schema validation: pure functions, no I/O.
void BindContract(nanobind::module_& m);
// The price table (USD per million tokens, from YAML).
void BindPrices(nanobind::module_& m);
// flowrun::Execution, the step-wise engine (execution.h), and its value types.
void BindExecution(nanobind::module_& m);

}  // namespace flowrun::python
