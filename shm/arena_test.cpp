#include "shm/arena.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <random>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "shm/ring.h"
#include "shm/segment.h"

namespace k2 {
namespace {

ArenaOptions options(const std::string& name, size_t bytes = 1 << 20) {
  static const std::string run = make_run_id();
  return ArenaOptions{run, name, 7, bytes, -1};
}

std::span<const std::byte> bytes_of(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

bool segment_exists(const std::string& name) { return std::filesystem::exists("/dev/shm" + name); }

TEST(Segment, NameScheme) {
  auto n = segment_name(1234, "abc", "prompts");
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, "/k2serve-1234-abc-prompts");
  EXPECT_FALSE(segment_name(1, "a-b", "x").ok());   // '-' would make the run id ambiguous
  EXPECT_FALSE(segment_name(1, "ab", "x/y").ok());
  EXPECT_FALSE(segment_name(1, "", "x").ok());
  EXPECT_FALSE(Segment::open("/not-ours").ok());
  EXPECT_EQ(Segment::open("/k2serve-1-nonexistent-x").status().code(), Code::kNotFound);
}

TEST(Arena, StoreViewAndPeerOpen) {
  auto arena = Arena::create(options("basic"));
  ASSERT_TRUE(arena.ok()) << arena.status().to_string();
  EXPECT_EQ(arena->id(), 7u);
  auto h = arena->store(bytes_of("hello shared world"));
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->bytes, 18u);
  EXPECT_EQ(h->offset % Arena::kMinBlock, 0u);

  auto peer = Arena::open(arena->name());
  ASSERT_TRUE(peer.ok()) << peer.status().to_string();
  auto v = peer->view(*h);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(v->data()), v->size()), "hello shared world");
  std::vector<std::byte> out(18);
  EXPECT_TRUE(peer->copy_out(*h, out).ok());
  EXPECT_EQ(std::memcmp(out.data(), "hello shared world", 18), 0);
  EXPECT_FALSE(peer->copy_out(*h, std::span<std::byte>(out.data(), 4)).ok());
}

TEST(Arena, StaleGenerationIsAnErrorNotAReadOfReusedMemory) {
  auto arena = Arena::create(options("stale"));
  ASSERT_TRUE(arena.ok());
  auto a = arena->store(bytes_of("first owner"));
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(arena->free(*a).ok());
  auto b = arena->store(bytes_of("second owner"));
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->offset, a->offset) << "same class reuses the freed block";
  EXPECT_NE(b->generation, a->generation);
  auto stale = arena->view(*a);
  EXPECT_FALSE(stale.ok());
  EXPECT_EQ(stale.status().code(), Code::kInvalidArgument);
  std::vector<std::byte> out(64);
  EXPECT_FALSE(arena->copy_out(*a, out).ok());
  EXPECT_FALSE(arena->free(*a).ok()) << "double free through a stale handle";
  EXPECT_TRUE(arena->view(*b).ok());
  EXPECT_TRUE(arena->free(*b).ok());
  EXPECT_FALSE(arena->free(*b).ok());
  EXPECT_EQ(arena->bytes_in_use(), 0u);
}

TEST(Arena, ForgedHandlesAreRejected) {
  auto arena = Arena::create(options("forged"));
  ASSERT_TRUE(arena.ok());
  auto h = arena->allocate(100);
  ASSERT_TRUE(h.ok());
  ShmHandle bad = *h;
  bad.arena_id = 8;
  EXPECT_FALSE(arena->view(bad).ok());
  bad = *h;
  bad.bytes = 1 << 20;
  EXPECT_FALSE(arena->view(bad).ok());
  EXPECT_FALSE(arena->view(ShmHandle{}).ok());
  std::mt19937_64 rng(1);
  for (int i = 0; i < 100000; ++i) {
    ShmHandle f{7, rng() % (2u << 20), rng() % 4096, rng() % 4};
    if (i % 2) f.offset = f.offset / 64 * 64;
    if (f == *h) continue;
    EXPECT_FALSE(arena->view(f).ok());
  }
}

TEST(Arena, FullArenaIsAValue) {
  auto arena = Arena::create(options("full", 64 * 1024));
  ASSERT_TRUE(arena.ok());
  std::vector<ShmHandle> hs;
  Status last;
  for (int i = 0; i < 1000; ++i) {
    auto h = arena->allocate(1000);
    if (!h.ok()) {
      last = h.status();
      break;
    }
    hs.push_back(*h);
  }
  EXPECT_EQ(last.code(), Code::kUnavailable);
  EXPECT_GT(hs.size(), 20u);
  EXPECT_FALSE(arena->allocate(size_t{1} << 40).ok());
  for (auto& h : hs) EXPECT_TRUE(arena->free(h).ok());
  EXPECT_TRUE(arena->allocate(1000).ok()) << "freed blocks are reusable";
}

TEST(Arena, ConcurrentAllocateFreeFromThreads) {
  auto arena = Arena::create(options("threads", 8 << 20));
  ASSERT_TRUE(arena.ok());
  std::atomic<int> errors{0};
  auto work = [&](int seed) {
    std::mt19937 rng(seed);
    std::vector<std::pair<ShmHandle, uint8_t>> live;
    for (int i = 0; i < 20000; ++i) {
      if (live.size() < 16 && rng() % 2) {
        size_t n = 1 + rng() % 3000;
        auto h = arena->allocate(n);
        if (!h.ok()) { ++errors; continue; }
        uint8_t tag = static_cast<uint8_t>(rng());
        std::memset(arena->view(*h)->data(), tag, n);
        live.push_back({*h, tag});
      } else if (!live.empty()) {
        auto [h, tag] = live.back();
        live.pop_back();
        auto v = arena->view(h);
        if (!v.ok() || (*v)[0] != std::byte{tag} || (*v)[h.bytes - 1] != std::byte{tag}) ++errors;
        if (!arena->free(h).ok()) ++errors;
      }
    }
    for (auto& [h, tag] : live) if (!arena->free(h).ok()) ++errors;
  };
  std::thread t1(work, 1), t2(work, 2), t3(work, 3);
  t1.join(); t2.join(); t3.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(arena->bytes_in_use(), 0u);
}

