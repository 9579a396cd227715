// Parser: expressions (primary, postfix, filters, tests, call arguments, subscripts).
#include "frontend/chat_template/parser_impl.h"

namespace k2::jinja::parser_detail {

Result<ExprPtr> Parser::parse_primary() {
  DepthGuard guard(depth_);
  K2_RETURN_IF_ERROR(check_depth());
  const Token& t = current();
  const int line = t.line;
  if (t.type == TokenType::kName) {
    auto e = make_expr(ExprKind::kConst, line);
    if (t.text == "true" || t.text == "True" || t.text == "false" || t.text == "False") {
      e->value = Value::boolean(t.text == "true" || t.text == "True");
    } else if (t.text == "none" || t.text == "None") {
      e->value = Value::none();
    } else {
      e->kind = ExprKind::kName;
      e->name = t.text;
    }
    next();
    return e;
  }
  if (t.type == TokenType::kString) {
    std::string text;
    while (current().type == TokenType::kString) {  // adjacent literals concatenate
      text += current().text;
      next();
    }
    auto e = make_expr(ExprKind::kConst, line);
    e->value = Value::string(std::move(text));
    return e;
  }
  if (t.type == TokenType::kInteger || t.type == TokenType::kFloat) {
    auto e = make_expr(ExprKind::kConst, line);
    e->value = t.type == TokenType::kInteger ? Value::integer(t.int_value) : Value::number(t.float_value);
    next();
    return e;
  }
  if (skip_op("(")) {
    K2_ASSIGN_OR_RETURN(ExprPtr inner, parse_tuple(false, true, {}, true));
    K2_RETURN_IF_ERROR(expect_op(")"));
    return inner;
  }
  if (is_op("[") || is_op("{")) {
    const bool is_list = is_op("[");
    const char* close = is_list ? "]" : "}";
    next();
    auto e = make_expr(is_list ? ExprKind::kList : ExprKind::kDict, line);
    while (!is_op(close)) {
      if (!e->children.empty()) K2_RETURN_IF_ERROR(expect_op(","));
      if (is_op(close)) break;
      K2_ASSIGN_OR_RETURN(ExprPtr item, parse_expression(true));
      e->children.push_back(std::move(item));
      if (!is_list) {
        K2_RETURN_IF_ERROR(expect_op(":"));
        K2_ASSIGN_OR_RETURN(ExprPtr value, parse_expression(true));
        e->children.push_back(std::move(value));
      }
    }
    K2_RETURN_IF_ERROR(expect_op(close));
    return e;
  }
  return fail("unexpected '" + describe(t) + "'");
}

Result<ExprPtr> Parser::parse_postfix(ExprPtr node) {
  ChainGuard chain(*this);
  while (true) {
    K2_RETURN_IF_ERROR(chain.grow());
    if (is_op(".") || is_op("[")) {
      K2_ASSIGN_OR_RETURN(node, parse_subscript(std::move(node)));
    } else if (is_op("(")) {
      K2_ASSIGN_OR_RETURN(node, parse_call(std::move(node)));
    } else {
      return node;
    }
  }
}

// `callee(args...)`: the current token is the opening parenthesis.
Result<ExprPtr> Parser::parse_call(ExprPtr callee) {
  auto call = make_expr(ExprKind::kCall, current().line);
  call->children.push_back(std::move(callee));
  K2_RETURN_IF_ERROR(parse_call_args(*call));
  return call;
}

Result<ExprPtr> Parser::parse_filter_expr(ExprPtr node) {
  ChainGuard chain(*this);
  while (true) {
    K2_RETURN_IF_ERROR(chain.grow());
    if (is_op("|")) {
      K2_ASSIGN_OR_RETURN(node, parse_filter(std::move(node), false));
    } else if (is_name("is")) {
      K2_ASSIGN_OR_RETURN(node, parse_test(std::move(node)));
    } else if (is_op("(")) {
      K2_ASSIGN_OR_RETURN(node, parse_call(std::move(node)));
    } else {
      return node;
    }
  }
}

Result<ExprPtr> Parser::parse_subscript(ExprPtr node) {
  const int line = current().line;
  if (skip_op(".")) {
    const Token& attr = current();
    if (attr.type == TokenType::kName) {
      auto e = make_expr(ExprKind::kGetattr, line);
      e->name = attr.text;
      e->children.push_back(std::move(node));
      next();
      return e;
    }
    if (attr.type != TokenType::kInteger) return fail("expected name or number");
    auto e = make_expr(ExprKind::kGetitem, line);
    e->children.push_back(std::move(node));
    auto index = make_expr(ExprKind::kConst, line);
    index->value = Value::integer(attr.int_value);
    e->children.push_back(std::move(index));
    next();
    return e;
  }
  K2_RETURN_IF_ERROR(expect_op("["));
  std::vector<ExprPtr> args;
  while (!is_op("]")) {
    if (!args.empty()) K2_RETURN_IF_ERROR(expect_op(","));
    K2_ASSIGN_OR_RETURN(ExprPtr arg, parse_subscribed());
    args.push_back(std::move(arg));
  }
  K2_RETURN_IF_ERROR(expect_op("]"));
  auto e = make_expr(ExprKind::kGetitem, line);
  e->children.push_back(std::move(node));
  if (args.size() == 1) {
    e->children.push_back(std::move(args[0]));
  } else {
    auto tuple = make_expr(ExprKind::kTuple, line);
    tuple->children = std::move(args);
    e->children.push_back(std::move(tuple));
  }
  return e;
}

Result<ExprPtr> Parser::parse_subscribed() {
  const int line = current().line;
  auto slice = make_expr(ExprKind::kSlice, line);
  if (skip_op(":")) {
    slice->children.push_back(nullptr);
  } else {
    K2_ASSIGN_OR_RETURN(ExprPtr node, parse_expression(true));
    if (!skip_op(":")) return node;
    slice->children.push_back(std::move(node));
  }
  auto optional_expr = [&]() -> Result<ExprPtr> {
    if (is_op("]") || is_op(",") || is_op(":")) return ExprPtr{};
    return parse_expression(true);
  };
  K2_ASSIGN_OR_RETURN(ExprPtr stop, optional_expr());
  slice->children.push_back(std::move(stop));
  ExprPtr step;
  if (skip_op(":")) {
    K2_ASSIGN_OR_RETURN(step, optional_expr());
  }
  slice->children.push_back(std::move(step));
  return slice;
}

Status Parser::parse_call_args(Expr& target) {
  K2_RETURN_IF_ERROR(expect_op("("));
  bool require_comma = false;
  auto ensure = [&](bool ok) -> Status {
    if (!ok) return fail("invalid syntax for function call expression");
    return {};
  };
  while (!is_op(")")) {
    if (require_comma) {
      K2_RETURN_IF_ERROR(expect_op(","));
      if (is_op(")")) break;
    }
    if (skip_op("*")) {
      K2_RETURN_IF_ERROR(ensure(!target.dyn_args && !target.dyn_kwargs));
      K2_ASSIGN_OR_RETURN(target.dyn_args, parse_expression(true));
    } else if (skip_op("**")) {
      K2_RETURN_IF_ERROR(ensure(!target.dyn_kwargs));
      K2_ASSIGN_OR_RETURN(target.dyn_kwargs, parse_expression(true));
    } else if (current().type == TokenType::kName && look().type == TokenType::kOperator && look().text == "=") {
      K2_RETURN_IF_ERROR(ensure(!target.dyn_kwargs));
      std::string key = current().text;
      next();
      next();
      K2_ASSIGN_OR_RETURN(ExprPtr value, parse_expression(true));
      target.kwargs.emplace_back(std::move(key), std::move(value));
    } else {
      K2_RETURN_IF_ERROR(ensure(!target.dyn_args && !target.dyn_kwargs && target.kwargs.empty()));
      K2_ASSIGN_OR_RETURN(ExprPtr arg, parse_expression(true));
      target.children.push_back(std::move(arg));
    }
    require_comma = true;
  }
  return expect_op(")");
}

Result<ExprPtr> Parser::parse_filter(ExprPtr node, bool start_inline) {
  ChainGuard chain(*this);
  while (is_op("|") || start_inline) {
    K2_RETURN_IF_ERROR(chain.grow());
    if (!start_inline) next();
    start_inline = false;
    auto e = make_expr(ExprKind::kFilter, current().line);
    K2_ASSIGN_OR_RETURN(e->name, expect_name());
    while (skip_op(".")) {
      K2_ASSIGN_OR_RETURN(std::string part, expect_name());
      e->name += "." + part;
    }
    e->children.push_back(std::move(node));
    if (is_op("(")) K2_RETURN_IF_ERROR(parse_call_args(*e));
    node = std::move(e);
  }
  return node;
}

Result<ExprPtr> Parser::parse_test(ExprPtr node) {
  const int line = current().line;
  next();  // 'is'
  const bool negated = skip_name("not");
  auto e = make_expr(ExprKind::kTest, line);
  K2_ASSIGN_OR_RETURN(e->name, expect_name());
  while (skip_op(".")) {
    K2_ASSIGN_OR_RETURN(std::string part, expect_name());
    e->name += "." + part;
  }
  e->children.push_back(std::move(node));
  const Token& t = current();
  if (is_op("(")) {
    K2_RETURN_IF_ERROR(parse_call_args(*e));
  } else if ((t.type == TokenType::kName || t.type == TokenType::kString || t.type == TokenType::kInteger ||
              t.type == TokenType::kFloat || is_op("[") || is_op("{")) &&
             !is_name("else") && !is_name("or") && !is_name("and")) {
    if (is_name("is")) return fail("You cannot chain multiple tests with is");
    K2_ASSIGN_OR_RETURN(ExprPtr arg, parse_primary());
    K2_ASSIGN_OR_RETURN(arg, parse_postfix(std::move(arg)));
    e->children.push_back(std::move(arg));
  }
  if (!negated) return e;
  auto n = make_expr(ExprKind::kNot, line);
  n->children.push_back(std::move(e));
  return n;
}

// Collects whether a macro body reads varargs/kwargs/caller (outside nested macros).
void Parser::scan_implicit_names(const Body& body, MacroSignature& sig) {
  std::function<void(const Expr*)> scan_expr = [&](const Expr* e) {
    if (!e) return;
    if (e->kind == ExprKind::kName) {
      if (e->name == "varargs") sig.uses_varargs = true;
      if (e->name == "kwargs") sig.uses_kwargs = true;
      if (e->name == "caller") sig.uses_caller = true;
    }
    for (const auto& c : e->children) scan_expr(c.get());
    for (const auto& kv : e->kwargs) scan_expr(kv.second.get());
    scan_expr(e->dyn_args.get());
    scan_expr(e->dyn_kwargs.get());
  };
  std::function<void(const Body&)> scan_body = [&](const Body& b) {
    for (const auto& s : b) {
      for (const auto& e : s->exprs) scan_expr(e.get());
      if (s->kind == StmtKind::kMacro) {
        for (const auto& d : s->signature.defaults) scan_expr(d.get());
        continue;
      }
      for (const auto& inner : s->bodies) scan_body(inner);
    }
  };
  scan_body(body);
}

}  // namespace k2::jinja::parser_detail
