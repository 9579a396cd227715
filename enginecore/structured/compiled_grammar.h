// CompiledGrammar: a JSON schema (or "any JSON object") compiled into a byte-level automaton
// that GrammarMatcher runs. Immutable after construction and safe to share between threads
// and requests (hold it by shared_ptr).
//
// What the grammar accepts (xgrammar's strict mode, with these choices):
//  - no whitespace before the value or after it; between structural tokens ({ } [ ] , :) a run
//    of at most GrammarLimits::max_whitespace characters from " \t\n", so both json.dumps'
//    ", " / ": " and compact output match while endless whitespace cannot;
//  - object properties in schema order, optional ones omittable; additionalProperties is false
//    unless the schema says true or gives a schema (extra keys then follow the declared ones);
//  - numbers in JSON syntax, any number of digits; minimum/maximum and their exclusive forms
//    are ignored (not enforced); "integer" allows no fraction and no exponent;
//  - strings: any UTF-8 except raw control characters, with JSON escapes; minLength/maxLength
//    count characters (an escape is one character).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "enginecore/structured/automaton.h"
#include "shm/status.h"

namespace k2::structured {

struct GrammarLimits {
  int max_schema_depth = 64;            // nesting of schema objects walked while compiling
  int max_nesting_depth = 32;           // rule calls on the matcher's stack ($ref, free JSON)
  size_t max_nfa_states = 400000;
  size_t max_dfa_states = 60000;
  size_t max_compile_work = 30000000;   // NFA states visited while determinising
  size_t max_rules = 1024;              // distinct $ref targets
  size_t max_enum_values = 4096;
  int max_whitespace = 8;               // whitespace characters allowed at one place
  int max_unrolled_repeat = 1024;       // largest minLength/maxLength/minItems/maxItems honoured
  size_t max_stacks = 256;              // parallel parses one matcher step may keep
};

class CompiledGrammar {
 public:
  // Key order of `schema` is the order properties must be generated in, hence ordered_json.
  static Result<std::shared_ptr<const CompiledGrammar>> from_json_schema(
      const nlohmann::ordered_json& schema, const GrammarLimits& limits = {});
  // Parses the schema text first (errors name the parse position).
  static Result<std::shared_ptr<const CompiledGrammar>> from_json_schema_text(
      std::string_view schema_text, const GrammarLimits& limits = {});
  // response_format {"type": "json_object"}: any JSON object.
  static Result<std::shared_ptr<const CompiledGrammar>> any_json_object(const GrammarLimits& limits = {});

  const Automaton& automaton() const { return automaton_; }
  const GrammarLimits& limits() const { return limits_; }

  CompiledGrammar(Automaton automaton, GrammarLimits limits)
      : automaton_(std::move(automaton)), limits_(limits) {}

 private:
  Automaton automaton_;
  GrammarLimits limits_;
};

}  // namespace k2::structured
