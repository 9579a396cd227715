// HttpFetcher: downloads remote media (http:// and https://) under a MediaFetchPolicy,
// following fetch_policy.h's recipe at every hop: parse_http_url / resolve_redirect,
// check_fetch_url, one DNS resolution whose every address must pass check_connect_address,
// a connection to exactly those checked addresses (never a second resolution: DNS
// rebinding), redirects counted against max_redirects and checked again. One deadline
// covers the whole fetch (all hops, DNS, TLS, body); the body is capped at max_bytes while
// it streams in, and a Content-Length over the cap is refused before any of the body is
// read. https verifies the server certificate against the system trust store and the host
// name (SNI is sent).
//
// A fetch runs synchronously on the calling thread (the frontend's media pool), on an
// io_context of its own. HttpFetcher is immutable after create() and fetch() may run on any
// number of threads at once. Every failure is a Status: kInvalidArgument (refused by the
// policy, bad response, network error, timeout) or kOutOfRange (the size cap), an HTTP 400
// for the request that carried the URL.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "multimodal/fetch_policy.h"
#include "multimodal/http_url.h"
#include "multimodal/ip_address.h"
#include "shm/status.h"

namespace k2::mm {

struct FetchedMedia {
  std::vector<uint8_t> body;
  std::string content_type;  // the final response's Content-Type header, verbatim ("" if none)
  std::string final_url;     // canonical text of the URL that answered 200
  int redirects = 0;
};

// Test seams only: production code leaves both empty. The policy checks always run on what
// `resolve` returns; `dial` only decides where the socket to an already checked address
// really goes, so a test can play a public host with a server on loopback.
struct FetchTestHooks {
  std::function<Result<std::vector<IpAddress>>(const std::string& host)> resolve;
  std::function<std::pair<IpAddress, uint16_t>(const IpAddress& checked, uint16_t port)> dial;
};

class HttpFetcher {
 public:
  // Fails when TLS cannot be set up (no system trust store).
  static Result<std::shared_ptr<const HttpFetcher>> create(MediaFetchPolicy policy, FetchTestHooks hooks = {});
  ~HttpFetcher();
  HttpFetcher(const HttpFetcher&) = delete;
  HttpFetcher& operator=(const HttpFetcher&) = delete;

  const MediaFetchPolicy& policy() const { return policy_; }

  struct Tls;  // the TLS client context (opaque: OpenSSL stays out of this header)

  // GET `url`; `timeout` bounds the whole fetch (the policy's timeout when zero). A final
  // status other than 200 is an error naming it.
  Result<FetchedMedia> fetch(std::string_view url, std::chrono::milliseconds timeout = std::chrono::milliseconds(0)) const;

 private:
  HttpFetcher(MediaFetchPolicy policy, FetchTestHooks hooks, std::unique_ptr<Tls> tls);

  MediaFetchPolicy policy_;
  FetchTestHooks hooks_;
  std::unique_ptr<Tls> tls_;  // null in a build without OpenSSL: https is then refused
};

// vLLM's fetch timeouts from its environment variables, in seconds:
// VLLM_IMAGE_FETCH_TIMEOUT (default 5) and VLLM_VIDEO_FETCH_TIMEOUT (default 30). `getenv`
// is the lookup (std::getenv in production). A value that is not a positive number is an
// error naming the variable.
struct FetchTimeouts {
  std::chrono::milliseconds image{5000};
  std::chrono::milliseconds video{30000};
};
Result<FetchTimeouts> fetch_timeouts_from_env(const std::function<const char*(const char*)>& getenv);

}  // namespace k2::mm
