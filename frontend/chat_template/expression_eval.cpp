// Interpreter: expression evaluation (the statement half is in evaluator.cpp).
#include <optional>

#include "frontend/chat_template/builtins.h"
#include "frontend/chat_template/evaluator.h"
#include "frontend/chat_template/operators.h"

namespace k2::jinja {

Result<Value> Interpreter::eval(const Expr& e, const ScopePtr& scope) {
  K2_RETURN_IF_ERROR(step());
  DepthCounter guard(native_depth_);
  if (native_depth_ > limits_.max_native_depth) return out_of_range("RecursionError: template evaluation nested too deeply");
  switch (e.kind) {
    case ExprKind::kConst: return e.value;
    case ExprKind::kName: return eval_name(e, scope);
    case ExprKind::kList:
    case ExprKind::kTuple:
    case ExprKind::kDict: return eval_collection(e, scope);
    case ExprKind::kGetattr: {
      K2_ASSIGN_OR_RETURN(Value obj, eval(*e.children[0], scope));
      return get_attr(obj, e.name);
    }
    case ExprKind::kGetitem: {
      K2_ASSIGN_OR_RETURN(Value obj, eval(*e.children[0], scope));
      if (e.children[1]->kind == ExprKind::kSlice) return eval_slice(*e.children[1], obj, scope);
      K2_ASSIGN_OR_RETURN(Value key, eval(*e.children[1], scope));
      return get_item(obj, key);
    }
    case ExprKind::kSlice: return invalid_argument("TemplateSyntaxError: slice outside of a subscript");
    case ExprKind::kCall: {
      K2_ASSIGN_OR_RETURN(Value fn, eval(*e.children[0], scope));
      K2_ASSIGN_OR_RETURN(CallArgs args, eval_args(e, scope, 1));
      return call(fn, std::move(args));
    }
    case ExprKind::kFilter: return eval_filter(e, scope, nullptr);
    case ExprKind::kTest: {
      K2_ASSIGN_OR_RETURN(Value input, eval(*e.children[0], scope));
      K2_ASSIGN_OR_RETURN(CallArgs args, eval_args(e, scope, 1));
      K2_ASSIGN_OR_RETURN(bool result, apply_test(*this, e.name, input, args));
      return Value::boolean(result);
    }
    case ExprKind::kNot: {
      K2_ASSIGN_OR_RETURN(Value v, eval(*e.children[0], scope));
      return Value::boolean(!v.truthy());
    }
    case ExprKind::kNeg: {
      K2_ASSIGN_OR_RETURN(Value v, eval(*e.children[0], scope));
      return unary_minus(v);
    }
    case ExprKind::kPos: {
      K2_ASSIGN_OR_RETURN(Value v, eval(*e.children[0], scope));
      if (v.is_undefined()) return undefined_error(v);
      if (!v.is_number()) {
        return invalid_argument(std::string("TypeError: bad operand type for unary +: '") + v.type_name() + "'");
      }
      return v.is_bool() ? Value::integer(v.as_int()) : v;
    }
    case ExprKind::kBinary: {
      K2_ASSIGN_OR_RETURN(Value a, eval(*e.children[0], scope));
      K2_ASSIGN_OR_RETURN(Value b, eval(*e.children[1], scope));
      return binary_op(e.name, a, b, limits_.max_output_bytes);
    }
    case ExprKind::kConcat: {
      std::string out;
      for (const auto& c : e.children) {
        K2_ASSIGN_OR_RETURN(Value v, eval(*c, scope));
        out += py_str(v, limits_.max_output_bytes + 1);
        K2_RETURN_IF_ERROR(check_size(out.size()));
      }
      return Value::string(std::move(out));
    }
    case ExprKind::kCompare: return eval_compare(e, scope);
    case ExprKind::kAnd:
    case ExprKind::kOr: {
      K2_ASSIGN_OR_RETURN(Value left, eval(*e.children[0], scope));
      if (left.truthy() == (e.kind == ExprKind::kOr)) return left;
      return eval(*e.children[1], scope);
    }
    case ExprKind::kCondExpr: {
      K2_ASSIGN_OR_RETURN(Value test, eval(*e.children[1], scope));
      if (test.truthy()) return eval(*e.children[0], scope);
      if (e.children[2]) return eval(*e.children[2], scope);
      return Value::undefined("the inline if-expression on line " + std::to_string(e.line) +
                              " evaluated to false and no else section was defined.");
    }
  }
  return internal_error("unknown expression kind");
}

Result<Value> Interpreter::eval_name(const Expr& e, const ScopePtr& scope) {
  for (const Scope* s = scope.get(); s; s = s->parent.get()) {
    if (const Value* v = s->find(e.name)) return *v;
  }
  for (const Scope* s = globals_.get(); s; s = s->parent.get()) {
    if (const Value* v = s->find(e.name)) return *v;
  }
  if (auto global = builtin_global(e.name)) return *global;
  return Value::undefined("'" + e.name + "' is undefined");
}

Result<Value> Interpreter::eval_collection(const Expr& e, const ScopePtr& scope) {
  if (e.kind == ExprKind::kDict) {
    Dict d;
    for (size_t i = 0; i + 1 < e.children.size(); i += 2) {
      K2_ASSIGN_OR_RETURN(Value k, eval(*e.children[i], scope));
      K2_ASSIGN_OR_RETURN(Value v, eval(*e.children[i + 1], scope));
      if (!(k.is_string() || k.is_number() || k.is_none() || k.is_tuple())) {
        return invalid_argument(std::string("TypeError: unhashable type: '") + k.type_name() + "'");
      }
      bool replaced = false;
      for (auto& entry : d.entries) {
        if (py_equal(entry.first, k)) {
          entry.second = v;
          replaced = true;
          break;
        }
      }
      if (!replaced) d.entries.emplace_back(std::move(k), std::move(v));
    }
    return Value::dict(std::move(d));
  }
  ValueList items;
  items.reserve(e.children.size());
  for (const auto& c : e.children) {
    K2_ASSIGN_OR_RETURN(Value v, eval(*c, scope));
    items.push_back(std::move(v));
  }
  return e.kind == ExprKind::kList ? Value::list(std::move(items)) : Value::tuple(std::move(items));
}

Result<Value> Interpreter::eval_compare(const Expr& e, const ScopePtr& scope) {
  K2_ASSIGN_OR_RETURN(Value left, eval(*e.children[0], scope));
  for (size_t i = 0; i < e.ops.size(); ++i) {
    K2_ASSIGN_OR_RETURN(Value right, eval(*e.children[i + 1], scope));
    const std::string& op = e.ops[i];
    bool result = false;
    if (op == "==") {
      result = py_equal(left, right);
    } else if (op == "!=") {
      result = !py_equal(left, right);
    } else if (op == "in" || op == "notin") {
      if (right.is_undefined() && right.undefined_info() && right.undefined_info()->unsafe) {
        return undefined_error(right);
      }
      K2_ASSIGN_OR_RETURN(bool found, contains(right, left));
      result = (op == "in") == found;
    } else {
      if (left.is_undefined()) return undefined_error(left);
      if (right.is_undefined()) return undefined_error(right);
      K2_ASSIGN_OR_RETURN(int c, py_compare(left, right, op.c_str()));
      result = op == "<" ? c < 0 : op == "<=" ? c <= 0 : op == ">" ? c > 0 : c >= 0;
    }
    if (!result) return Value::boolean(false);
    left = std::move(right);
  }
  return Value::boolean(true);
}

Result<Value> Interpreter::eval_slice(const Expr& e, const Value& obj, const ScopePtr& scope) {
  std::optional<int64_t> parts[3];
  for (size_t i = 0; i < 3; ++i) {
    if (!e.children[i]) continue;
    K2_ASSIGN_OR_RETURN(Value v, eval(*e.children[i], scope));
    if (v.is_none()) continue;
    if (!v.is_int() && !v.is_bool()) {
      return invalid_argument("TypeError: slice indices must be integers or None");
    }
    parts[i] = v.as_int();
  }
  return slice_value(obj, parts[0], parts[1], parts[2]);
}

Result<CallArgs> Interpreter::eval_args(const Expr& e, const ScopePtr& scope, size_t first_child) {
  CallArgs args;
  for (size_t i = first_child; i < e.children.size(); ++i) {
    K2_ASSIGN_OR_RETURN(Value v, eval(*e.children[i], scope));
    args.positional.push_back(std::move(v));
  }
  for (const auto& [k, expr] : e.kwargs) {
    K2_ASSIGN_OR_RETURN(Value v, eval(*expr, scope));
    args.keyword.emplace_back(k, std::move(v));
  }
  if (e.dyn_args) {
    K2_ASSIGN_OR_RETURN(Value v, eval(*e.dyn_args, scope));
    K2_ASSIGN_OR_RETURN(ValueList items, py_iterate(v));
    for (auto& item : items) args.positional.push_back(std::move(item));
  }
  if (e.dyn_kwargs) {
    K2_ASSIGN_OR_RETURN(Value v, eval(*e.dyn_kwargs, scope));
    if (!v.is_dict()) return invalid_argument("TypeError: argument after ** must be a mapping");
    for (const auto& [k, val] : v.as_dict().entries) {
      if (!k.is_string()) return invalid_argument("TypeError: keywords must be strings");
      args.keyword.emplace_back(k.as_string(), val);
    }
  }
  return args;
}

// A filter chain; the innermost input is `input` when the chain came from a filter or
// set block (whose innermost node is empty).
Result<Value> Interpreter::eval_filter(const Expr& e, const ScopePtr& scope, const Value* input) {
  Value value;
  if (e.children[0]) {
    if (e.children[0]->kind == ExprKind::kFilter) {
      K2_ASSIGN_OR_RETURN(value, eval_filter(*e.children[0], scope, input));
    } else {
      K2_ASSIGN_OR_RETURN(value, eval(*e.children[0], scope));
    }
  } else if (input) {
    value = *input;
  }
  K2_RETURN_IF_ERROR(step());
  K2_ASSIGN_OR_RETURN(CallArgs args, eval_args(e, scope, 1));
  return apply_filter(*this, e.name, value, args);
}

}  // namespace k2::jinja
