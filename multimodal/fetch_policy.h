// The rules a remote media fetch must pass, as pure checks the fetcher calls at every hop:
//   1. parse_http_url / resolve_redirect (http_url.h) the URL of this hop,
//   2. check_fetch_url on it (domain allow-list, literal addresses),
//   3. resolve the host, check_connect_address on every address it resolved to, and
//      connect only to an address that passed (never resolve again: DNS rebinding),
//   4. on a redirect, count the hop against max_redirects and go back to 1.
// The fetching itself (sockets, TLS, timeouts) is the frontend's. MediaFetchPolicy is a
// value type; the functions are pure and thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "multimodal/http_url.h"
#include "multimodal/ip_address.h"
#include "shm/status.h"

namespace k2::mm {

struct MediaFetchPolicy {
  // --allowed-media-domains: when non-empty, a host must equal one of these (compared
  // lower-case, trailing dot ignored), as vLLM compares them.
  std::vector<std::string> allowed_domains;
  // Off by default; only a deployment that fetches from its own network turns it on.
  bool allow_private_addresses = false;
  size_t max_bytes = 20u << 20;  // --max-media-bytes
  int max_redirects = 5;
  // Whole fetch, all hops; vLLM's VLLM_IMAGE_FETCH_TIMEOUT default (5 s).
  std::chrono::milliseconds timeout{5000};
};

Status check_fetch_url(const HttpUrl& url, const MediaFetchPolicy& policy);
Status check_connect_address(const IpAddress& address, const MediaFetchPolicy& policy);

}  // namespace k2::mm