TEST(Arena, SharedAcrossFork) {
  auto arena = Arena::create(options("fork"));
  ASSERT_TRUE(arena.ok());
  auto h = arena->store(bytes_of("from parent"));
  ASSERT_TRUE(h.ok());
  std::string name = arena->name();
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  pid_t pid = fork();
  if (pid == 0) {
    auto peer = Arena::open(name);
    if (!peer.ok()) _exit(2);
    auto v = peer->view(*h);
    if (!v.ok() || std::memcmp(v->data(), "from parent", 11) != 0) _exit(3);
    auto c = peer->store(bytes_of("from child!"));
    if (!c.ok()) _exit(4);
    if (write(pipefd[1], &*c, sizeof(ShmHandle)) != sizeof(ShmHandle)) _exit(5);
    _exit(0);
  }
  ShmHandle c{};
  ASSERT_EQ(read(pipefd[0], &c, sizeof(c)), static_cast<ssize_t>(sizeof(c)));
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  auto v = arena->view(c);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(std::memcmp(v->data(), "from child!", 11), 0);
  close(pipefd[0]);
  close(pipefd[1]);
}

TEST(Arena, OwnerUnlinksOnDestruction) {
  std::string name;
  {
    auto arena = Arena::create(options("unlink"));
    ASSERT_TRUE(arena.ok());
    name = arena->name();
    EXPECT_TRUE(segment_exists(name));
    Arena moved = std::move(*arena);  // moving keeps exactly one owner
    EXPECT_TRUE(segment_exists(name));
  }
  EXPECT_FALSE(segment_exists(name));
}

// A child creates segments and is killed with SIGKILL: its destructors never run, so the
// survivor must find and remove what it left.
std::pair<pid_t, std::vector<std::string>> spawn_owner_and_kill() {
  int pipefd[2];
  if (pipe(pipefd) != 0) return {};
  pid_t pid = fork();
  if (pid == 0) {
    std::string run = make_run_id();
    auto a = Arena::create(ArenaOptions{run, "arena", 1, 1 << 16, -1});
    auto r = RingWriter::create(RingOptions{run, "ring", 4, 256, 1});
    if (!a.ok() || !r.ok()) _exit(1);
    std::string names = a->name() + "\n" + r->name() + "\n";
    if (write(pipefd[1], names.data(), names.size()) < 0) _exit(1);
    close(pipefd[1]);
    pause();
    _exit(0);
  }
  close(pipefd[1]);
  std::string text;
  char buf[512];
  ssize_t n;
  while (std::count(text.begin(), text.end(), '\n') < 2 && (n = read(pipefd[0], buf, sizeof(buf))) > 0)
    text.append(buf, n);
  close(pipefd[0]);
  std::vector<std::string> names;
  size_t pos = 0;
  for (size_t nl; (nl = text.find('\n', pos)) != std::string::npos; pos = nl + 1) names.push_back(text.substr(pos, nl - pos));
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  return {pid, names};
}

TEST(Cleanup, StaleSegmentsOfAKilledOwnerAreRemoved) {
  auto [pid, names] = spawn_owner_and_kill();
  ASSERT_EQ(names.size(), 2u);
  for (auto& n : names) EXPECT_TRUE(segment_exists(n)) << n;
  auto mine = Arena::create(options("survivor"));  // a live owner's segment must survive
  ASSERT_TRUE(mine.ok());
  auto removed = cleanup_stale_segments();
  ASSERT_TRUE(removed.ok());
  EXPECT_GE(*removed, 2);
  for (auto& n : names) EXPECT_FALSE(segment_exists(n)) << n;
  EXPECT_TRUE(segment_exists(mine->name()));
}

TEST(Cleanup, RemoveSegmentsOfAZombieChild) {
  int pipefd[2];
  ASSERT_EQ(pipe(pipefd), 0);
  pid_t pid = fork();
  if (pid == 0) {
    auto a = Arena::create(ArenaOptions{make_run_id(), "zombie", 1, 1 << 16, -1});
    char c = a.ok() ? 1 : 0;
    if (write(pipefd[1], &c, 1) != 1) _exit(1);
    pause();
    _exit(0);
  }
  char c = 0;
  ASSERT_EQ(read(pipefd[0], &c, 1), 1);
  ASSERT_EQ(c, 1);
  kill(pid, SIGKILL);
  siginfo_t info{};
  waitid(P_PID, pid, &info, WEXITED | WNOWAIT);  // dead but not reaped: kill(pid, 0) still succeeds
  auto stale = cleanup_stale_segments();
  ASSERT_TRUE(stale.ok());
  auto removed = remove_segments_of(pid);
  ASSERT_TRUE(removed.ok());
  EXPECT_EQ(*removed, 1);
  waitpid(pid, nullptr, 0);
  close(pipefd[0]);
  close(pipefd[1]);
}

}  // namespace
}  // namespace k2
