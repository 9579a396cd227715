// create_local_group: the N endpoints of one tensor- / expert-parallel group inside this
// process, by the kind of communicator they run over: "threads" (ThreadGroupCommunicator,
// shared memory of one process) or "gloo" (GlooCommunicator over TCP on 127.0.0.1, exactly as
// N processes on N nodes would talk, so in-process checks cover the cross-node path).
//
// A free function; the caller owns the endpoints (endpoint r for rank r's thread).
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "workers/parallel/communicator.h"

namespace k2 {

// The kinds create_local_group accepts, for option help and validation.
inline constexpr std::string_view kLocalGroupKinds = "threads|gloo";

Status check_local_group_kind(std::string_view kind);

Result<std::vector<std::unique_ptr<Communicator>>> create_local_group(std::string_view kind, int size,
                                                                     CommOptions options = {});

}  // namespace k2
