#include "enginecore/protocol/option_table.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include <yaml-cpp/yaml.h>

namespace k2 {
namespace {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

}  // namespace

std::string closest_match(const std::string& name, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = SIZE_MAX;
  for (const auto& c : candidates) {
    size_t dist = edit_distance(name, c);
    if (dist < best_d) best_d = dist, best = c;
  }
  return best_d <= std::max<size_t>(2, name.size() / 3) ? best : "";
}

namespace {

std::string metavar(OptionKind kind) {
  switch (kind) {
    case OptionKind::kFlag: return "";
    case OptionKind::kInt: return " INT";
    case OptionKind::kFloat: return " FLOAT";
    case OptionKind::kString: return " STR";
    case OptionKind::kList: return " VALUE...";
  }
  return "";
}

std::string json_scalar_text(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  return v.dump();
}

// YAML scalars carry no type; the option table converts the text per option, so every
// scalar becomes a string here.
nlohmann::json yaml_to_json(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      nlohmann::json j = nlohmann::json::object();
      for (const auto& kv : node) j[kv.first.as<std::string>()] = yaml_to_json(kv.second);
      return j;
    }
    case YAML::NodeType::Sequence: {
      nlohmann::json j = nlohmann::json::array();
      for (const auto& item : node) j.push_back(yaml_to_json(item));
      return j;
    }
    case YAML::NodeType::Scalar: return node.as<std::string>();
    default: return nullptr;
  }
}

// A config file as vLLM takes it: YAML (JSON is a subset of YAML, and is parsed as JSON so
// its numbers and booleans keep their types).
Result<nlohmann::json> read_config_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return io_error("cannot open config file " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  auto j = nlohmann::json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    try {
      j = yaml_to_json(YAML::Load(ss.str()));
    } catch (const YAML::Exception& e) {
      return invalid_argument("config file " + path + " is neither JSON nor YAML: " + e.what());
    }
  }
  if (!j.is_object()) return invalid_argument("config file " + path + " must hold a mapping of option names");
  return j;
}

bool looks_like_option(const std::string& arg) {
  if (arg.size() < 2 || arg[0] != '-') return false;
  // A negative number is a value, not an option.
  return !(std::isdigit(static_cast<unsigned char>(arg[1])) || arg[1] == '.');
}

}  // namespace

Status parse_option_value(const std::string& text, bool* out) {
  std::string t = text;
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
  if (t == "true" || t == "1" || t == "yes" || t == "on") { *out = true; return {}; }
  if (t == "false" || t == "0" || t == "no" || t == "off") { *out = false; return {}; }
  return invalid_argument("expected true or false, got '" + text + "'");
}

Status parse_option_value(const std::string& text, int64_t* out) {
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno == ERANGE) return invalid_argument("expected an integer, got '" + text + "'");
  *out = v;
  return {};
}

Status parse_option_value(const std::string& text, int* out) {
  int64_t v = 0;
  K2_RETURN_IF_ERROR(parse_option_value(text, &v));
  if (v < INT32_MIN || v > INT32_MAX) return out_of_range("integer out of range: " + text);
  *out = static_cast<int>(v);
  return {};
}

Status parse_option_value(const std::string& text, double* out) {
  errno = 0;
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || errno == ERANGE) return invalid_argument("expected a number, got '" + text + "'");
  *out = v;
  return {};
}

Status parse_option_value(const std::string& text, std::string* out) {
  *out = text;
  return {};
}

void OptionTableBase::add_def(OptionDef def) {
  for (const auto& n : def.names) K2_CHECK(find(n) == nullptr, "duplicate option " + n);
  defs_.push_back(std::move(def));
}

const OptionDef* OptionTableBase::find(const std::string& name) const {
  for (const auto& d : defs_)
    for (const auto& n : d.names)
      if (n == name) return &d;
  return nullptr;
}

std::string OptionTableBase::closest(const std::string& name) const {
  std::vector<std::string> names;
  for (const auto& d : defs_) names.insert(names.end(), d.names.begin(), d.names.end());
  std::string best = closest_match(name, names);
  return best.empty() ? "" : " (did you mean " + best + "?)";
}

Status OptionTableBase::apply_json(const nlohmann::json& object, void* cfg, std::set<std::string>* given) const {
  if (!object.is_object()) return invalid_argument("config must be a JSON object");
  for (const auto& [key, value] : object.items()) {
    std::string name = "--" + key;
    std::replace(name.begin(), name.end(), '_', '-');
    const OptionDef* def = find(name);
    if (def == nullptr) return invalid_argument("unknown config key '" + key + "'" + closest(name));
    std::vector<nlohmann::json> values;
    if (value.is_array() && def->kind == OptionKind::kList) values.assign(value.begin(), value.end());
    else values.push_back(value);
    for (const auto& v : values) {
      if (v.is_null()) continue;
      if (given) given->insert(def->names[0]);
      if (v.is_object() || v.is_array()) {
        if (def->kind != OptionKind::kString) return invalid_argument("config key '" + key + "' needs a scalar");
        K2_RETURN_IF_ERROR(def->set(cfg, v.dump()).with_context("config key '" + key + "'"));
        continue;
      }
      K2_RETURN_IF_ERROR(def->set(cfg, json_scalar_text(v)).with_context("config key '" + key + "'"));
    }
  }
  return {};
}

