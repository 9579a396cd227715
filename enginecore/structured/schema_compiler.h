// SchemaCompiler: JSON schema (the subset in compiled_grammar.h) -> NFA rules -> Automaton.
// Every $ref target becomes its own rule (so recursive schemas work and are compiled once);
// everything else is inlined into the rule that uses it. A schema with no constraints
// ("any JSON value") calls one shared recursive rule.
//
// Owns its NFA while compiling; single-use, not thread-safe.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "enginecore/structured/automaton.h"
#include "enginecore/structured/compiled_grammar.h"
#include "shm/status.h"

namespace k2::structured {

class SchemaCompiler {
 public:
  using Json = nlohmann::ordered_json;

  SchemaCompiler(const Json& root, const GrammarLimits& limits);

  Result<Automaton> compile_schema();
  Result<Automaton> compile_any_object();

 private:
  Result<Frag> value(const Json& s, const std::string& path, int depth);
  Result<Frag> value_object(const Json& s, const std::string& path, int depth);
  Result<Frag> combinator(const Json& s, const char* key, const std::string& path, int depth);
  Result<Frag> typed(const std::string& type, const Json& s, const std::string& path, int depth);
  Result<Frag> object(const Json& s, const std::string& path, int depth);
  Result<Frag> array(const Json& s, const std::string& path, int depth);
  Result<Frag> string(const Json& s, const std::string& path);
  Result<Frag> literal(const Json& v, const std::string& path, int depth);
  Result<Frag> enumeration(const Json& values, const std::string& path, int depth);
  Result<uint32_t> ref_rule(const std::string& ref, const std::string& path, int depth);

  Frag ws();
  Frag string_char();
  Frag any_string();
  Frag number(bool integer);
  Frag digits();
  uint32_t any_rule();
  Frag any_object_body();
  Frag any_array_body();
  Result<Frag> repeat(const std::function<Result<Frag>()>& make, int64_t min, std::optional<int64_t> max);
  Result<Automaton> finish();

  const Json& root_;
  GrammarLimits limits_;
  Nfa nfa_;
  std::vector<RuleInfo> rules_;
  std::map<std::string, uint32_t> refs_;
  std::optional<uint32_t> any_rule_;
};

}  // namespace k2::structured
