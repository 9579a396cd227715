// Logging setup shared by every process: spdlog, one line per event, process kind and pid
// in the pattern so interleaved logs of frontend, enginecore and workers stay readable.
#pragma once

#include <spdlog/spdlog.h>

#include <string>

namespace k2 {

// Configures the default logger once per process. `level` is a spdlog level name
// ("debug", "info", "warning", "error"); unknown names fall back to info.
void init_logging(const std::string& process_kind, const std::string& level = "info");

}  // namespace k2
