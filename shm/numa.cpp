#include "shm/numa.h"

#include <sched.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

#ifdef K2_HAVE_NUMA
#include <numa.h>
#endif

namespace k2 {

namespace {

std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  return cpus;
}

bool numa_usable() {
#ifdef K2_HAVE_NUMA
  return numa_available() >= 0;
#else
  return false;
#endif
}

std::vector<int> cpus_of_node(int node) {
  std::vector<int> cpus;
#ifdef K2_HAVE_NUMA
  struct bitmask* mask = numa_allocate_cpumask();
  if (mask == nullptr) return cpus;
  if (numa_node_to_cpus(node, mask) == 0) {
    for (unsigned c = 0; c < mask->size && c < CPU_SETSIZE; ++c)
      if (numa_bitmask_isbitset(mask, c)) cpus.push_back(static_cast<int>(c));
  }
  numa_free_cpumask(mask);
#else
  (void)node;
#endif
  return cpus;
}

int node_of_cpu(int cpu) {
#ifdef K2_HAVE_NUMA
  if (numa_usable()) return numa_node_of_cpu(cpu);
#else
  (void)cpu;
#endif
  return -1;
}

Result<int> parse_cpu(std::string_view s, std::string_view whole) {
  int v = -1;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < 0 || v >= CPU_SETSIZE) {
    return invalid_argument("bad CPU '" + std::string(s) + "' in '" + std::string(whole) + "'");
  }
  return v;
}

std::vector<std::string_view> split(std::string_view text, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    const size_t at = text.find(sep, start);
    parts.push_back(text.substr(start, at == std::string_view::npos ? std::string_view::npos : at - start));
    if (at == std::string_view::npos) return parts;
    start = at + 1;
  }
}

}  // namespace

int numa_node_count() {
#ifdef K2_HAVE_NUMA
  if (numa_usable()) return std::max(1, numa_num_configured_nodes());
#endif
  return 1;
}

Result<std::vector<int>> parse_cpu_list(std::string_view text) {
  std::vector<int> cpus;
  for (std::string_view piece : split(text, ',')) {
    if (piece.empty()) return invalid_argument("empty item in CPU list '" + std::string(text) + "'");
    const size_t dash = piece.find('-');
    K2_ASSIGN_OR_RETURN(int first, parse_cpu(piece.substr(0, dash), text));
    int last = first;
    if (dash != std::string_view::npos) {
      K2_ASSIGN_OR_RETURN(last, parse_cpu(piece.substr(dash + 1), text));
    }
    if (last < first) return invalid_argument("descending range '" + std::string(piece) + "' in '" + std::string(text) + "'");
    for (int c = first; c <= last; ++c) cpus.push_back(c);
  }
  std::sort(cpus.begin(), cpus.end());
  cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
  return cpus;
}

Result<NumaPlacement> plan_numa_placement(std::string_view spec, int rank, int world) {
  if (rank < 0 || world < 0 || (world > 0 && rank >= world)) return invalid_argument("worker rank outside [0, world)");
  NumaPlacement p;
  if (spec.empty() || spec == "auto") {
    if (!numa_usable()) return p;
    const int nodes = numa_node_count();
    p.node = rank % nodes;
    const std::vector<int> allowed = allowed_cpus();
    std::vector<int> node_cpus;
    for (int c : cpus_of_node(p.node))
      if (std::binary_search(allowed.begin(), allowed.end(), c)) node_cpus.push_back(c);
    // Ranks p.node, p.node + nodes, ... share this node; this rank is the k-th of them.
    const int sharers = world == 0 ? 1 : (world - 1 - p.node) / nodes + 1;
    const int k = world == 0 ? 0 : rank / nodes;
    const size_t n = node_cpus.size();
    if (static_cast<size_t>(sharers) > n) {
      p.cpus = node_cpus;  // fewer CPUs than ranks: share them all
      return p;
    }
    const size_t begin = n * static_cast<size_t>(k) / static_cast<size_t>(sharers);
    const size_t end = n * static_cast<size_t>(k + 1) / static_cast<size_t>(sharers);
    p.cpus.assign(node_cpus.begin() + static_cast<std::ptrdiff_t>(begin), node_cpus.begin() + static_cast<std::ptrdiff_t>(end));
    return p;  // no allowed CPU on the node: memory binding only
  }
  if (spec == "nobind" || spec == "all") return p;
  const std::vector<std::string_view> lists = split(spec, '|');
  if (static_cast<size_t>(rank) >= lists.size()) {
    return invalid_argument("VLLM_CPU_OMP_THREADS_BIND '" + std::string(spec) + "' has " + std::to_string(lists.size()) +
                            " CPU lists, none for worker rank " + std::to_string(rank));
  }
  K2_ASSIGN_OR_RETURN(p.cpus, parse_cpu_list(lists[static_cast<size_t>(rank)]));
  p.node = node_of_cpu(p.cpus.front());
  return p;
}

Status apply_numa_placement(const NumaPlacement& placement) {
  if (!placement.cpus.empty()) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int c : placement.cpus) CPU_SET(c, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) {
      return io_error("cannot run on CPUs " + describe(placement) + ": " + std::strerror(errno));
    }
  }
#ifdef K2_HAVE_NUMA
  // Preferred, not strict: a full node spills to the others instead of failing the load.
  if (placement.node >= 0 && numa_usable()) numa_set_preferred(placement.node);
#endif
  return Status::ok_status();
}

std::string describe(const NumaPlacement& placement) {
  if (!placement.bound()) return "unbound";
  std::string out = placement.node >= 0 ? "node " + std::to_string(placement.node) : std::string("no node");
  if (placement.cpus.empty()) return out + ", all CPUs";
  out += ", cpus ";
  for (size_t i = 0; i < placement.cpus.size();) {
    size_t j = i;
    while (j + 1 < placement.cpus.size() && placement.cpus[j + 1] == placement.cpus[j] + 1) ++j;
    if (i > 0) out += ",";
    out += std::to_string(placement.cpus[i]);
    if (j > i) out += "-" + std::to_string(placement.cpus[j]);
    i = j + 1;
  }
  return out;
}

}  // namespace k2
