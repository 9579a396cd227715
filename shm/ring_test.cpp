#include "shm/ring.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace k2 {
namespace {

using namespace std::chrono_literals;

const std::string& run_id() {
  static const std::string run = make_run_id();
  return run;
}

// Message i: [u64 i][payload of 0..max_extra bytes derived from i]. The length varies so
// torn or stale slots show up as content errors.
size_t fill_message(uint64_t i, std::byte* out, size_t max_extra) {
  std::memcpy(out, &i, 8);
  size_t extra = (i * 2654435761u) % (max_extra + 1);
  for (size_t k = 0; k < extra; ++k) out[8 + k] = std::byte(static_cast<uint8_t>(i + k * 31));
  return 8 + extra;
}

bool check_message(uint64_t expect, std::span<const std::byte> msg, size_t max_extra) {
  std::byte buf[1024];
  size_t n = fill_message(expect, buf, max_extra);
  return msg.size() == n && std::memcmp(msg.data(), buf, n) == 0;
}

// Reads `count` messages and verifies each; returns the number of bad ones (or -1 on error).
long read_and_check(RingReader& reader, uint64_t count, size_t max_extra) {
  long bad = 0;
  for (uint64_t i = 0; i < count; ++i) {
    auto msg = reader.acquire(10s);
    if (!msg.ok()) return -1;
    if (!check_message(i, *msg, max_extra)) ++bad;
    reader.release();
  }
  return bad;
}

Status write_all(RingWriter& writer, uint64_t count, size_t max_extra) {
  for (uint64_t i = 0; i < count; ++i) {
    K2_ASSIGN_OR_RETURN(auto slot, writer.reserve(10s));
    K2_RETURN_IF_ERROR(writer.commit(fill_message(i, slot.data(), max_extra)));
  }
  return Status::ok_status();
}

TEST(Ring, InOrderAndBounds) {
  auto w = RingWriter::create(RingOptions{run_id(), "basic", 4, 64, 1});
  ASSERT_TRUE(w.ok()) << w.status().to_string();
  auto r = RingReader::open(w->name(), 0);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_FALSE(RingReader::open(w->name(), 1).ok());
  std::vector<std::byte> big(65);
  EXPECT_EQ(w->write(big, 1s).code(), Code::kInvalidArgument);
  for (int i = 0; i < 4; ++i) {
    std::byte b{static_cast<uint8_t>(i)};
    ASSERT_TRUE(w->write({&b, 1}, 1s).ok());
  }
  // Ring full: the writer times out (an error value) instead of overwriting unread data.
  auto t0 = std::chrono::steady_clock::now();
  std::byte b{9};
  EXPECT_EQ(w->write({&b, 1}, 50ms).code(), Code::kUnavailable);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  std::vector<std::byte> out;
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(r->read(out, 1s).ok());
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0], std::byte(static_cast<uint8_t>(i)));
  }
  EXPECT_EQ(r->read(out, 20ms).code(), Code::kUnavailable) << "empty ring times out";
  EXPECT_TRUE(w->write({&b, 1}, 1s).ok());
  EXPECT_TRUE(r->read(out, 1s).ok());
  w->close();
  EXPECT_EQ(r->read(out, 5s).code(), Code::kUnavailable) << "closed and drained";
}

// Message count of the stress tests; K2_RING_STRESS_MESSAGES overrides (the default keeps
// them in the tens of seconds on a loaded two-core machine).
uint64_t stress_count() {
  const char* env = std::getenv("K2_RING_STRESS_MESSAGES");
  return env != nullptr ? std::strtoull(env, nullptr, 10) : 200'000;
}

