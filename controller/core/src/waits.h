// The open question and its answers: how a wait is named in status.answers
// ("<name>" or "<name>#<occurrence>") and in the database ("<name>"), who
// answered (managedFields), and status.wait for an OpenWait.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "flowrun/controller/config.h"
#include "flowrun/controller/types.h"
#include "flowrun/store_types.h"

namespace flowrun::controller {

// status.wait for an open question, cut to the status' size limits (a schema
// over max_schema_bytes is left out: PostgreSQL has it).
WaitStatus WaitStatusOf(const OpenWait& w, const ControllerConfig& cfg);
// The key of status.answers for a wait: "<name>", or "<name>#<n>" from its
// second occurrence on.
std::string WaitKey(const OpenWait& w);
// The database's wait name for a status.answers key (the "#<n>" cut off when
// it is a number).
std::string DbWaitName(const std::string& key);
// Who wrote status.answers[key]: "kubernetes:<field manager>" from the
// FlowRun's managedFields (newest entry first), or "kubernetes" when none says.
std::string AnsweredBy(const nlohmann::json& managed_fields, const std::string& key);

}  // namespace flowrun::controller
