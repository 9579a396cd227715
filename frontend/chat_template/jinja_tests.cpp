// jinja2's built-in tests (`x is defined`, `x is string`, `x is divisibleby 3`, ...).
#include <cmath>
#include <functional>
#include <unordered_map>

#include "frontend/chat_template/builtins.h"
#include "frontend/chat_template/evaluator.h"
#include "frontend/chat_template/operators.h"

namespace k2::jinja {
namespace {

using Test = std::function<Result<bool>(Interpreter&, const Value&, const CallArgs&)>;

Result<Value> first_arg(const CallArgs& args, std::string_view test) {
  if (!args.positional.empty()) return args.positional[0];
  if (!args.keyword.empty()) return args.keyword[0].second;
  return invalid_argument("TypeError: test '" + std::string(test) + "' needs an argument");
}

Test compare_test(const char* op) {
  return [op](Interpreter&, const Value& v, const CallArgs& args) -> Result<bool> {
    K2_ASSIGN_OR_RETURN(Value other, first_arg(args, op));
    const std::string o = op;
    if (o == "==") return py_equal(v, other);
    if (o == "!=") return !py_equal(v, other);
    if (v.is_undefined()) return Interpreter::undefined_error(v);
    if (other.is_undefined()) return Interpreter::undefined_error(other);
    K2_ASSIGN_OR_RETURN(int c, py_compare(v, other, op));
    if (o == "<") return c < 0;
    if (o == "<=") return c <= 0;
    if (o == ">") return c > 0;
    return c >= 0;
  };
}

Result<bool> parity(const Value& v, int64_t want) {
  if (v.is_undefined()) return Interpreter::undefined_error(v);
  K2_ASSIGN_OR_RETURN(Value m, binary_op("%", v, Value::integer(2), 1 << 20));
  return py_equal(m, Value::integer(want));
}

const std::unordered_map<std::string_view, Test>& test_table() {
  static const auto* table = new std::unordered_map<std::string_view, Test>{
      {"defined", [](Interpreter&, const Value& v, const CallArgs&) -> Result<bool> { return !v.is_undefined(); }},
      {"undefined", [](Interpreter&, const Value& v, const CallArgs&) -> Result<bool> { return v.is_undefined(); }},
      {"none", [](Interpreter&, const Value& v, const CallArgs&) -> Result<bool> { return v.is_none(); }},
      {"boolean", [](Interpreter&, const Value& v, const CallArgs&) -> Result<bool> { return v.is_bool(); }},
      {"true", [](Interpreter&, const Value& v, const CallArgs&) -> Result<bool> { return v.is_bool() && v.as_bool(); }},
      {"false", [](Interpreter&, const Value& v, const CallArgs&) -> Result<bool> { return v.is_bool() && !v.as_bool(); }},
      {"string", [](Interpreter&, const Value& v, const CallArgs&) -> Result<bool> { return v.is_string(); }},
      {"mapping", [](Interpreter&, const Value& v, const CallArgs&) -> Result<bool> { return v.is_dict(); }},
      {"number", [](Interpreter&, const Value& v, const CallArgs&) -> Result<bool> { return v.is_number(); }},
      {"integer", [](Interpreter&, const Value& v, const CallArgs&) -> Result<bool> { return v.is_int(); }},
      {"float", [](Interpreter&, const Value& v, const CallArgs&) -> Result<bool> { return v.is_float(); }},
      {"callable", [](Interpreter&, const Value& v, const CallArgs&) -> Result<bool> { return v.is_callable(); }},
      {"escaped", [](Interpreter&, const Value&, const CallArgs&) -> Result<bool> { return false; }},
      {"iterable", [](Interpreter&, const Value& v, const CallArgs&) -> Result<bool> {
         return v.is_undefined() || v.is_string() || v.is_sequence() || v.is_dict() || v.is_namespace();
       }},
      {"sequence", [](Interpreter&, const Value& v, const CallArgs&) -> Result<bool> {
         return v.is_string() || v.is_sequence() || v.is_dict();
       }},
      {"lower", [](Interpreter&, const Value& v, const CallArgs&) -> Result<bool> {
         const std::string s = py_str(v);
         bool cased = false;
         for (char c : s) {
           if (c >= 'A' && c <= 'Z') return false;
           cased |= c >= 'a' && c <= 'z';
         }
         return cased;
       }},
      {"upper", [](Interpreter&, const Value& v, const CallArgs&) -> Result<bool> {
         const std::string s = py_str(v);
         bool cased = false;
         for (char c : s) {
           if (c >= 'a' && c <= 'z') return false;
           cased |= c >= 'A' && c <= 'Z';
         }
         return cased;
       }},
      {"odd", [](Interpreter&, const Value& v, const CallArgs&) { return parity(v, 1); }},
      {"even", [](Interpreter&, const Value& v, const CallArgs&) { return parity(v, 0); }},
      {"divisibleby", [](Interpreter&, const Value& v, const CallArgs& a) -> Result<bool> {
         K2_ASSIGN_OR_RETURN(Value n, first_arg(a, "divisibleby"));
         K2_ASSIGN_OR_RETURN(Value m, binary_op("%", v, n, 1 << 20));
         return py_equal(m, Value::integer(0));
       }},
      {"in", [](Interpreter&, const Value& v, const CallArgs& a) -> Result<bool> {
         K2_ASSIGN_OR_RETURN(Value seq, first_arg(a, "in"));
         return contains(seq, v);
       }},
      {"sameas", [](Interpreter&, const Value& v, const CallArgs& a) -> Result<bool> {
         K2_ASSIGN_OR_RETURN(Value other, first_arg(a, "sameas"));
         if (v.kind() != other.kind()) return false;
         if (v.is_none() || v.is_bool() || v.is_undefined()) return py_equal(v, other);
         return false;  // distinct objects unless literally the same singleton
       }},
      {"filter", [](Interpreter&, const Value& v, const CallArgs&) -> Result<bool> {
         return v.is_string() && has_filter(v.as_string());
       }},
      {"test", [](Interpreter&, const Value& v, const CallArgs&) -> Result<bool> {
         return v.is_string() && has_test(v.as_string());
       }},
      {"eq", compare_test("==")},
      {"equalto", compare_test("==")},
      {"==", compare_test("==")},
      {"ne", compare_test("!=")},
      {"!=", compare_test("!=")},
      {"lt", compare_test("<")},
      {"lessthan", compare_test("<")},
      {"<", compare_test("<")},
      {"le", compare_test("<=")},
      {"<=", compare_test("<=")},
      {"gt", compare_test(">")},
      {"greaterthan", compare_test(">")},
      {">", compare_test(">")},
      {"ge", compare_test(">=")},
      {">=", compare_test(">=")},
  };
  return *table;
}

}  // namespace

bool has_test(std::string_view name) { return test_table().count(name) != 0; }

Result<bool> apply_test(Interpreter& interp, std::string_view name, const Value& input, const CallArgs& args) {
  const auto& table = test_table();
  const auto it = table.find(name);
  if (it == table.end()) return invalid_argument("TemplateRuntimeError: No test named '" + std::string(name) + "'.");
  return it->second(interp, input, args);
}

}  // namespace k2::jinja
