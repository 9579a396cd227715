#include "bench/serve/server_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

namespace k2::bench {

int find_listen_port(const std::string& log) {
  static const std::regex kListen(R"( on http://[^\s:/]+:(\d{1,5}))");
  std::smatch m;
  if (!std::regex_search(log, m, kListen)) return 0;
  return std::stoi(m[1].str());
}

Result<ServerProcess> ServerProcess::start(const std::filesystem::path& binary, const std::vector<std::string>& args,
                                           const std::filesystem::path& log_path, std::chrono::seconds timeout) {
  const int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log_fd < 0) return io_error("cannot open " + log_path.string() + ": " + std::strerror(errno));
  std::vector<std::string> argv_text = {binary.string()};
  argv_text.insert(argv_text.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_text) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(log_fd);
    return io_error(std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(log_fd);
  ServerProcess server;
  server.pid_ = pid;
  server.log_path_ = log_path;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if ((server.port_ = find_listen_port(server.log_text())) > 0) return server;
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      server.pid_ = -1;
      return unavailable("the server exited during startup; its log:\n" + server.log_text());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return unavailable("the server did not report its port within " + std::to_string(timeout.count()) +
                     " s; its log:\n" + server.log_text());
}

ServerProcess::ServerProcess(ServerProcess&& other) noexcept { *this = std::move(other); }

ServerProcess& ServerProcess::operator=(ServerProcess&& other) noexcept {
  if (this != &other) {
    stop(std::chrono::milliseconds(0));
    pid_ = std::exchange(other.pid_, -1);
    port_ = other.port_;
    log_path_ = other.log_path_;
  }
  return *this;
}

ServerProcess::~ServerProcess() { stop(); }

std::string ServerProcess::log_text() const {
  std::ifstream in(log_path_);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

int ServerProcess::stop(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return 0;
  int status = 0;
  ::kill(pid_, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (::waitpid(pid_, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  pid_ = -1;
  return status;
}

}  // namespace k2::bench
