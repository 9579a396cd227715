#include "enginecore/protocol/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <unistd.h>

namespace k2 {

void init_logging(const std::string& process_kind, const std::string& level) {
  auto logger = spdlog::stderr_color_mt(process_kind);
  logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%L%$ [" + process_kind + " " + std::to_string(::getpid()) +
                      "] %v");
  auto lvl = spdlog::level::from_str(level == "warning" ? "warn" : level);
  logger->set_level(lvl == spdlog::level::off && level != "off" ? spdlog::level::info : lvl);
  spdlog::set_default_logger(logger);
}

}  // namespace k2
