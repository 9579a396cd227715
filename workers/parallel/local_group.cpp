#include "workers/parallel/local_group.h"

#include <string>

#include "workers/parallel/gloo_communicator.h"
#include "workers/parallel/thread_group_communicator.h"

namespace k2 {

Status check_local_group_kind(std::string_view kind) {
  if (kind == "threads" || kind == "gloo") return Status::ok_status();
  return invalid_argument("communicator must be threads or gloo, got '" + std::string(kind) + "'");
}

Result<std::vector<std::unique_ptr<Communicator>>> create_local_group(std::string_view kind, int size,
                                                                     CommOptions options) {
  K2_RETURN_IF_ERROR(check_local_group_kind(kind));
  if (size < 1) return invalid_argument("a group needs at least one rank");
  std::vector<std::unique_ptr<Communicator>> group;
  if (kind == "threads") {
    for (auto& c : ThreadGroupCommunicator::create(size, options)) group.push_back(std::move(c));
    return group;
  }
  GlooCommOptions gloo_options;
  gloo_options.timeout = options.timeout;
  K2_ASSIGN_OR_RETURN(auto endpoints, GlooCommunicator::create_local_group(size, gloo_options));
  for (auto& c : endpoints) group.push_back(std::move(c));
  return group;
}

}  // namespace k2
