#include "frontend/http/json_error.h"

#include <nlohmann/json.hpp>

namespace k2::http {

std::string_view error_type_for_status(int status) {
  switch (status) {
    case 400: return "BadRequestError";
    case 401: return "AuthenticationError";
    case 403: return "PermissionDeniedError";
    case 404: return "NotFoundError";
    case 405: return "MethodNotAllowedError";
    case 408: return "RequestTimeoutError";
    case 409: return "ConflictError";
    case 413: return "RequestEntityTooLargeError";
    case 422: return "UnprocessableEntityError";
    case 429: return "RateLimitError";
    case 431: return "RequestHeaderFieldsTooLargeError";
    case 501: return "NotImplementedError";
    case 503: return "ServiceUnavailableError";
    default: return status >= 500 ? "InternalServerError" : "BadRequestError";
  }
}

std::string error_body(int status, std::string_view message, std::optional<std::string_view> param,
                       std::string_view type) {
  nlohmann::json err = {
      {"message", std::string(message)},
      {"type", std::string(type.empty() ? error_type_for_status(status) : type)},
      {"param", param ? nlohmann::json(std::string(*param)) : nlohmann::json(nullptr)},
      {"code", status},
  };
  // Replace, never throw, on invalid UTF-8 that a message may quote from a request.
  return nlohmann::json{{"error", std::move(err)}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

HttpResponse error_response(int status, std::string_view message, std::optional<std::string_view> param) {
  HttpResponse r;
  r.status = status;
  r.body = error_body(status, message, param);
  return r;
}

}  // namespace k2::http
