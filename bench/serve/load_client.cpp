#include "bench/serve/load_client.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cmath>
#include <limits>
#include <random>

#include "bench/serve/sse_stream.h"

namespace k2::bench {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// What one in-flight stream has seen so far (vLLM's per-request bookkeeping).
struct StreamState {
  Clock::time_point start;
  Clock::time_point last_chunk;
  bool first_chunk = false;
  int64_t content_chunks = 0;
  RequestOutput* out = nullptr;

  // False (with out->error set) when the payload ends the request as failed.
  bool on_payload(const std::string& payload, Clock::time_point now) {
    Result<StreamChunk> chunk = parse_stream_chunk(payload);
    if (!chunk.ok()) {
      out->error = chunk.status().message();
      return false;
    }
    if (chunk->has_choice) {
      if (!first_chunk) {
        first_chunk = true;
        out->ttft = seconds_between(start, now);
      } else {
        out->itl.push_back(seconds_between(last_chunk, now));
      }
      last_chunk = now;
      ++content_chunks;
      out->generated_text += chunk->text;
    }
    if (chunk->completion_tokens) out->output_tokens = *chunk->completion_tokens;
    return true;
  }
};

class LoadRunner {
 public:
  LoadRunner(const HttpTarget& target, const LoadPlan& plan, tcp::endpoint endpoint)
      : target_(target), plan_(plan), endpoint_(endpoint), slot_free_(io_) {
    result_.outputs.resize(plan.bodies.size());
  }

  LoadResult run() {
    const auto start = Clock::now();
    asio::co_spawn(io_, dispatch(start), asio::detached);
    io_.run();
    result_.duration_s = seconds_between(start, Clock::now());
    return std::move(result_);
  }

 private:
  // Absolute send offsets: gamma-distributed gaps (exponential for burstiness 1), as
  // vLLM's get_request; all zero for an infinite rate.
  std::vector<double> arrival_offsets() const {
    std::vector<double> offsets(plan_.bodies.size(), 0.0);
    if (!std::isfinite(plan_.request_rate) || plan_.request_rate <= 0) return offsets;
    std::mt19937_64 rng(plan_.seed);
    std::gamma_distribution<double> gap(plan_.burstiness, 1.0 / (plan_.request_rate * plan_.burstiness));
    double t = 0;
    for (auto& o : offsets) {
      o = t;
      t += gap(rng);
    }
    return offsets;
  }

  asio::awaitable<void> dispatch(Clock::time_point start) {
    asio::steady_timer timer(io_);
    const std::vector<double> offsets = arrival_offsets();
    for (size_t i = 0; i < plan_.bodies.size(); ++i) {
      if (offsets[i] > 0) {
        timer.expires_at(start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(offsets[i])));
        boost::system::error_code ec;
        co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      }
      while (plan_.max_concurrency > 0 && in_flight_ >= plan_.max_concurrency) {
        slot_free_.expires_at(Clock::time_point::max());
        boost::system::error_code ec;  // cancelled when a request finishes
        co_await slot_free_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      }
      ++in_flight_;
      asio::co_spawn(io_, run_request(i), asio::detached);
    }
  }

  asio::awaitable<void> run_request(size_t index) {
    RequestOutput& out = result_.outputs[index];
    out.prompt_len = plan_.prompt_lens[index];
    co_await stream_one(plan_.bodies[index], out);
    --in_flight_;
    slot_free_.cancel();
  }

