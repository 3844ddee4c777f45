// Bindings of the agent/controller contract that need no store: exit codes,
// checkpoint fingerprints and the answer-schema validator. The validator is
// the one the controller and flowrunctl run when an answer is recorded, so a
// Python test can prove pydantic and it agree.
#include <exception>
#include <optional>
#include <string>

#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nlohmann/json.hpp>

#include "bindings.h"
#include "flowrun/flow.h"
#include "flowrun/outcome.h"
#include "flowrun/schema_validator.h"

namespace nb = nanobind;

namespace flowrun::python {

namespace {

nlohmann::json ParseOrThrow(const std::string& text, const char* what) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw nb::value_error((std::string(what) + " is not valid JSON: " + e.what()).c_str());
  } catch (const nlohmann::json::exception& e) {
    // out_of_range.406: a number no double can hold (1e309, -1e400). JSON text
    // allows it, the validator cannot judge it: bad input, so ValueError.
    throw nb::value_error(
        (std::string(what) + " holds a number outside the range of a double (finite IEEE 754): " + e.what())
            .c_str());
  }
}

std::optional<CheckpointKind> ParseKind(const std::string& kind) {
  if (kind == "step") return CheckpointKind::kStep;
  if (kind == "wait") return CheckpointKind::kWait;
  return std::nullopt;
}

}  // namespace

void BindContract(nb::module_& m) {
  m.attr("EXIT_OK") = static_cast<int>(kExitOk);
  m.attr("EXIT_FLOW_FAILED") = static_cast<int>(kExitFlowFailed);
  m.attr("EXIT_CONFIG_ERROR") = static_cast<int>(kExitConfigError);
  m.attr("EXIT_DATABASE_UNAVAILABLE") = static_cast<int>(kExitDatabaseUnavailable);
  m.attr("EXIT_FENCED") = static_cast<int>(kExitFenced);
  m.attr("EXIT_DIVERGENCE") = static_cast<int>(kExitDivergence);

  m.def(
      "validate_against_schema",
      [](const std::string& schema_json, const std::string& value_json) -> std::optional<std::string> {
        nlohmann::json schema = ParseOrThrow(schema_json, "schema");
        nlohmann::json value = ParseOrThrow(value_json, "value");
        Status st = Status::Ok();
        try {
          st = ValidateAgainstSchema(schema, value);
        } catch (const std::exception& e) {
          // valijson compiles a "pattern" while validating: a regex std::regex refuses throws here.
          throw nb::value_error((std::string("schema cannot be evaluated: ") + e.what()).c_str());
        }
        if (st.ok()) return std::nullopt;
        return st.message();
      },
      nb::arg("schema_json"), nb::arg("value_json"),
      "None when value_json satisfies schema_json (the runtime's and the controller's validator), "
      "else the reason. ValueError when either is not JSON or holds a number no double can represent "
      "(1e309).");

  m.def(
      "checkpoint_fingerprint",
      [](const std::string& kind, const std::string& name, std::optional<std::string> inputs_json) {
        auto k = ParseKind(kind);
        if (!k) throw nb::value_error(("kind must be 'step' or 'wait', got '" + kind + "'").c_str());
        std::optional<nlohmann::json> inputs;
        if (inputs_json) inputs = ParseOrThrow(*inputs_json, "inputs");
        return CheckpointFingerprint(*k, name, inputs);
      },
      nb::arg("kind"), nb::arg("name"), nb::arg("inputs_json").none() = nb::none(),
      "The fingerprint the runtime records for a checkpoint (kind 'step' or 'wait').");
}

}  // namespace flowrun::python
