#include "enginecore/structured/compiled_grammar.h"

#include <algorithm>

#include "enginecore/structured/json_depth.h"
#include "enginecore/structured/schema_compiler.h"

namespace k2::structured {

Result<std::shared_ptr<const CompiledGrammar>> CompiledGrammar::from_json_schema(
    const nlohmann::ordered_json& schema, const GrammarLimits& limits) {
  // Compiling copies and compares sub-schemas recursively; a document nested far deeper than
  // any schema the compiler accepts is refused first.
  size_t max_json_depth = 4 * static_cast<size_t>(std::max(limits.max_schema_depth, 0)) + 8;
  if (json_deeper_than(schema, max_json_depth)) {
    return out_of_range("JSON schema nested deeper than " + std::to_string(max_json_depth) + " levels");
  }
  SchemaCompiler compiler(schema, limits);
  K2_ASSIGN_OR_RETURN(Automaton automaton, compiler.compile_schema());
  return std::make_shared<const CompiledGrammar>(std::move(automaton), limits);
}

Result<std::shared_ptr<const CompiledGrammar>> CompiledGrammar::from_json_schema_text(
    std::string_view schema_text, const GrammarLimits& limits) {
  nlohmann::ordered_json schema = nlohmann::ordered_json::parse(schema_text, nullptr, false);
  if (schema.is_discarded()) return invalid_argument("JSON schema is not valid JSON");
  return from_json_schema(schema, limits);
}

Result<std::shared_ptr<const CompiledGrammar>> CompiledGrammar::any_json_object(const GrammarLimits& limits) {
  static const nlohmann::ordered_json kUnused;
  SchemaCompiler compiler(kUnused, limits);
  K2_ASSIGN_OR_RETURN(Automaton automaton, compiler.compile_any_object());
  return std::make_shared<const CompiledGrammar>(std::move(automaton), limits);
}

}  // namespace k2::structured
