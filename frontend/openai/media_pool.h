// MediaPool: the threads that fetch, decode and preprocess request media, so that a large
// image never runs on (and stalls) an HTTP thread. A fixed set of threads draining one FIFO.
//
// Thread-safe: post() may be called from any thread. The destructor stops taking work, lets
// the queued tasks run and joins the threads.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace k2::openai {

class MediaPool {
 public:
  explicit MediaPool(size_t threads);
  ~MediaPool();
  MediaPool(const MediaPool&) = delete;
  MediaPool& operator=(const MediaPool&) = delete;

  void post(std::function<void()> task);

 private:
  void run();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace k2::openai
