// Child processes of k2serve (frontend -> enginecore -> workers): spawn a sibling binary so
// that it dies with its parent, notice its death at once (a pidfd that poll() can wait on)
// and reap it.
//
// ChildProcess owns the child (it is killed and reaped when the object is destroyed) and its
// pidfd. Not thread-safe: one owner thread. Note the Linux rule behind PR_SET_PDEATHSIG: the
// child is signalled when the *thread* that forked it exits, so spawn from a thread that
// lives as long as the child should (the main thread, or the owner's own thread).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "shm/status.h"

namespace k2 {

class ChildProcess {
 public:
  // fork + exec of `binary args...`; the child gets PR_SET_PDEATHSIG(SIGKILL) before exec and
  // exits at once if its parent is already gone.
  static Result<ChildProcess> spawn(const std::filesystem::path& binary, const std::vector<std::string>& args);

  ChildProcess() = default;
  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();

  pid_t pid() const { return pid_; }
  // Readable (POLLIN) once the child has exited; -1 when the kernel has no pidfd_open.
  int pidfd() const { return pidfd_; }

  // Non-blocking: the wait status once the child has exited (and is now reaped).
  std::optional<int> try_wait();
  bool running() { return pid_ > 0 && !try_wait(); }
  // SIGTERM, up to `grace` for it to exit, then SIGKILL; reaps it. Returns the wait status.
  int terminate(std::chrono::milliseconds grace);
  // Sends a signal if the child is still unreaped.
  void signal(int sig) const;

 private:
  void reset();
  pid_t pid_ = -1;
  int pidfd_ = -1;
  std::optional<int> status_;
};

// "exit code N" / "killed by signal S" for a wait status.
std::string describe_wait_status(int status);

// The directory of this process's executable (sibling binaries live there).
std::filesystem::path self_exe_dir();

// For a child at startup: die with the parent (PR_SET_PDEATHSIG(SIGKILL)) and fail if the
// parent, whose pid it was given, is already gone.
Status die_with_parent(pid_t expected_parent);

}  // namespace k2
