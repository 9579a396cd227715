#include "workers/parallel/gloo_communicator.h"

#include <gloo/allgather.h>
#include <gloo/barrier.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/prefix_store.h>
#include <gloo/transport/tcp/device.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <cstdint>
#include <mutex>
#include <optional>
#include <thread>

#include "workers/parallel/zmq_store.h"

namespace k2 {
namespace {

void ignore_sigpipe() {
  static std::once_flag once;
  std::call_once(once, [] { std::signal(SIGPIPE, SIG_IGN); });
}

// ZeroMQ wants IPv6 literals bracketed.
std::string tcp_endpoint(const std::string& host, const std::string& port) {
  const bool v6 = host.find(':') != std::string::npos && host.front() != '[';
  return "tcp://" + (v6 ? "[" + host + "]" : host) + ":" + port;
}

std::string describe(const std::exception* e) { return e != nullptr ? e->what() : "unknown exception"; }

Status check_options(int rank, int size, const GlooCommOptions& options) {
  if (size < 1 || rank < 0 || rank >= size) {
    return invalid_argument("gloo group: rank " + std::to_string(rank) + " of " + std::to_string(size));
  }
  if (options.timeout <= std::chrono::milliseconds::zero()) {
    return invalid_argument("gloo group: timeout must be positive");
  }
  if (options.chunk_elements == 0) return invalid_argument("gloo group: chunk_elements must be positive");
  return Status::ok_status();
}

}  // namespace

GlooCommunicator::GlooCommunicator(std::shared_ptr<gloo::Context> context, int rank, int size,
                                   GlooCommOptions options)
    : context_(std::move(context)), rank_(rank), size_(size), options_(std::move(options)) {}

GlooCommunicator::~GlooCommunicator() = default;

Result<std::unique_ptr<GlooCommunicator>> GlooCommunicator::create(gloo::rendezvous::Store& store,
                                                                   std::string_view group, int rank, int size,
                                                                   GlooCommOptions options) {
  K2_RETURN_IF_ERROR(check_options(rank, size, options));
  if (group.empty()) return invalid_argument("gloo group: the group needs a name (its store key prefix)");
  if (size == 1) return std::unique_ptr<GlooCommunicator>(new GlooCommunicator(nullptr, 0, 1, std::move(options)));
  ignore_sigpipe();
  try {
    gloo::transport::tcp::attr attr;
    attr.hostname = options.hostname;
    std::shared_ptr<gloo::transport::Device> device = gloo::transport::tcp::CreateDevice(attr);
    auto context = std::make_shared<gloo::rendezvous::Context>(rank, size);
    context->setTimeout(options.timeout);
    gloo::rendezvous::PrefixStore prefixed(std::string(group), store);
    context->connectFullMesh(prefixed, device);
    return std::unique_ptr<GlooCommunicator>(new GlooCommunicator(std::move(context), rank, size, std::move(options)));
  } catch (const std::exception& e) {
    return unavailable("gloo group '" + std::string(group) + "' rank " + std::to_string(rank) +
                       " could not connect: " + describe(&e));
  } catch (...) {
    return unavailable("gloo group '" + std::string(group) + "' rank " + std::to_string(rank) +
                       " could not connect: " + describe(nullptr));
  }
}

Result<std::vector<std::unique_ptr<GlooCommunicator>>> GlooCommunicator::create_local_group(int size,
                                                                                           GlooCommOptions options) {
  K2_RETURN_IF_ERROR(check_options(0, size, options));
  K2_ASSIGN_OR_RETURN(std::unique_ptr<ZmqStore> served,
                      ZmqStore::create({.endpoint = tcp_endpoint(options.hostname, "*"), .serve = true,
                                        .timeout = options.timeout}));
  std::vector<std::optional<Result<std::unique_ptr<GlooCommunicator>>>> made(static_cast<size_t>(size));
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r) {
    // Gloo connects all pairs at once, so every rank must be inside create() together.
    threads.emplace_back([&, r] {
      std::unique_ptr<ZmqStore> client;
      if (r > 0) {
        Result<std::unique_ptr<ZmqStore>> c =
            ZmqStore::create({.endpoint = served->endpoint(), .timeout = options.timeout});
        if (!c.ok()) {
          made[static_cast<size_t>(r)] = c.status();
          return;
        }
        client = std::move(c).value();
      }
      ZmqStore& store = client ? *client : *served;
      made[static_cast<size_t>(r)] = create(store, "local", r, size, options);
    });
  }
  for (std::thread& t : threads) t.join();
  std::vector<std::unique_ptr<GlooCommunicator>> group;
  for (auto& m : made) {
    if (!m->ok()) return m->status();
    group.push_back(std::move(*m).value());
  }
  return group;
}

