// `k2serve serve --headless`: a node without an API server that joins a master.
//   * data parallelism (--data-parallel-start-rank): this node's enginecores, each joining
//     the master's API server over tcp://--data-parallel-address:--data-parallel-rpc-port;
//   * tensor parallelism across nodes (--nnodes N --node-rank K, tp_nodes.h): only the
//     workers of this node's tensor-parallel ranks, joining the master's engine at
//     tcp://--master-addr:--master-port.
// Either runs until a signal (0), until its children all exit 0 (the master closed them: 0)
// or until one fails (1; the others are stopped: the deployment lost a part anyway).
//
// Free functions; the process must have blocked SIGTERM/SIGINT (serve_command does).
#pragma once

#include "enginecore/protocol/engine_config.h"

namespace k2 {

int run_headless(const EngineConfig& cfg);

}  // namespace k2
