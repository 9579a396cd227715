// Routing table: exact path -> per-method handler. Built before the server starts and
// read-only afterwards, so dispatch() is thread-safe. Unknown paths get an OpenAI-shaped
// 404, a known path with another method a 405 with Allow.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "frontend/http/exchange.h"

namespace k2::http {

class Router {
 public:
  void add(const std::string& method, const std::string& path, Handler handler);
  void dispatch(const std::shared_ptr<Exchange>& exchange) const;
  // The route name for metrics and logs: the path when routed, "other" otherwise (keeps
  // label cardinality bounded whatever clients send).
  std::string route_label(const std::string& path) const;

 private:
  std::map<std::string, std::map<std::string, Handler>> routes_;  // path -> method -> handler
};

}  // namespace k2::http