Status GlooCommunicator::fail(const char* what, const std::exception* e) {
  broken_ = true;
  return unavailable(std::string("gloo ") + what + " on rank " + std::to_string(rank_) + ": " + describe(e));
}

Status GlooCommunicator::all_reduce_sum(std::span<float> data) {
  if (broken_) return unavailable("gloo communicator is broken by an earlier failure");
  if (size_ == 1) return Status::ok_status();
  try {
    return all_reduce_chunks(data);
  } catch (const std::exception& e) {
    return fail("all_reduce_sum", &e);
  } catch (...) {
    return fail("all_reduce_sum", nullptr);
  }
}

namespace {

// The length travels as the first 8 bytes of round 0, in two float slots (copied, never
// added, so any bit pattern is fine).
constexpr size_t kHeaderFloats = sizeof(int64_t) / sizeof(float);

// out[i] = rows[0][i] + rows[1][i] + ... in rank order, rows `stride` floats apart.
void sum_in_rank_order(float* out, const float* rows, size_t stride, size_t ranks, size_t m) {
  std::copy_n(rows, m, out);
  for (size_t r = 1; r < ranks; ++r) {
    const float* in = rows + r * stride;
    for (size_t i = 0; i < m; ++i) out[i] += in[i];
  }
}

}  // namespace

Status GlooCommunicator::all_reduce_chunks(std::span<float> data) {
  const size_t n = data.size();
  const size_t ranks = static_cast<size_t>(size_);
  // Round 0 has the same size on every rank whatever its length: the length, then up to
  // first_round_elements of the data (padded). Every rank then sees every length before any
  // size-dependent round, so a mismatch fails on all ranks alike and the group stays in step;
  // and a payload that fits (a decode step's hidden states) costs one round trip, not two.
  const size_t first = options_.first_round_elements;
  const size_t row = kHeaderFloats + first;
  const size_t m0 = std::min(first, n);
  const size_t chunk = std::max<size_t>(1, std::min(options_.chunk_elements, n - m0));
  round0_.resize(row);
  // Grown only: a shrink-then-grow would zero-fill the tail again on every large call.
  if (gathered_.size() < std::max(ranks * row, ranks * chunk)) gathered_.resize(std::max(ranks * row, ranks * chunk));
  const int64_t mine = static_cast<int64_t>(n);
  std::memcpy(round0_.data(), &mine, sizeof(mine));
  std::copy_n(data.data(), m0, round0_.data() + kHeaderFloats);
  {
    gloo::AllgatherOptions opts(context_);
    opts.setInput(round0_.data(), row);
    opts.setOutput(gathered_.data(), ranks * row);
    gloo::allgather(opts);
  }
  for (size_t r = 0; r < ranks; ++r) {
    int64_t theirs = 0;
    std::memcpy(&theirs, gathered_.data() + r * row, sizeof(theirs));
    if (theirs != mine) return invalid_argument("all_reduce_sum: the ranks passed different lengths");
  }
  sum_in_rank_order(data.data(), gathered_.data() + kHeaderFloats, row, ranks, m0);
  for (size_t off = m0; off < n; off += chunk) {
    const size_t m = std::min(chunk, n - off);
    gloo::AllgatherOptions opts(context_);
    opts.setInput(data.data() + off, m);
    opts.setOutput(gathered_.data(), ranks * m);
    gloo::allgather(opts);
    sum_in_rank_order(data.data() + off, gathered_.data(), m, ranks, m);
  }
  return Status::ok_status();
}

Status GlooCommunicator::barrier() {
  if (broken_) return unavailable("gloo communicator is broken by an earlier failure");
  if (size_ == 1) return Status::ok_status();
  try {
    gloo::BarrierOptions opts(context_);
    gloo::barrier(opts);
    return Status::ok_status();
  } catch (const std::exception& e) {
    return fail("barrier", &e);
  } catch (...) {
    return fail("barrier", nullptr);
  }
}

}  // namespace k2
