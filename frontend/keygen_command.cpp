#include "frontend/keygen_command.h"

#include <iostream>

#include "enginecore/protocol/curve_auth.h"
#include "enginecore/protocol/option_table.h"

namespace k2 {
namespace {

struct KeygenOptions {
  std::string output = "k2serve-control-plane.key";
  bool help = false;
};

OptionTable<KeygenOptions> keygen_table() {
  using O = KeygenOptions;
  OptionTable<O> t;
  t.add("--output,-o", &O::output, "key file to create (mode 0600); an existing file is never overwritten");
  t.add("--help,-h", &O::help, "show this help");
  return t;
}

}  // namespace

int keygen_command(const std::vector<std::string>& args) {
  const auto table = keygen_table();
  KeygenOptions options;
  if (Status s = table.parse(args, options, nullptr); !s.ok()) {
    std::cerr << "k2serve keygen: " << s.message() << "\n";
    return 2;
  }
  if (options.help) {
    std::cout << table.help(KeygenOptions{}, "k2serve keygen [--output PATH]")
              << "\nCopy the file to every node of the deployment (keep it mode 0600) and pass it to\n"
                 "`k2serve serve` with --control-plane-key-file; peers without it are refused.\n";
    return 0;
  }
  if (options.output.empty()) {
    std::cerr << "k2serve keygen: --output must name a file\n";
    return 2;
  }
  auto keys = protocol::generate_curve_keys();
  if (!keys.ok()) {
    std::cerr << "k2serve keygen: " << keys.status().message() << "\n";
    return 1;
  }
  if (Status s = protocol::write_key_file(options.output, *keys); !s.ok()) {
    std::cerr << "k2serve keygen: " << s.message() << "\n";
    return 1;
  }
  std::cout << "wrote " << options.output << "\npublic key: " << keys->public_key << "\n";
  return 0;
}

}  // namespace k2
