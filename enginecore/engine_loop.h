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
#pragma once

#include <string>
#include <vector>

namespace k2::engine {

// `k2serve-enginecore --handshake ADDR --rank N --parent-pid PID [--worker-binary PATH]`;
// returns the process exit code.
int enginecore_main(const std::vector<std::string>& args);

}  // namespace k2::engine
