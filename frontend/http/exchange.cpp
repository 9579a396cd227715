#include "frontend/http/exchange.h"

#include <cctype>

#include "frontend/http/connection.h"

namespace k2::http {

std::optional<std::string_view> HttpRequest::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k.size() != name.size()) continue;
    bool eq = true;
    for (size_t i = 0; i < k.size() && eq; ++i) {
      eq = k[i] == std::tolower(static_cast<unsigned char>(name[i]));
    }
    if (eq) return std::string_view(v);
  }
  return std::nullopt;
}

Exchange::Exchange(std::shared_ptr<Connection> connection, HttpRequest request)
    : request_(std::move(request)), connection_(std::move(connection)) {}

Exchange::~Exchange() = default;

void Exchange::respond(HttpResponse response) {
  std::shared_ptr<Connection> conn;
  {
    std::lock_guard lock(mu_);
    if (answered_ || cancelled_) return;
    answered_ = true;
    conn = connection_;
  }
  if (conn) conn->post_respond(shared_from_this(), std::move(response));
}

void Exchange::stream(int status, Headers headers, std::shared_ptr<StreamSource> source) {
  std::shared_ptr<Connection> conn;
  {
    std::lock_guard lock(mu_);
    if (answered_ || cancelled_) return;
    answered_ = true;
    conn = connection_;
  }
  if (conn) conn->post_stream(shared_from_this(), status, std::move(headers), std::move(source));
}

void Exchange::wake() {
  std::shared_ptr<Connection> conn;
  {
    std::lock_guard lock(mu_);
    if (cancelled_) return;
    conn = connection_;
  }
  if (conn) conn->post_wake(shared_from_this());
}

void Exchange::post(std::function<void()> task) {
  std::shared_ptr<Connection> conn;
  {
    std::lock_guard lock(mu_);
    if (cancelled_) return;
    conn = connection_;
  }
  if (conn) conn->post_task(std::move(task));
}

void Exchange::on_cancel(std::function<void()> hook) {
  {
    std::lock_guard lock(mu_);
    if (!cancelled_) {
      cancel_hook_ = std::move(hook);
      return;
    }
  }
  hook();
}

bool Exchange::cancelled() const {
  std::lock_guard lock(mu_);
  return cancelled_;
}

void Exchange::set_log_note(std::string note) {
  std::lock_guard lock(mu_);
  log_note_ = std::move(note);
}

std::string Exchange::log_note() const {
  std::lock_guard lock(mu_);
  return log_note_;
}

void Exchange::fire_cancel() {
  std::function<void()> hook;
  {
    std::lock_guard lock(mu_);
    if (cancelled_) return;
    cancelled_ = true;
    hook = std::move(cancel_hook_);
  }
  if (hook) hook();
}

std::shared_ptr<Connection> Exchange::take_connection() {
  std::lock_guard lock(mu_);
  cancel_hook_ = nullptr;  // the exchange is over; drop what the hook captured
  return std::move(connection_);
}

}  // namespace k2::http
