// Binding of PriceTable: the same prices a C++ agent and `flowrunctl costs` use.
#include <optional>
#include <string>
#include <utility>

#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>

#include "bindings.h"
#include "flowrun/price_table.h"

namespace nb = nanobind;

namespace flowrun::python {

namespace {

PriceTable OrThrow(StatusOr<PriceTable> t) {
  if (!t.ok()) throw nb::value_error(t.status().message().c_str());
  return std::move(t).value();
}

}  // namespace

void BindPrices(nb::module_& m) {
  nb::class_<PriceTable>(m, "PriceTable", "USD per million tokens per model (runtime-lib/include/flowrun/price_table.h).")
      .def(nb::init<>())
      .def_static("load_file", [](const std::string& path) { return OrThrow(PriceTable::LoadFile(path)); },
                  nb::arg("path"))
      .def_static("parse",
                  [](const std::string& yaml, const std::string& source) { return OrThrow(PriceTable::Parse(yaml, source)); },
                  nb::arg("yaml_text"), nb::arg("source_name") = "<string>")
      .def("__len__", &PriceTable::size)
      .def(
          "price",
          [](const PriceTable& t, const std::string& model, int64_t input_tokens, int64_t output_tokens,
             int64_t cached_tokens, std::optional<double> cost_usd) {
            LlmCall call;
            call.model = model;
            call.input_tokens = input_tokens;
            call.output_tokens = output_tokens;
            call.cached_tokens = cached_tokens;
            call.cost_usd = cost_usd;
            PricedLlmCall p = t.Price(call);
            return std::make_pair(p.cost_usd, p.price_source);
          },
          nb::arg("model"), nb::arg("input_tokens"), nb::arg("output_tokens"), nb::arg("cached_tokens") = 0,
          nb::arg("cost_usd").none() = nb::none(),
          "(cost in USD or None when unknown, price source: 'reported', 'price-table:<model>' or 'unknown').");
}

}  // namespace flowrun::python
