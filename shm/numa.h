// NUMA placement of a worker process: which CPUs it runs on and which node its memory (the
// weights it loads, the KV arena it creates) lives on. A CPU worker is one NUMA node's
// device, as a GPU worker is one GPU's.
//
// The placement follows vLLM's CPU backend variable VLLM_CPU_OMP_THREADS_BIND, so the same
// deployment scripts work:
//   "auto" (default)  worker rank r of `world` local ranks takes node r % (number of nodes)
//                     for memory, and its share of that node's CPUs (those this process may
//                     use): the node's CPUs split into equal contiguous parts among the ranks
//                     placed on it, so tensor-parallel ranks on one node do not share cores;
//   "nobind" / "all"  no binding (all allowed CPUs, the kernel's memory policy);
//   "0-31|32-63"      worker rank r takes the r-th '|'-separated CPU list, and the node of
//                     its first CPU for memory.
// Without libnuma (or on a kernel without NUMA) "auto" binds nothing. Stateless functions;
// apply_numa_placement changes the calling process (affinity of the calling thread, which
// threads created afterwards inherit, and its memory policy).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "shm/status.h"

namespace k2 {

struct NumaPlacement {
  int node = -1;          // memory node; -1: no memory binding
  std::vector<int> cpus;  // CPUs to run on; empty: leave the affinity as it is
  bool bound() const { return node >= 0 || !cpus.empty(); }
};

// Nodes the kernel reports (1 without libnuma or NUMA support).
int numa_node_count();

// "0-3,8,10-11" -> {0,1,2,3,8,10,11}. Errors name the bad piece.
Result<std::vector<int>> parse_cpu_list(std::string_view text);

// world: the local ranks placed together (0: unknown, the rank takes its whole node's CPUs).
Result<NumaPlacement> plan_numa_placement(std::string_view spec, int rank, int world = 0);

// Pins the calling thread (and so the threads it starts later) to placement.cpus and makes
// placement.node the preferred memory node. Nothing for an unbound placement.
Status apply_numa_placement(const NumaPlacement& placement);

// "node 0, cpus 0-15" / "unbound", for the worker's log line.
std::string describe(const NumaPlacement& placement);

}  // namespace k2
