// Status and Result<T>: expected failures as values, shared by every module of k2serve.
//
// It lives in shm/ because shm is the lowest module with failure paths and every other
// module above the kernels already depends on it; kernels/ take validated arguments and
// abort on a broken invariant, so they need no Status. Value types, thread-compatible.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <variant>

namespace k2 {

enum class Code {
  kOk = 0,
  kInvalidArgument,  // the caller's input is wrong (a request, a flag, a file's content)
  kNotFound,         // a named thing does not exist (file, tensor, config key)
  kOutOfRange,       // a value outside what is allowed
  kCorrupt,          // bytes that cannot be what they claim to be
  kIo,               // the operating system said no
  kUnavailable,      // a peer or resource is gone or busy
  kUnimplemented,    // valid input this build does not support
  kInternal,         // a bug surfaced as a value (prefer K2_CHECK)
};

const char* code_name(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status ok_status() { return {}; }
  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // "kind: message", for logs and command-line errors.
  std::string to_string() const;

  // Prepends context ("loading model-1-of-3.safetensors: ") while keeping the code.
  Status with_context(const std::string& context) const {
    if (ok()) return *this;
    return Status(code_, context + ": " + message_);
  }

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

inline Status invalid_argument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
inline Status not_found(std::string m) { return {Code::kNotFound, std::move(m)}; }
inline Status out_of_range(std::string m) { return {Code::kOutOfRange, std::move(m)}; }
inline Status corrupt(std::string m) { return {Code::kCorrupt, std::move(m)}; }
inline Status io_error(std::string m) { return {Code::kIo, std::move(m)}; }
inline Status unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
inline Status unimplemented(std::string m) { return {Code::kUnimplemented, std::move(m)}; }
inline Status internal_error(std::string m) { return {Code::kInternal, std::move(m)}; }

// Either a T or a non-ok Status.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT
    if (std::get<Status>(v_).ok()) v_ = Status(Code::kInternal, "Result built from an ok Status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

[[noreturn]] void check_failed(const char* expr, const char* file, int line, const std::string& msg);

}  // namespace k2

#define K2_CONCAT_INNER(a, b) a##b
#define K2_CONCAT(a, b) K2_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function when `expr` is not ok.
#define K2_RETURN_IF_ERROR(expr)                 \
  do {                                           \
    ::k2::Status k2_status_ = (expr);            \
    if (!k2_status_.ok()) return k2_status_;     \
  } while (0)

// `K2_ASSIGN_OR_RETURN(auto x, make_x());` binds x or returns the error.
#define K2_ASSIGN_OR_RETURN(lhs, expr) K2_ASSIGN_OR_RETURN_IMPL(K2_CONCAT(k2_result_, __LINE__), lhs, expr)
#define K2_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.status();            \
  lhs = std::move(tmp).value()

// A broken invariant: print and abort; the supervising process reports the death.
#define K2_CHECK(cond, ...)                                                        \
  do {                                                                             \
    if (!(cond)) ::k2::check_failed(#cond, __FILE__, __LINE__, std::string{__VA_ARGS__}); \
  } while (0)
