#pragma once
// Status and StatusOr<T>: how hangar code reports failure. Our code does not throw.
//
// A Status is either OK or carries a code and a message that names the thing, the value and
// where ("gguf: tensor 'blk.3.ffn_up.weight' ends at byte 8812 but the file has 8000 bytes").
// StatusOr<T> holds either a value or a non-OK Status. Both are plain values: copy them, move
// them, return them. They are not synchronized; like any value, share them across threads only
// through something that is.

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace hangar {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,    // the caller's input is wrong (bad file, bad request field)
  kNotFound,           // a named thing does not exist
  kAlreadyExists,      // a named thing exists already
  kFailedPrecondition, // the system is not in a state to do this
  kOutOfRange,         // a value is outside what is allowed
  kResourceExhausted,  // memory, queue or slot limits
  kUnavailable,        // try again later
  kDeadlineExceeded,   // a timeout fired
  kCancelled,          // the caller gave up
  kUnimplemented,      // not supported (yet)
  kDataLoss,           // a file is corrupt or truncated
  kInternal,           // a bug: an invariant did not hold
};

// The code's name, e.g. "INVALID_ARGUMENT".
std::string_view status_code_name(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  // "INVALID_ARGUMENT: message", or "OK".
  std::string to_string() const;

  // A copy whose message is prefixed with context: "loading 'a.gguf': " + message.
  Status with_context(std::string_view context) const;

  friend bool operator==(const Status& a, const Status& b) {
    return a.code_ == b.code_ && a.message_ == b.message_;
  }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status ok_status() { return Status(); }
inline Status invalid_argument_error(std::string m) {
  return Status(StatusCode::kInvalidArgument, std::move(m));
}
inline Status not_found_error(std::string m) { return Status(StatusCode::kNotFound, std::move(m)); }
inline Status already_exists_error(std::string m) {
  return Status(StatusCode::kAlreadyExists, std::move(m));
}
inline Status failed_precondition_error(std::string m) {
  return Status(StatusCode::kFailedPrecondition, std::move(m));
}
inline Status out_of_range_error(std::string m) {
  return Status(StatusCode::kOutOfRange, std::move(m));
}
inline Status resource_exhausted_error(std::string m) {
  return Status(StatusCode::kResourceExhausted, std::move(m));
}
inline Status unavailable_error(std::string m) {
  return Status(StatusCode::kUnavailable, std::move(m));
}
inline Status deadline_exceeded_error(std::string m) {
  return Status(StatusCode::kDeadlineExceeded, std::move(m));
}
inline Status cancelled_error(std::string m) { return Status(StatusCode::kCancelled, std::move(m)); }
inline Status unimplemented_error(std::string m) {
  return Status(StatusCode::kUnimplemented, std::move(m));
}
inline Status data_loss_error(std::string m) { return Status(StatusCode::kDataLoss, std::move(m)); }
inline Status internal_error(std::string m) { return Status(StatusCode::kInternal, std::move(m)); }

// Either a T or a non-OK Status. Accessing value() of a non-OK StatusOr is a bug (asserts).
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(const Status& status) : data_(status) { assert(!status.ok()); }  // NOLINT
  StatusOr(Status&& status) : data_(std::move(status)) {                    // NOLINT
    assert(!std::get<Status>(data_).ok());
  }
  StatusOr(const T& value) : data_(value) {}       // NOLINT
  StatusOr(T&& value) : data_(std::move(value)) {}  // NOLINT
  template <typename U>
    requires(std::is_constructible_v<T, U &&> && !std::is_same_v<std::decay_t<U>, Status> &&
             !std::is_same_v<std::decay_t<U>, T> && !std::is_same_v<std::decay_t<U>, StatusOr>)
  StatusOr(U&& value) : data_(T(std::forward<U>(value))) {}  // NOLINT

  bool ok() const { return std::holds_alternative<T>(data_); }
  Status status() const { return ok() ? Status() : std::get<Status>(data_); }

  T& value() & {
    assert(ok());
    return std::get<T>(data_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<T>(data_);
  }
  T&& value() && {
    assert(ok());
    return std::get<T>(std::move(data_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<Status, T> data_;
};

namespace internal {
inline Status to_status(const Status& s) { return s; }
inline Status to_status(Status&& s) { return std::move(s); }
template <typename T>
Status to_status(const StatusOr<T>& s) {
  return s.status();
}
}  // namespace internal

}  // namespace hangar

#define HANGAR_CONCAT_INNER_(a, b) a##b
#define HANGAR_CONCAT_(a, b) HANGAR_CONCAT_INNER_(a, b)

// Returns the Status of `expr` from the enclosing function when it is not OK.
#define HANGAR_RETURN_IF_ERROR(expr)                                    \
  do {                                                                  \
    ::hangar::Status hangar_status_ = ::hangar::internal::to_status(expr); \
    if (!hangar_status_.ok()) return hangar_status_;                   \
  } while (0)

// `HANGAR_ASSIGN_OR_RETURN(auto x, f());` declares/assigns x from an OK StatusOr, or returns
// its Status from the enclosing function.
#define HANGAR_ASSIGN_OR_RETURN(lhs, expr) \
  HANGAR_ASSIGN_OR_RETURN_IMPL_(HANGAR_CONCAT_(hangar_statusor_, __LINE__), lhs, expr)
#define HANGAR_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return tmp.status();                 \
  lhs = std::move(tmp).value()
