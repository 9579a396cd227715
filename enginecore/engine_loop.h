// The enginecore process (`k2serve-enginecore`, spawned by the frontend, one per DP rank).
//
//   frontend ROUTER (bind) <- DEALER (identity = rank): HELLO -> config -> READY, then
//                             AddRequest / AbortRequests / Utility
//   frontend PULL (bind)   <- PUSH: EngineOutputs (tokens, finishes, stats), EngineDead
//   workers: spawned here (fork+exec of k2serve-worker, one per device; N ranks), their own
//            handshake on a ROUTER of this process; every StepPlan goes to all of them
//            through one shm broadcast ring, each answers with a StepResult on a PULL.
//
// One thread runs everything: drain input, schedule, write the plan, wait for the results
// (watching the workers' pidfds, so a dead worker is noticed at once), update, send
// outputs; with nothing to do it blocks in poll. A worker death or a failed step sends
// EngineDead and exits 1; SIGTERM/SIGINT exits 0 after the step in flight. Every shm
// segment of this process and of its workers is removed on every exit it controls, and
// stale ones of dead processes at start.
//
// Step timing (the engine-overhead benchmark, bench/serve): with K2_STEP_TIMING=1 in its
// environment the loop times each step's phases and, each time it goes idle after work,
// logs one line per batch size (number of requests in the plan) with the mean per step:
//   "step timing: batch=B steps=N input_us=.. schedule_us=.. write_us=.. wait_us=.. update_us=..
//    overhead_p50_us=.. step_p50_us=.."
// input = poll + drain of the frontend's messages + pending outputs; schedule = plan_step
// (scheduler + plan build); write = msgpack encode + ring write; wait = until every
// worker's StepResult is in (worker forward + sampling + the plan/result IPC); update =
// finish_step + sending the outputs; overhead = all but wait. The medians are there because
// on a shared machine a few preempted steps move the means. Off by default: then it costs
// one branch per step.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace k2::engine {

// Accumulates the phase times of steps by batch size; owned by the loop's one thread.
class StepTimingLog {
 public:
  using Clock = std::chrono::steady_clock;
  struct Marks {
    Clock::time_point start, inputs_done, planned, written, received, updated;
  };
  void add(size_t batch, const Marks& marks);
  // The log lines of everything since the last drain (format above), then forgets it.
  std::vector<std::string> drain_lines();

 private:
  struct Totals {
    uint64_t steps = 0;
    double input_us = 0, schedule_us = 0, write_us = 0, wait_us = 0, update_us = 0;
    std::vector<double> overhead_us, step_us;  // per step, for the medians
  };
  std::map<size_t, Totals> by_batch_;
};

// `k2serve-enginecore --handshake ADDR --rank N --parent-pid PID [--worker-binary PATH]`;
// returns the process exit code.
int enginecore_main(const std::vector<std::string>& args);

}  // namespace k2::engine
