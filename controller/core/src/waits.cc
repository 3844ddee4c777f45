#include "waits.h"

namespace flowrun::controller {

using nlohmann::json;

namespace {

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace

// status.wait for an open question, cut to the status' size limits.
WaitStatus WaitStatusOf(const OpenWait& w, const ControllerConfig& cfg) {
  WaitStatus ws;
  ws.name = WaitKey(w);
  ws.question = TruncateUtf8(w.question, cfg.max_question_bytes);
  if (!w.schema.is_null() && Dump(w.schema).size() <= cfg.max_schema_bytes) ws.schema = w.schema;
  if (w.asked_at != TimePoint{}) ws.asked_at = FormatTime(w.asked_at);
  if (w.deadline) ws.deadline = FormatTime(*w.deadline);
  ws.on_timeout = std::string(OnTimeoutName(w.on_timeout));
  return ws;
}

std::string WaitKey(const OpenWait& w) {
  return w.occurrence > 1 ? w.name + "#" + std::to_string(w.occurrence) : w.name;
}

std::string DbWaitName(const std::string& key) {
  auto pos = key.rfind('#');
  if (pos == std::string::npos || pos + 1 >= key.size()) return key;
  if (key.find_first_not_of("0123456789", pos + 1) != std::string::npos) return key;
  return key.substr(0, pos);
}

// Who wrote status.answers[key]: the field manager recorded in managedFields.
std::string AnsweredBy(const json& mf, const std::string& key) {
  for (auto it = mf.rbegin(); it != mf.rend(); ++it) {
    const json& f = *it;
    if (!f.is_object() || !f.contains("fieldsV1")) continue;
    const json& fields = f["fieldsV1"];
    if (fields.is_object() && fields.contains("f:status") && fields["f:status"].is_object() &&
        fields["f:status"].contains("f:answers") && fields["f:status"]["f:answers"].is_object() &&
        fields["f:status"]["f:answers"].contains("f:" + key) && f.contains("manager") && f["manager"].is_string())
      return "kubernetes:" + f["manager"].get<std::string>();
  }
  return "kubernetes";
}

}  // namespace flowrun::controller
