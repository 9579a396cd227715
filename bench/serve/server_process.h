// A `k2serve serve` child for benchmarks and their tests: started with its stdout and
// stderr in a log file (the bound port and the engine's step-timing lines are read back
// from it), stopped with SIGTERM. ServerProcess owns the child and kills it on
// destruction; not thread-safe.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "shm/status.h"

namespace k2::bench {

class ServerProcess {
 public:
  // fork + exec `binary args...` (args should include `--port 0`), output to `log_path`;
  // waits up to `timeout` for the "on http://HOST:PORT" line.
  static Result<ServerProcess> start(const std::filesystem::path& binary, const std::vector<std::string>& args,
                                     const std::filesystem::path& log_path, std::chrono::seconds timeout);
  ServerProcess() = default;
  ServerProcess(ServerProcess&& other) noexcept;
  ServerProcess& operator=(ServerProcess&& other) noexcept;
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;
  ~ServerProcess();

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  const std::filesystem::path& log_path() const { return log_path_; }
  std::string log_text() const;
  // SIGTERM, then SIGKILL after `grace`; returns the wait status.
  int stop(std::chrono::milliseconds grace = std::chrono::seconds(10));

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::filesystem::path log_path_;
};

// The port of the first "on http://HOST:PORT" in a server log; 0 when none yet.
int find_listen_port(const std::string& log);

}  // namespace k2::bench
