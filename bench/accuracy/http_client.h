// A small blocking HTTP/1.1 client (Boost.Beast) for talking to one OpenAI-compatible
// endpoint: JSON POST and GET over a kept-alive connection that is reopened when the server
// closes it. One HttpClient owns one socket and is not thread-safe: use one per thread.
// Plain http only (no TLS).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "shm/status.h"

namespace k2::bench {

// "http://host[:port][/path]" split up; the path keeps no trailing slash ("/v1").
struct BaseUrl {
  std::string host;
  std::string port;
  std::string path;
};
Result<BaseUrl> parse_base_url(const std::string& url);

struct HttpReply {
  int status = 0;
  std::string body;
};

class HttpClient {
 public:
  HttpClient(BaseUrl base, std::string api_key, std::chrono::seconds timeout);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // `path` is appended to the base path ("/chat/completions"). A transport failure is an
  // error; any HTTP status is a reply.
  Result<HttpReply> post_json(const std::string& path, const std::string& body);
  Result<HttpReply> get(const std::string& path);

 private:
  struct Impl;
  Result<HttpReply> request(bool post, const std::string& path, const std::string& body);
  std::unique_ptr<Impl> impl_;
};

}  // namespace k2::bench
