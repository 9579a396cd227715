// OptionTable: one typed table of command-line options that drives argv parsing, `--help`
// and JSON config files for a config struct. Each option is bound to a member of the struct,
// so the table is the single place an option is declared. Immutable after construction;
// safe to share across threads for parsing.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "shm/status.h"

namespace k2 {

enum class OptionKind { kFlag, kInt, kFloat, kString, kList };

// The untyped core: what parsing and help need to know about one option.
struct OptionDef {
  std::vector<std::string> names;  // "--tensor-parallel-size", "-tp"; first is canonical
  std::string help;
  std::string group;
  OptionKind kind = OptionKind::kString;
  bool repeatable = false;  // lists accept several values after one flag
  std::function<Status(void* cfg, const std::string& value)> set;
  std::function<nlohmann::json(const void* cfg)> get;
};

class OptionTableBase {
 public:
  // Parses `args` (no program/command name) into cfg. Tokens that are not options are
  // appended to `positionals` (an error when it is null). `--config FILE` (YAML or JSON) is applied
  // first wherever it appears, so flags on the command line win over the file. `given`, when
  // not null, receives the canonical name (names[0]) of every option set from either source,
  // for rules that depend on whether the user chose a value (defaults are never "given").
  Status parse(const std::vector<std::string>& args, void* cfg, std::vector<std::string>* positionals,
               std::set<std::string>* given = nullptr) const;
  // Applies an object whose keys are option names without dashes ("max-num-seqs" or
  // "max_num_seqs"); an unknown key is an error naming it and the closest valid one.
  Status apply_json(const nlohmann::json& object, void* cfg, std::set<std::string>* given = nullptr) const;
  std::string help(const void* defaults, const std::string& usage) const;
  nlohmann::json to_json(const void* cfg) const;
  const std::vector<OptionDef>& options() const { return defs_; }

 protected:
  void add_def(OptionDef def);

 private:
  const OptionDef* find(const std::string& name) const;
  std::string closest(const std::string& name) const;
  std::vector<OptionDef> defs_;
};

// The candidate closest to `name` by edit distance, or "" when none is plausibly meant.
std::string closest_match(const std::string& name, const std::vector<std::string>& candidates);

// Value conversions shared by all typed bindings.
Status parse_option_value(const std::string& text, bool* out);
Status parse_option_value(const std::string& text, int64_t* out);
Status parse_option_value(const std::string& text, int* out);
Status parse_option_value(const std::string& text, double* out);
Status parse_option_value(const std::string& text, std::string* out);

template <class Cfg>
class OptionTable : public OptionTableBase {
 public:
  // `names` is comma-separated: "--tensor-parallel-size,-tp".
  template <class T>
  OptionTable& add(const std::string& names, T Cfg::*member, std::string help, std::string group = "") {
    OptionDef def;
    def.names = split_names(names);
    def.help = std::move(help);
    def.group = std::move(group);
    def.kind = kind_of<T>();
    def.repeatable = is_list<T>::value;
    def.set = [member](void* cfg, const std::string& text) {
      return assign(static_cast<Cfg*>(cfg)->*member, text);
    };
    def.get = [member](const void* cfg) { return to_json_value(static_cast<const Cfg*>(cfg)->*member); };
    add_def(std::move(def));
    return *this;
  }

  Status parse(const std::vector<std::string>& args, Cfg& cfg, std::vector<std::string>* positionals,
               std::set<std::string>* given = nullptr) const {
    return OptionTableBase::parse(args, &cfg, positionals, given);
  }
  Status apply_json(const nlohmann::json& object, Cfg& cfg) const { return OptionTableBase::apply_json(object, &cfg); }
  std::string help(const Cfg& defaults, const std::string& usage) const { return OptionTableBase::help(&defaults, usage); }
  nlohmann::json to_json(const Cfg& cfg) const { return OptionTableBase::to_json(&cfg); }

 private:
  template <class T> struct is_list : std::false_type {};
  template <class T> struct is_list<std::vector<T>> : std::true_type {};
  template <class T> struct is_optional : std::false_type {};
  template <class T> struct is_optional<std::optional<T>> : std::true_type {};

  template <class T>
  static OptionKind kind_of() {
    if constexpr (std::is_same_v<T, bool>) return OptionKind::kFlag;
    else if constexpr (is_list<T>::value) return OptionKind::kList;
    else if constexpr (is_optional<T>::value) return kind_of<typename T::value_type>();
    else if constexpr (std::is_integral_v<T>) return OptionKind::kInt;
    else if constexpr (std::is_floating_point_v<T>) return OptionKind::kFloat;
    else return OptionKind::kString;
  }

  template <class T>
  static Status assign(T& field, const std::string& text) {
    if constexpr (is_list<T>::value) {
      typename T::value_type v{};
      K2_RETURN_IF_ERROR(parse_option_value(text, &v));
      field.push_back(std::move(v));
      return {};
    } else if constexpr (is_optional<T>::value) {
      typename T::value_type v{};
      K2_RETURN_IF_ERROR(parse_option_value(text, &v));
      field = std::move(v);
      return {};
    } else {
      return parse_option_value(text, &field);
    }
  }

  template <class T>
  static nlohmann::json to_json_value(const T& v) {
    if constexpr (is_optional<T>::value) return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
    else return nlohmann::json(v);
  }

  static std::vector<std::string> split_names(const std::string& names) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start <= names.size()) {
      size_t comma = names.find(',', start);
      if (comma == std::string::npos) comma = names.size();
      if (comma > start) out.push_back(names.substr(start, comma - start));
      start = comma + 1;
    }
    return out;
  }
};

}  // namespace k2
