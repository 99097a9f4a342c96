#pragma once
// The closed set of outcomes of every CertCentral call, after certmonger's
// issued/pending/rejected/unreachable/...: a caller must handle each one.
//   ok(value)                 the call did what was asked
//   pending(order, next look) the order exists but is not issued yet
//   rejected(code, message)   the CA decided against the order or request
//   unreachable(reason)       no usable answer: network, TLS, timeout, 5xx after retries
//   refused(status, errors)   CertCentral answered 4xx with {"errors":[...]}
//   malformed(what)           an answer that is not what the API documents
#include <chrono>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "qscd/api/error.hpp"
#include "qscd/api/status.hpp"

namespace qscd::api {

struct Pending {
  std::string order_id;
  OrderStatus status = OrderStatus::unknown;  // the order status that keeps it waiting
  std::chrono::seconds next_look{};  // when looking again makes sense
};

struct Rejected {
  std::string code;  // order or request status: rejected, canceled, denied, revoked
  std::string message;
};

struct Unreachable {
  std::string reason;
};

// One entry of CertCentral's {"errors":[{"code","message"}]}; "not_found|order"
// is split into code "not_found" and detail "order".
struct ApiError {
  std::string code;
  std::string detail;
  std::string message;
};

struct Refused {
  long http_status = 0;
  std::vector<ApiError> errors;
  // CertCentral did not accept the API key (401, or 403 naming the key).
  [[nodiscard]] bool auth_failed() const;
};

struct Malformed {
  std::string what;
};

// For calls whose success carries no value (204 No Content).
struct Done {};

std::string describe(const Pending& pending);
std::string describe(const Rejected& rejected);
std::string describe(const Unreachable& unreachable);
std::string describe(const Refused& refused);
std::string describe(const Malformed& malformed);

template <class T>
class Outcome {
 public:
  Outcome(T value) : state_(std::move(value)) {}  // NOLINT: implicit on purpose
  Outcome(Pending pending) : state_(std::move(pending)) {}
  Outcome(Rejected rejected) : state_(std::move(rejected)) {}
  Outcome(Unreachable unreachable) : state_(std::move(unreachable)) {}
  Outcome(Refused refused) : state_(std::move(refused)) {}
  Outcome(Malformed malformed) : state_(std::move(malformed)) {}

  [[nodiscard]] OutcomeKind kind() const noexcept { return static_cast<OutcomeKind>(state_.index()); }
  [[nodiscard]] bool ok() const noexcept { return kind() == OutcomeKind::ok; }

  [[nodiscard]] const T& value() const { return std::get<T>(state_); }
  [[nodiscard]] T& value() { return std::get<T>(state_); }
  [[nodiscard]] const Pending& pending() const { return std::get<Pending>(state_); }
  [[nodiscard]] const Rejected& rejected() const { return std::get<Rejected>(state_); }
  [[nodiscard]] const Unreachable& unreachable() const { return std::get<Unreachable>(state_); }
  [[nodiscard]] const Refused& refused() const { return std::get<Refused>(state_); }
  [[nodiscard]] const Malformed& malformed() const { return std::get<Malformed>(state_); }

  // One line for a person; empty for ok.
  [[nodiscard]] std::string describe() const {
    return std::visit(
        [](const auto& state) -> std::string {
          if constexpr (std::is_same_v<std::decay_t<decltype(state)>, T>) {
            return {};
          } else {
            return api::describe(state);
          }
        },
        state_);
  }

  // The value, or CallFailed carrying kind() and describe().
  T& value_or_throw() {
    if (!ok()) {
      bool auth = kind() == OutcomeKind::refused && refused().auth_failed();
      throw CallFailed(kind(), auth, describe());
    }
    return value();
  }

  // The same non-ok outcome carrying another value type (to pass a failure up).
  template <class U>
  [[nodiscard]] Outcome<U> failure_as() const {
    return std::visit(
        [](const auto& state) -> Outcome<U> {
          if constexpr (std::is_same_v<std::decay_t<decltype(state)>, T>) {
            return Malformed{"internal: failure_as() on an ok outcome"};
          } else {
            return state;
          }
        },
        state_);
  }

 private:
  // The order of alternatives matches OutcomeKind.
  std::variant<T, Pending, Rejected, Unreachable, Refused, Malformed> state_;
};

}  // namespace qscd::api