  asio::awaitable<void> stream_one(const std::string& body, RequestOutput& out) {
    beast::tcp_stream stream(io_);
    stream.expires_after(std::chrono::duration_cast<std::chrono::seconds>(std::chrono::duration<double>(plan_.request_timeout_s)));
    StreamState state;
    state.out = &out;
    state.start = Clock::now();
    boost::system::error_code ec;
    co_await stream.async_connect(endpoint_, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return fail(out, "connect: " + ec.message());
    http::request<http::string_body> req{http::verb::post, target_.path, 11};
    req.set(http::field::host, target_.host);
    req.set(http::field::content_type, "application/json");
    req.set(http::field::user_agent, "k2serve-bench");
    req.body() = body;
    req.prepare_payload();
    co_await http::async_write(stream, req, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return fail(out, "write: " + ec.message());
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    // Not boost::none: Beast 1.74 compares a Content-Length against the empty optional
    // and reports every such body (error replies) as over the limit.
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    co_await http::async_read_header(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return fail(out, "read: " + ec.message());
    const unsigned status = parser.get().result_int();
    SseSplitter splitter;
    bool ok = true;
    while (!parser.is_done() && ok) {
      co_await http::async_read_some(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return fail(out, "read: " + ec.message());
      if (status != 200) continue;  // the error body is read whole below
      const auto now = Clock::now();
      std::string& bytes = parser.get().body();
      for (const std::string& payload : splitter.feed(bytes))
        if (!(ok = state.on_payload(payload, now))) break;
      bytes.clear();
    }
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    if (status != 200) co_return fail(out, "HTTP " + std::to_string(status) + ": " + parser.get().body());
    if (!ok) co_return;
    if (!state.first_chunk) co_return fail(out, "Never received a valid chunk to calculate TTFT.");
    if (out.output_tokens == 0) out.output_tokens = state.content_chunks;
    out.latency = seconds_between(state.start, state.last_chunk);
    out.success = true;
  }

  static void fail(RequestOutput& out, std::string error) {
    out.success = false;
    out.error = std::move(error);
  }

  const HttpTarget& target_;
  const LoadPlan& plan_;
  tcp::endpoint endpoint_;
  asio::io_context io_;
  asio::steady_timer slot_free_;
  int64_t in_flight_ = 0;
  LoadResult result_;
};

}  // namespace

Result<HttpTarget> parse_base_url(const std::string& base_url, const std::string& endpoint) {
  constexpr std::string_view kScheme = "http://";
  if (!base_url.starts_with(kScheme)) return invalid_argument("--base-url must start with http:// (got '" + base_url + "')");
  std::string rest = base_url.substr(kScheme.size());
  std::string prefix;
  if (size_t slash = rest.find('/'); slash != std::string::npos) {
    prefix = rest.substr(slash);
    rest.resize(slash);
    while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  }
  HttpTarget t;
  t.path = prefix + endpoint;
  const size_t colon = rest.rfind(':');
  if (colon == std::string::npos || (rest.find(']') != std::string::npos && colon < rest.find(']'))) {
    t.host = rest;
    t.port = 80;
  } else {
    t.host = rest.substr(0, colon);
    const std::string port = rest.substr(colon + 1);
    char* end = nullptr;
    const long p = std::strtol(port.c_str(), &end, 10);
    if (port.empty() || *end != '\0' || p <= 0 || p > 65535) return invalid_argument("bad port in --base-url: '" + port + "'");
    t.port = static_cast<uint16_t>(p);
  }
  if (t.host.size() >= 2 && t.host.front() == '[' && t.host.back() == ']') t.host = t.host.substr(1, t.host.size() - 2);
  if (t.host.empty()) return invalid_argument("no host in --base-url '" + base_url + "'");
  return t;
}

Result<LoadResult> run_load(const HttpTarget& target, const LoadPlan& plan) {
  if (plan.prompt_lens.size() != plan.bodies.size()) return invalid_argument("one prompt length per request body");
  asio::io_context resolver_io;
  tcp::resolver resolver(resolver_io);
  boost::system::error_code ec;
  auto results = resolver.resolve(target.host, std::to_string(target.port), ec);
  if (ec || results.empty()) return unavailable("cannot resolve " + target.host + ": " + ec.message());
  LoadRunner runner(target, plan, results.begin()->endpoint());
  return runner.run();
}

}  // namespace k2::bench