Status OptionTableBase::parse(const std::vector<std::string>& args, void* cfg,
                              std::vector<std::string>* positionals, std::set<std::string>* given) const {
  // The config file first, so that explicit flags override it.
  for (size_t i = 0; i < args.size(); ++i) {
    std::string path;
    if (args[i] == "--config") {
      if (i + 1 >= args.size()) return invalid_argument("--config needs a file");
      path = args[i + 1];
    } else if (args[i].rfind("--config=", 0) == 0) {
      path = args[i].substr(9);
    } else {
      continue;
    }
    K2_ASSIGN_OR_RETURN(auto j, read_config_file(path));
    K2_RETURN_IF_ERROR(apply_json(j, cfg, given));
  }
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--") {
      for (++i; i < args.size(); ++i) {
        if (!positionals) return invalid_argument("unexpected argument '" + args[i] + "'");
        positionals->push_back(args[i]);
      }
      break;
    }
    if (!looks_like_option(arg)) {
      if (!positionals) return invalid_argument("unexpected argument '" + arg + "'");
      positionals->push_back(arg);
      continue;
    }
    std::string name = arg, inline_value;
    bool has_inline = false;
    if (size_t eq = arg.find('='); eq != std::string::npos) {
      name = arg.substr(0, eq), inline_value = arg.substr(eq + 1), has_inline = true;
    }
    if (name == "--config") {
      if (!has_inline) ++i;
      continue;
    }
    const OptionDef* def = find(name);
    if (def == nullptr && name.rfind("--no-", 0) == 0) {
      const OptionDef* positive = find("--" + name.substr(5));
      if (positive && positive->kind == OptionKind::kFlag && !has_inline) {
        K2_RETURN_IF_ERROR(positive->set(cfg, "false"));
        if (given) given->insert(positive->names[0]);
        continue;
      }
    }
    if (def == nullptr) return invalid_argument("unknown option " + name + closest(name));
    if (given) given->insert(def->names[0]);
    if (def->kind == OptionKind::kFlag) {
      K2_RETURN_IF_ERROR(def->set(cfg, has_inline ? inline_value : "true").with_context(name));
      continue;
    }
    if (has_inline) {
      K2_RETURN_IF_ERROR(def->set(cfg, inline_value).with_context(name));
      continue;
    }
    if (i + 1 >= args.size()) return invalid_argument(name + " needs a value");
    if (def->kind != OptionKind::kList) {
      K2_RETURN_IF_ERROR(def->set(cfg, args[++i]).with_context(name));
      continue;
    }
    // Lists take every following token up to the next option (argparse nargs='+').
    size_t taken = 0;
    while (i + 1 < args.size() && !looks_like_option(args[i + 1])) {
      K2_RETURN_IF_ERROR(def->set(cfg, args[++i]).with_context(name));
      ++taken;
    }
    if (taken == 0) return invalid_argument(name + " needs at least one value");
  }
  return {};
}

std::string OptionTableBase::help(const void* defaults, const std::string& usage) const {
  std::ostringstream out;
  out << "usage: " << usage << "\n";
  std::vector<std::string> groups;
  for (const auto& d : defs_)
    if (std::find(groups.begin(), groups.end(), d.group) == groups.end()) groups.push_back(d.group);
  for (const auto& g : groups) {
    out << "\n" << (g.empty() ? "options" : g) << ":\n";
    for (const auto& d : defs_) {
      if (d.group != g) continue;
      std::string names;
      for (const auto& n : d.names) names += (names.empty() ? "" : ", ") + n;
      if (d.kind == OptionKind::kFlag) names += ", --no-" + d.names[0].substr(2);
      out << "  " << names << metavar(d.kind) << "\n      " << d.help;
      nlohmann::json def = d.get(defaults);
      bool empty = def.is_null() || (def.is_string() && def.get<std::string>().empty()) ||
                   (def.is_array() && def.empty());
      if (!empty) out << " (default: " << json_scalar_text(def) << ")";
      out << "\n";
    }
  }
  out << "\n  --config FILE\n      YAML or JSON file of options (keys are option names without dashes); flags given"
         " on the command line override it\n";
  return out.str();
}

nlohmann::json OptionTableBase::to_json(const void* cfg) const {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& d : defs_) j[d.names[0].substr(2)] = d.get(cfg);
  return j;
}

}  // namespace k2
