// The error body every k2serve HTTP answer uses, vLLM's variant of OpenAI's envelope:
//   {"error": {"message": ..., "type": ..., "param": ..., "code": <HTTP status as int>}}
// Pure functions; thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "frontend/http/exchange.h"

namespace k2::http {

// vLLM's exception-class-style type for a status ("BadRequestError", "NotFoundError", ...).
std::string_view error_type_for_status(int status);

std::string error_body(int status, std::string_view message, std::optional<std::string_view> param = std::nullopt,
                       std::string_view type = {});

HttpResponse error_response(int status, std::string_view message,
                            std::optional<std::string_view> param = std::nullopt);

}  // namespace k2::http
