// http(s) URLs of remote media. One parser serves both the safety checks and the fetcher:
// the fetcher must connect to exactly the host/port/target this parser produced (and the
// checks approved), never re-parse the original text with another library, so the two can
// never disagree about where a URL points. Value types and pure functions: thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "multimodal/ip_address.h"
#include "shm/status.h"

namespace k2::mm {

struct HttpUrl {
  bool https = false;
  // Lower-case registered name without a trailing dot, or an IP literal's text (IPv6
  // without brackets).
  std::string host;
  std::optional<IpAddress> ip;  // set when host is an IP literal
  uint16_t port = 80;           // explicit, or 80/443 by scheme
  std::string target;           // origin-form request target: "/path?query", never empty

  // Canonical text: "https://host[:port]/path?query" (IPv6 in brackets, default port
  // omitted); parse_http_url(to_string()) gives the same HttpUrl.
  std::string to_string() const;
  // The Host header value: host, bracketed for IPv6, with the port when not the default.
  std::string authority() const;
};

// Strict parse. Accepts "http://" and "https://" (scheme case-insensitive) only; rejects user
// info ("user@host", a classic way to disguise the real host), backslashes, whitespace and
// control characters, percent signs or non-ASCII in the host (IDNs must arrive as
// punycode), hosts whose last label is numeric but which are not a strict dotted quad (so
// "127.1" or "0x7f000001" cannot reach a resolver that would read them as addresses), and
// ports outside 1..65535. The fragment is dropped; non-ASCII bytes in the path or query are
// percent-encoded.
Result<HttpUrl> parse_http_url(std::string_view url);

// Resolves a redirect's Location against the URL that returned it (absolute,
// scheme-relative "//host/x", absolute-path "/x" or relative "x" forms; dot segments are
// removed). The result must pass the same checks as the first URL again.
Result<HttpUrl> resolve_redirect(const HttpUrl& base, std::string_view location);

}  // namespace k2::mm
