#include "workers/plan_source.h"

#include <vector>

#include "enginecore/protocol/heartbeat_thread.h"
#include "enginecore/protocol/plan_fanout.h"
#include "enginecore/protocol/zmq_channel.h"
#include "shm/ring.h"

namespace k2 {
namespace {

bool ends_with(const Status& s, std::string_view tail) { return s.message().ends_with(tail); }

class RingSource final : public PlanSource {
 public:
  explicit RingSource(RingReader ring) : ring_(std::move(ring)) {}
  Result<std::optional<std::span<const std::byte>>> acquire(std::chrono::milliseconds timeout) override {
    auto got = ring_.acquire(timeout);
    if (got.ok()) return std::optional<std::span<const std::byte>>(*got);
    if (got.status().code() == Code::kUnavailable && got.status().message().starts_with("ring wait timed out"))
      return std::optional<std::span<const std::byte>>();
    if (got.status().code() == Code::kUnavailable && ends_with(got.status(), " closed"))
      return unavailable("plan ring closed");
    return got.status();
  }
  void release() override { ring_.release(); }

 private:
  RingReader ring_;
};

class FanoutSource final : public PlanSource {
 public:
  FanoutSource(protocol::PlanSubscriber subscriber, zmq::context_t& context,
               const protocol::ControlPlaneSecurity& security, std::string heartbeat_address, uint32_t rank)
      : subscriber_(std::move(subscriber)),
        heartbeat_(context, security, std::move(heartbeat_address),
                   protocol::DpControl{protocol::DpControlKind::kHeartbeat, rank, 0, 0, false, -1},
                   "worker " + std::to_string(rank)) {}
  Result<std::optional<std::span<const std::byte>>> acquire(std::chrono::milliseconds timeout) override {
    auto got = subscriber_.next(timeout);
    if (!got.ok()) {
      if (got.status().code() == Code::kUnavailable && ends_with(got.status(), "timed out"))
        return std::optional<std::span<const std::byte>>();
      return got.status();
    }
    plan_ = std::move(got->plan);
    media_ = std::move(got->media);
    return std::optional<std::span<const std::byte>>(plan_);
  }
  void release() override {
    plan_.clear();
    media_.clear();
  }
  std::optional<std::vector<protocol::MediaPixels>> take_media() override { return std::move(media_); }

 private:
  protocol::PlanSubscriber subscriber_;
  std::vector<std::byte> plan_;
  std::vector<protocol::MediaPixels> media_;
  protocol::HeartbeatThread heartbeat_;
};

}  // namespace

bool is_closed(const Status& status) { return status.code() == Code::kUnavailable && ends_with(status, "closed"); }

Result<std::unique_ptr<PlanSource>> open_plan_source(zmq::context_t& context,
                                                    const protocol::ControlPlaneSecurity& security,
                                                    const protocol::EngineConfigMsg& msg, uint32_t rank) {
  if (msg.input_addresses.empty()) return invalid_argument("the enginecore sent no plan address");
  const std::string& address = msg.input_addresses[0];
  if (!address.starts_with("tcp://")) {
    K2_ASSIGN_OR_RETURN(RingReader ring, RingReader::open(address, rank));
    return std::unique_ptr<PlanSource>(new RingSource(std::move(ring)));
  }
  if (msg.output_addresses.size() < 2) return invalid_argument("the enginecore sent no heartbeat address");
  K2_ASSIGN_OR_RETURN(protocol::PlanSubscriber subscriber, protocol::PlanSubscriber::connect(context, security, address));
  return std::unique_ptr<PlanSource>(
      new FanoutSource(std::move(subscriber), context, security, msg.output_addresses[1], rank));
}

}  // namespace k2
