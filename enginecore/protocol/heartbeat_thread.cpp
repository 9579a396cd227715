#include "enginecore/protocol/heartbeat_thread.h"

#include <spdlog/spdlog.h>

#include "enginecore/protocol/zmq_channel.h"

namespace k2::protocol {

HeartbeatThread::HeartbeatThread(zmq::context_t& context, const ControlPlaneSecurity& security, std::string address,
                                 DpControl beat, std::string label) {
  thread_ = std::thread([this, &context, &security, address = std::move(address), beat, label = std::move(label)] {
    run(context, security, address, beat, label);
  });
}

HeartbeatThread::~HeartbeatThread() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void HeartbeatThread::run(zmq::context_t& context, const ControlPlaneSecurity& security, const std::string& address,
                          const DpControl& beat, const std::string& label) {
  SocketOptions options;
  options.send_hwm = 4;  // a heartbeat queued behind a dead link is worth nothing
  auto push = make_socket(context, zmq::socket_type::push, options);
  Status s = push.ok() ? security.secure_client(*push) : push.status();
  if (s.ok()) {
    try {
      push->set(zmq::sockopt::sndtimeo, 100);
    } catch (const std::exception& e) {
      s = io_error(std::string("heartbeat send timeout: ") + e.what());
    }
  }
  if (s.ok()) s = connect_endpoint(*push, address);
  if (!s.ok()) {
    spdlog::error("{}: heartbeat socket: {}", label, s.to_string());
    return;
  }
  while (!stop_.load()) {
    (void)send(*push, beat);
    for (int i = 0; i < 10 && !stop_.load(); ++i) std::this_thread::sleep_for(kDpHeartbeatInterval / 10);
  }
}

}  // namespace k2::protocol
