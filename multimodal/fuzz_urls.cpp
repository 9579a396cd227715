// libFuzzer target: the http(s) URL parser, redirect resolution, IP literal parsing and
// classification, and the file:// URL path parser, on arbitrary text. Also checks that the
// canonical text of a parsed URL parses back to itself (one parser for checking and fetching).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "multimodal/fetch_policy.h"
#include "multimodal/http_url.h"
#include "multimodal/ip_address.h"
#include "multimodal/local_media.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const k2::mm::MediaFetchPolicy policy;
  auto url = k2::mm::parse_http_url(text);
  if (url.ok()) {
    (void)k2::mm::check_fetch_url(*url, policy);
    auto again = k2::mm::parse_http_url(url->to_string());
    if (!again.ok() || again->to_string() != url->to_string()) __builtin_trap();
    auto hop = k2::mm::resolve_redirect(*url, text.substr(size / 2));
    if (hop.ok()) (void)k2::mm::check_fetch_url(*hop, policy);
  }
  auto ip = k2::mm::parse_ip_address(text);
  if (ip.ok()) (void)k2::mm::classify_address(*ip);
  (void)k2::mm::file_url_path(text);
  return 0;
}