TEST(Ring, StressThreadsThreeReaders) {
  const uint64_t kCount = stress_count();
  constexpr size_t kExtra = 200;
  auto w = RingWriter::create(RingOptions{run_id(), "stress-threads", 16, 256, 3});
  ASSERT_TRUE(w.ok());
  std::vector<long> bad(3, -2);
  std::vector<std::thread> readers;
  for (uint32_t r = 0; r < 3; ++r) {
    readers.emplace_back([&, r] {
      auto reader = RingReader::open(w->name(), r);
      bad[r] = reader.ok() ? read_and_check(*reader, kCount, kExtra) : -3;
    });
  }
  auto t0 = std::chrono::steady_clock::now();
  Status s = write_all(*w, kCount, kExtra);
  for (auto& t : readers) t.join();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_TRUE(s.ok()) << s.to_string();
  for (long b : bad) EXPECT_EQ(b, 0);
  EXPECT_LT(secs, 60.0);
  std::printf("threads: %llu messages x 3 readers in %.2f s (%.2f us/msg)\n",
              static_cast<unsigned long long>(kCount), secs, secs * 1e6 / kCount);
}

TEST(Ring, StressForkedReaders) {
  const uint64_t kCount = stress_count();
  constexpr size_t kExtra = 500;
  auto w = RingWriter::create(RingOptions{run_id(), "stress-fork", 8, 1024, 2});
  ASSERT_TRUE(w.ok());
  std::vector<pid_t> pids;
  for (uint32_t r = 0; r < 2; ++r) {
    pid_t pid = fork();
    if (pid == 0) {
      auto reader = RingReader::open(w->name(), r);
      if (!reader.ok()) _exit(2);
      long bad = read_and_check(*reader, kCount, kExtra);
      _exit(bad == 0 ? 0 : bad < 0 ? 3 : 4);
    }
    pids.push_back(pid);
  }
  auto t0 = std::chrono::steady_clock::now();
  Status s = write_all(*w, kCount, kExtra);
  EXPECT_TRUE(s.ok()) << s.to_string();
  for (pid_t pid : pids) {
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "reader exit status " << status;
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(secs, 60.0);
  std::printf("fork: %llu messages x 2 reader processes in %.2f s\n", static_cast<unsigned long long>(kCount), secs);
}

TEST(Ring, DeadReaderIsNoticed) {
  auto w = RingWriter::create(RingOptions{run_id(), "dead-reader", 2, 64, 1});
  ASSERT_TRUE(w.ok());
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  pid_t pid = fork();
  if (pid == 0) {
    auto reader = RingReader::open(w->name(), 0);
    char ok = reader.ok() ? 1 : 0;
    if (write(pipefd[1], &ok, 1) != 1) _exit(3);
    pause();
    _exit(0);
  }
  char ok = 0;
  ASSERT_EQ(read(pipefd[0], &ok, 1), 1);  // the reader is attached before it dies
  ASSERT_EQ(ok, 1);
  close(pipefd[0]);
  close(pipefd[1]);
  std::byte b{1};
  ASSERT_TRUE(w->write({&b, 1}, 1s).ok());
  ASSERT_TRUE(w->write({&b, 1}, 1s).ok());
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  auto t0 = std::chrono::steady_clock::now();
  Status s = w->write({&b, 1}, 30s);
  EXPECT_EQ(s.code(), Code::kUnavailable);
  EXPECT_NE(s.message().find("died"), std::string::npos) << s.to_string();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s) << "noticed within a liveness slice, not the timeout";
}

TEST(Ring, DeadWriterIsNoticed) {
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  pid_t pid = fork();
  if (pid == 0) {
    auto w = RingWriter::create(RingOptions{run_id() + "child", "dead-writer", 2, 64, 1});
    if (!w.ok()) _exit(2);
    std::string name = w->name() + "\n";
    if (write(pipefd[1], name.data(), name.size()) < 0) _exit(3);
    pause();
    _exit(0);
  }
  char buf[256];
  ssize_t n = read(pipefd[0], buf, sizeof(buf));
  ASSERT_GT(n, 1);
  std::string name(buf, n - 1);
  auto r = RingReader::open(name, 0);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::byte> out;
  Status s = r->read(out, 30s);
  EXPECT_EQ(s.code(), Code::kUnavailable);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  shm_unlink(name.c_str());
  close(pipefd[0]);
  close(pipefd[1]);
}

}  // namespace
}  // namespace k2
