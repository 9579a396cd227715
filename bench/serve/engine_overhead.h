// `k2serve bench overhead`: the enginecore's own cost per step (issue 5 §8), measured on a
// model so small that its forward pass is negligible. Writes a shrunken copy of a model
// config (--base-config; vocabulary and architecture kept, dimensions cut) into a temp
// dir, serves it with --load-format dummy and K2_STEP_TIMING=1, drives batch 1 (one
// stream) and batch B (B concurrent streams, ignore_eos, fixed output length), and reads
// the engine loop's "step timing" log lines (enginecore/engine_loop.h) for each phase.
// Overhead = input + schedule + write + update (everything the enginecore does per step
// besides waiting for the workers); the goal is overhead <= 10 us + 5% of the step time
// at batch 64. Stateless functions.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "shm/status.h"

namespace k2::bench {

// The mean phase times of one batch size, as the engine logged them.
struct StepTimingRow {
  int64_t batch = 0;
  int64_t steps = 0;
  double input_us = 0, schedule_us = 0, write_us = 0, wait_us = 0, update_us = 0;
  // Medians per step (robust to preempted steps on a busy machine); merged over several
  // lines as their step-weighted mean. 0 when the engine did not log them.
  double overhead_p50_us = 0, step_p50_us = 0;
  double overhead_us() const { return input_us + schedule_us + write_us + update_us; }
  double step_us() const { return overhead_us() + wait_us; }
};

// Parses every "step timing:" line of a log; other lines are skipped, a malformed one too.
std::vector<StepTimingRow> parse_step_timing(const std::string& log);

// The row of `batch` merged over all its lines (weighted by steps); nullopt when absent.
std::optional<StepTimingRow> merge_rows(const std::vector<StepTimingRow>& rows, int64_t batch);

// The tiny model's config.json: `base` with its dimensions replaced by small ones.
nlohmann::json shrink_config(nlohmann::json base);

int bench_overhead_command(const std::vector<std::string>& args);

}  // namespace k2::bench
