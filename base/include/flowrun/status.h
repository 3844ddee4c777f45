// Status and StatusOr: flowrun's one error model at module boundaries.
//
// Modelled on absl::Status. Library exceptions (libpqxx, cpprestsdk, yaml-cpp,
// nlohmann::json) are converted to a Status in the adapter that calls the
// library; code above an adapter never sees a third-party exception.
//
// Thread safety: value types; distinct objects may be used concurrently.
#pragma once

#include <cassert>
#include <optional>
#include <map>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace flowrun {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,     // the caller's input is wrong; retrying the same call fails again
  kNotFound,            // the named run, wait, checkpoint or artifact does not exist
  kAlreadyExists,       // e.g. a wait that was already answered (first answer wins)
  kFailedPrecondition,  // the system is not in a state that allows the call (e.g. fenced)
  kUnavailable,         // transient: database or endpoint unreachable; retrying may succeed
  kUnknown,             // the outcome is not known (e.g. a commit whose ack was lost)
  kDeadlineExceeded,    // a timeout or a wait's deadline passed
  kResourceExhausted,   // a size cap or budget was exceeded
  kAborted,             // the operation was superseded (fencing: a newer execution holds the run)
  kDataLoss,            // stored data is inconsistent with the code (e.g. divergence)
  kInternal,            // an invariant broke; a bug
  kUnauthenticated,     // no valid credentials (HTTP 401)
  kPermissionDenied,    // authenticated but not allowed (HTTP 403)
  kUnimplemented,       // the operation is not supported by this implementation
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }
  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "CODE: message", for logs and error texts.
  std::string ToString() const;

  // Returns a copy whose message is prefixed with `context: `.
  Status WithContext(std::string_view context) const;

  // Structured details an adapter attaches for callers that branch on them
  // (like absl::Status payloads), e.g. the Kubernetes client's "k8s.reason".
  void SetPayload(std::string key, std::string value) { payloads_[std::move(key)] = std::move(value); }
  std::optional<std::string> GetPayload(const std::string& key) const {
    auto it = payloads_.find(key);
    if (it == payloads_.end()) return std::nullopt;
    return it->second;
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
  std::map<std::string, std::string> payloads_;
};

inline std::ostream& operator<<(std::ostream& os, const Status& s) { return os << s.ToString(); }

inline Status InvalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status AlreadyExists(std::string m) { return {StatusCode::kAlreadyExists, std::move(m)}; }
inline Status FailedPrecondition(std::string m) { return {StatusCode::kFailedPrecondition, std::move(m)}; }
inline Status Unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status UnknownError(std::string m) { return {StatusCode::kUnknown, std::move(m)}; }
inline Status DeadlineExceeded(std::string m) { return {StatusCode::kDeadlineExceeded, std::move(m)}; }
inline Status ResourceExhausted(std::string m) { return {StatusCode::kResourceExhausted, std::move(m)}; }
inline Status Aborted(std::string m) { return {StatusCode::kAborted, std::move(m)}; }
inline Status DataLoss(std::string m) { return {StatusCode::kDataLoss, std::move(m)}; }
inline Status Internal(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
inline Status Unimplemented(std::string m) { return {StatusCode::kUnimplemented, std::move(m)}; }

// Either a value or a non-OK Status. Accessing value() of an error is a bug
// (asserted in debug builds, std::terminate in release).
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(T value) : v_(std::move(value)) {}  // NOLINT: implicit like absl
  StatusOr(Status status) : v_(std::move(status)) {  // NOLINT
    if (std::get<Status>(v_).ok()) v_ = Status(StatusCode::kInternal, "StatusOr built from OK status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { Check(); return std::get<T>(v_); }
  const T& value() const& { Check(); return std::get<T>(v_); }
  T&& value() && { Check(); return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  void Check() const {
    if (!ok()) {
      assert(false && "StatusOr::value() on an error");
      std::terminate();
    }
  }
  std::variant<T, Status> v_;
};

}  // namespace flowrun

// Propagates a non-OK Status to the caller.
#define FLOWRUN_RETURN_IF_ERROR(expr)          \
  do {                                         \
    ::flowrun::Status _st = (expr);            \
    if (!_st.ok()) return _st;                 \
  } while (0)

#define FLOWRUN_CONCAT_INNER(a, b) a##b
#define FLOWRUN_CONCAT(a, b) FLOWRUN_CONCAT_INNER(a, b)
// Assigns the value of a StatusOr expression to `lhs`, or returns its Status.
#define FLOWRUN_ASSIGN_OR_RETURN(lhs, expr)                                   \
  auto FLOWRUN_CONCAT(_so_, __LINE__) = (expr);                               \
  if (!FLOWRUN_CONCAT(_so_, __LINE__).ok()) return FLOWRUN_CONCAT(_so_, __LINE__).status(); \
  lhs = std::move(FLOWRUN_CONCAT(_so_, __LINE__)).value()
