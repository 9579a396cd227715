#include "frontend/http/router.h"

#include "frontend/http/json_error.h"

namespace k2::http {

void Router::add(const std::string& method, const std::string& path, Handler handler) {
  routes_[path][method] = std::move(handler);
}

void Router::dispatch(const std::shared_ptr<Exchange>& exchange) const {
  const HttpRequest& req = exchange->request();
  auto it = routes_.find(req.path);
  if (it == routes_.end()) {
    exchange->respond(error_response(404, "Not Found: " + req.path.substr(0, 200)));
    return;
  }
  auto m = it->second.find(req.method);
  if (m == it->second.end()) {
    HttpResponse r = error_response(405, "Method Not Allowed");
    std::string allow;
    for (const auto& [method, _] : it->second) allow += (allow.empty() ? "" : ", ") + method;
    r.headers.emplace_back("Allow", allow);
    exchange->respond(std::move(r));
    return;
  }
  m->second(exchange);
}

std::string Router::route_label(const std::string& path) const {
  return routes_.count(path) ? path : "other";
}

}  // namespace k2::http
