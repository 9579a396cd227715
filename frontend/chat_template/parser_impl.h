// Private to the parser's two source files: the recursive-descent Parser class. Statements
// are parsed inline here; expressions in parser_expressions.cpp. One Parser per parse call;
// not shared between threads.
#pragma once

#include <algorithm>
#include <functional>
#include <initializer_list>

#include "frontend/chat_template/parser.h"

namespace k2::jinja::parser_detail {


inline ExprPtr make_expr(ExprKind kind, int line) {
  auto e = std::make_unique<Expr>();
  e->kind = kind;
  e->line = line;
  return e;
}

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  Result<Body> parse() {
    K2_ASSIGN_OR_RETURN(Body body, subparse({}));
    if (current().type != TokenType::kEof) return fail("unexpected '" + describe(current()) + "'");
    return body;
  }

 private:
  // --- token stream ---------------------------------------------------------------
  const Token& current() const { return tokens_[pos_]; }
  const Token& look() const { return tokens_[std::min(pos_ + 1, tokens_.size() - 1)]; }
  void next() {
    if (pos_ + 1 < tokens_.size()) ++pos_;
  }
  bool is_op(std::string_view op) const { return current().type == TokenType::kOperator && current().text == op; }
  bool is_name(std::string_view name) const { return current().type == TokenType::kName && current().text == name; }
  bool skip_op(std::string_view op) {
    if (!is_op(op)) return false;
    next();
    return true;
  }
  bool skip_name(std::string_view name) {
    if (!is_name(name)) return false;
    next();
    return true;
  }

  static std::string describe(const Token& t) {
    switch (t.type) {
      case TokenType::kEof: return "end of template";
      case TokenType::kBlockEnd: return "end of statement block";
      case TokenType::kVariableEnd: return "end of print statement";
      case TokenType::kBlockBegin: return "begin of statement block";
      case TokenType::kVariableBegin: return "begin of print statement";
      case TokenType::kData: return "template data";
      default: return t.text;
    }
  }

  Status fail(const std::string& message) const {
    return invalid_argument("TemplateSyntaxError: " + message + " (line " + std::to_string(current().line) + ")");
  }
  Status expect_op(std::string_view op) {
    if (!skip_op(op)) return fail("expected '" + std::string(op) + "', got '" + describe(current()) + "'");
    return {};
  }
  Status expect_type(TokenType type, const char* what) {
    if (current().type != type) return fail(std::string("expected ") + what + ", got '" + describe(current()) + "'");
    next();
    return {};
  }
  Result<std::string> expect_name() {
    if (current().type != TokenType::kName) return fail("expected name, got '" + describe(current()) + "'");
    std::string name = current().text;
    next();
    return name;
  }

  // Guards recursion: every recursive descent goes through one of these.
  struct DepthGuard {
    explicit DepthGuard(int& d) : depth(d) { ++depth; }
    ~DepthGuard() { --depth; }
    int& depth;
  };
  // Left-deep chains (a + b + c, x|f|g, a.b.c) deepen the tree without recursing in the
  // parser; each link counts as one level so evaluation depth stays bounded too.
  struct ChainGuard {
    explicit ChainGuard(Parser& p) : parser(p) {}
    ~ChainGuard() { parser.depth_ -= added; }
    Status grow() {
      ++parser.depth_;
      ++added;
      return parser.check_depth();
    }
    Parser& parser;
    int added = 0;
  };
  Status check_depth() const {
    if (depth_ > kMaxParseDepth) return fail("template nested too deeply");
    return {};
  }

  // --- statements -----------------------------------------------------------------
  // Parses until a block whose tag name is in `end_names` (left unconsumed) or EOF.
  Result<Body> subparse(std::initializer_list<std::string_view> end_names) {
    DepthGuard guard(depth_);
    K2_RETURN_IF_ERROR(check_depth());
    Body body;
    while (current().type != TokenType::kEof) {
      const Token& t = current();
      if (t.type == TokenType::kData) {
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::kData;
        s->line = t.line;
        s->text = t.text;
        body.push_back(std::move(s));
        next();
      } else if (t.type == TokenType::kVariableBegin) {
        next();
        auto s = std::make_unique<Stmt>();
        s->kind = StmtKind::kOutput;
        s->line = t.line;
        K2_ASSIGN_OR_RETURN(ExprPtr e, parse_tuple(false, true, {}, false));
        s->exprs.push_back(std::move(e));
        K2_RETURN_IF_ERROR(expect_type(TokenType::kVariableEnd, "end of print statement"));
        body.push_back(std::move(s));
      } else if (t.type == TokenType::kBlockBegin) {
        next();
        if (current().type == TokenType::kName &&
            std::find(end_names.begin(), end_names.end(), current().text) != end_names.end()) {
          return body;
        }
        K2_ASSIGN_OR_RETURN(StmtPtr s, parse_statement());
        K2_RETURN_IF_ERROR(expect_type(TokenType::kBlockEnd, "end of statement block"));
        if (s) body.push_back(std::move(s));
      } else {
        return fail("unexpected '" + describe(t) + "'");
      }
    }
    if (end_names.size() != 0) {
      return fail("unexpected end of template, expected '" + std::string(*end_names.begin()) + "'");
    }
    return body;
  }

  // `%}` then a body up to one of end_names; drop_needle consumes the end tag name.
  Result<Body> parse_statements(std::initializer_list<std::string_view> end_names, bool drop_needle) {
    skip_op(":");
    K2_RETURN_IF_ERROR(expect_type(TokenType::kBlockEnd, "end of statement block"));
    K2_ASSIGN_OR_RETURN(Body body, subparse(end_names));
    if (current().type == TokenType::kEof) {
      return fail("unexpected end of template, expected '" + std::string(*end_names.begin()) + "'");
    }
    if (drop_needle) next();
    return body;
  }

  StmtPtr new_stmt(StmtKind kind) {
    auto s = std::make_unique<Stmt>();
    s->kind = kind;
    s->line = current().line;
    return s;
  }

  Result<StmtPtr> parse_statement() {
    if (current().type != TokenType::kName) return fail("tag name expected");
    const std::string tag = current().text;
    if (tag == "if") return parse_if();
    if (tag == "for") return parse_for();
    if (tag == "set") return parse_set();
    if (tag == "macro") return parse_macro();
    if (tag == "call") return parse_call_block();
    if (tag == "filter") return parse_filter_block();
    if (tag == "with") return parse_with();
    if (tag == "print") return parse_print();
    if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) return fail("'" + tag + "' outside of a loop");
      auto s = new_stmt(tag == "break" ? StmtKind::kBreak : StmtKind::kContinue);
      next();
      return s;
    }
    if (tag == "generation") {
      auto s = new_stmt(StmtKind::kScope);
      next();
      K2_ASSIGN_OR_RETURN(Body body, parse_statements({"endgeneration"}, true));
      s->bodies.push_back(std::move(body));
      return s;
    }
    static const char* kKnownUnsupported[] = {"block", "extends", "include", "import", "from", "autoescape"};
    for (const char* known : kKnownUnsupported) {
      if (tag == known) return fail("tag '" + tag + "' is not supported by this engine (no template loader)");
    }
    return fail("Encountered unknown tag '" + tag + "'.");
  }

  Result<StmtPtr> parse_if() {
    auto s = new_stmt(StmtKind::kIf);
    next();
    while (true) {
      K2_ASSIGN_OR_RETURN(ExprPtr test, parse_tuple(false, false, {}, false));
      s->exprs.push_back(std::move(test));
      K2_ASSIGN_OR_RETURN(Body body, parse_statements({"elif", "else", "endif"}, false));
      s->bodies.push_back(std::move(body));
      const std::string tag = current().text;
      next();
      if (tag == "elif") continue;
      if (tag == "else") {
        K2_ASSIGN_OR_RETURN(Body else_body, parse_statements({"endif"}, true));
        s->bodies.push_back(std::move(else_body));
      }
      return s;
    }
  }

  Result<StmtPtr> parse_for() {
    auto s = new_stmt(StmtKind::kFor);
    next();
    K2_ASSIGN_OR_RETURN(s->target, parse_assign_target(true, false, {"in"}));
    if (!skip_name("in")) return fail("expected 'in', got '" + describe(current()) + "'");
    K2_ASSIGN_OR_RETURN(ExprPtr iter, parse_tuple(false, false, {"recursive"}, false));
    s->exprs.push_back(std::move(iter));
    if (skip_name("if")) {
      K2_ASSIGN_OR_RETURN(ExprPtr test, parse_expression(true));
      s->exprs.push_back(std::move(test));
    }
    s->recursive = skip_name("recursive");
    ++loop_depth_;
    auto body = parse_statements({"endfor", "else"}, false);
    --loop_depth_;
    if (!body.ok()) return body.status();
    s->bodies.push_back(std::move(body).value());
    const std::string tag = current().text;
    next();
    if (tag == "else") {
      K2_ASSIGN_OR_RETURN(Body else_body, parse_statements({"endfor"}, true));
      s->bodies.push_back(std::move(else_body));
    }
    return s;
  }

  Result<StmtPtr> parse_set() {
    auto s = new_stmt(StmtKind::kSet);
    next();
    K2_ASSIGN_OR_RETURN(s->target, parse_assign_target(true, true, {}));
    if (skip_op("=")) {
      K2_ASSIGN_OR_RETURN(ExprPtr value, parse_tuple(false, true, {}, false));
      s->exprs.push_back(std::move(value));
      return s;
    }
    s->kind = StmtKind::kSetBlock;
    if (is_op("|")) {
      K2_ASSIGN_OR_RETURN(ExprPtr filter, parse_filter(nullptr, false));
      s->exprs.push_back(std::move(filter));
    }
    K2_ASSIGN_OR_RETURN(Body body, parse_statements({"endset"}, true));
    s->bodies.push_back(std::move(body));
    return s;
  }

  Status parse_signature(MacroSignature& sig) {
    K2_RETURN_IF_ERROR(expect_op("("));
    while (!is_op(")")) {
      if (!sig.params.empty()) K2_RETURN_IF_ERROR(expect_op(","));
      K2_ASSIGN_OR_RETURN(std::string name, expect_name());
      if (skip_op("=")) {
        K2_ASSIGN_OR_RETURN(ExprPtr def, parse_expression(true));
        sig.defaults.push_back(std::move(def));
      } else if (!sig.defaults.empty()) {
        return fail("non-default argument follows default argument");
      }
      sig.params.push_back(std::move(name));
    }
    return expect_op(")");
  }

  // jinja2 only lets a macro take extra arguments / a caller when its body reads them.
  static void scan_implicit_names(const Body& body, MacroSignature& sig);

  Result<StmtPtr> parse_macro() {
    auto s = new_stmt(StmtKind::kMacro);
    next();
    K2_ASSIGN_OR_RETURN(s->name, expect_name());
    K2_RETURN_IF_ERROR(parse_signature(s->signature));
    const int saved = loop_depth_;
    loop_depth_ = 0;
    auto body = parse_statements({"endmacro"}, true);
    loop_depth_ = saved;
    if (!body.ok()) return body.status();
    s->bodies.push_back(std::move(body).value());
    scan_implicit_names(s->bodies[0], s->signature);
    return s;
  }

  Result<StmtPtr> parse_call_block() {
    auto s = new_stmt(StmtKind::kCallBlock);
    next();
    if (is_op("(")) K2_RETURN_IF_ERROR(parse_signature(s->signature));
    K2_ASSIGN_OR_RETURN(ExprPtr call, parse_expression(true));
    if (call->kind != ExprKind::kCall) return fail("expected call");
    s->exprs.push_back(std::move(call));
    const int saved = loop_depth_;
    loop_depth_ = 0;
    auto body = parse_statements({"endcall"}, true);
    loop_depth_ = saved;
    if (!body.ok()) return body.status();
    s->bodies.push_back(std::move(body).value());
    scan_implicit_names(s->bodies[0], s->signature);
    return s;
  }

  Result<StmtPtr> parse_filter_block() {
    auto s = new_stmt(StmtKind::kFilterBlock);
    next();
    K2_ASSIGN_OR_RETURN(ExprPtr filter, parse_filter(nullptr, true));
    s->exprs.push_back(std::move(filter));
    K2_ASSIGN_OR_RETURN(Body body, parse_statements({"endfilter"}, true));
    s->bodies.push_back(std::move(body));
    return s;
  }

  Result<StmtPtr> parse_with() {
    auto s = new_stmt(StmtKind::kWith);
    next();
    while (current().type != TokenType::kBlockEnd && current().type != TokenType::kEof) {
      if (!s->targets.empty()) K2_RETURN_IF_ERROR(expect_op(","));
      K2_ASSIGN_OR_RETURN(Target t, parse_assign_target(true, false, {}));
      s->targets.push_back(std::move(t));
      K2_RETURN_IF_ERROR(expect_op("="));
      K2_ASSIGN_OR_RETURN(ExprPtr value, parse_expression(true));
      s->exprs.push_back(std::move(value));
    }
    K2_ASSIGN_OR_RETURN(Body body, parse_statements({"endwith"}, true));
    s->bodies.push_back(std::move(body));
    return s;
  }

  Result<StmtPtr> parse_print() {
    auto s = new_stmt(StmtKind::kOutput);
    next();
    while (current().type != TokenType::kBlockEnd && current().type != TokenType::kEof) {
      if (!s->exprs.empty()) K2_RETURN_IF_ERROR(expect_op(","));
      K2_ASSIGN_OR_RETURN(ExprPtr e, parse_expression(true));
      s->exprs.push_back(std::move(e));
    }
    return s;
  }

  Result<Target> parse_assign_target(bool with_tuple, bool with_namespace,
                                     std::initializer_list<std::string_view> extra_end) {
    Target t;
    if (with_namespace && current().type == TokenType::kName && look().type == TokenType::kOperator &&
        look().text == ".") {
      t.kind = Target::Kind::kNamespaceAttr;
      t.name = current().text;
      next();
      next();
      K2_ASSIGN_OR_RETURN(t.attr, expect_name());
      return t;
    }
    if (!with_tuple) {
      K2_ASSIGN_OR_RETURN(t.name, expect_name());
      return t;
    }
    return parse_target_tuple(extra_end);
  }

  // parse_tuple(simplified=True) restricted to what can be assigned to.
  Result<Target> parse_target_tuple(std::initializer_list<std::string_view> extra_end) {
    DepthGuard guard(depth_);
    K2_RETURN_IF_ERROR(check_depth());
    Target tuple;
    tuple.kind = Target::Kind::kTuple;
    bool is_tuple = false;
    while (true) {
      if (!tuple.items.empty()) K2_RETURN_IF_ERROR(expect_op(","));
      if (is_tuple_end(extra_end)) break;
      Target item;
      if (skip_op("(")) {
        K2_ASSIGN_OR_RETURN(item, parse_target_tuple({}));
        K2_RETURN_IF_ERROR(expect_op(")"));
      } else {
        if (current().type != TokenType::kName) return fail("can't assign to '" + describe(current()) + "'");
        static const char* kConsts[] = {"true", "false", "True", "False", "none", "None"};
        for (const char* c : kConsts) {
          if (current().text == c) return fail("can't assign to constant '" + current().text + "'");
        }
        item.name = current().text;
        next();
      }
      tuple.items.push_back(std::move(item));
      if (is_op(",")) is_tuple = true;
      else break;
    }
    if (!is_tuple) {
      if (tuple.items.empty()) return fail("expected an assignment target");
      return std::move(tuple.items[0]);
    }
    return tuple;
  }

  // --- expressions ----------------------------------------------------------------
  bool is_tuple_end(std::initializer_list<std::string_view> extra_end) const {
    const Token& t = current();
    if (t.type == TokenType::kVariableEnd || t.type == TokenType::kBlockEnd || t.type == TokenType::kEof) return true;
    if (t.type == TokenType::kOperator && t.text == ")") return true;
    if (t.type == TokenType::kName) {
      for (auto e : extra_end) {
        if (t.text == e) return true;
      }
    }
    return false;
  }

  Result<ExprPtr> parse_tuple(bool simplified, bool with_condexpr, std::initializer_list<std::string_view> extra_end,
                              bool explicit_parentheses) {
    const int line = current().line;
    std::vector<ExprPtr> args;
    bool is_tuple = false;
    while (true) {
      if (!args.empty()) K2_RETURN_IF_ERROR(expect_op(","));
      if (is_tuple_end(extra_end)) break;
      Result<ExprPtr> item = simplified ? parse_primary() : parse_expression(with_condexpr);
      if (!item.ok()) return item.status();
      args.push_back(std::move(item).value());
      if (is_op(",")) is_tuple = true;
      else break;
    }
    if (!is_tuple) {
      if (!args.empty()) return std::move(args[0]);
      if (!explicit_parentheses) return fail("Expected an expression, got '" + describe(current()) + "'");
    }
    auto e = make_expr(ExprKind::kTuple, line);
    e->children = std::move(args);
    return e;
  }

  Result<ExprPtr> parse_expression(bool with_condexpr) {
    DepthGuard guard(depth_);
    K2_RETURN_IF_ERROR(check_depth());
    if (!with_condexpr) return parse_or();
    K2_ASSIGN_OR_RETURN(ExprPtr expr1, parse_or());
    while (is_name("if")) {
      const int line = current().line;
      next();
      K2_ASSIGN_OR_RETURN(ExprPtr test, parse_or());
      ExprPtr else_expr;
      if (skip_name("else")) {
        K2_ASSIGN_OR_RETURN(else_expr, parse_expression(true));
      }
      auto e = make_expr(ExprKind::kCondExpr, line);
      e->children.push_back(std::move(expr1));
      e->children.push_back(std::move(test));
      e->children.push_back(std::move(else_expr));
      expr1 = std::move(e);
    }
    return expr1;
  }

  Result<ExprPtr> parse_binary_chain(ExprKind kind, std::string_view word, Result<ExprPtr> (Parser::*sub)()) {
    K2_ASSIGN_OR_RETURN(ExprPtr left, (this->*sub)());
    ChainGuard chain(*this);
    while (is_name(word)) {
      K2_RETURN_IF_ERROR(chain.grow());
      const int line = current().line;
      next();
      K2_ASSIGN_OR_RETURN(ExprPtr right, (this->*sub)());
      auto e = make_expr(kind, line);
      e->children.push_back(std::move(left));
      e->children.push_back(std::move(right));
      left = std::move(e);
    }
    return left;
  }
  Result<ExprPtr> parse_or() { return parse_binary_chain(ExprKind::kOr, "or", &Parser::parse_and); }
  Result<ExprPtr> parse_and() { return parse_binary_chain(ExprKind::kAnd, "and", &Parser::parse_not); }

  Result<ExprPtr> parse_not() {
    if (is_name("not")) {
      DepthGuard guard(depth_);
      K2_RETURN_IF_ERROR(check_depth());
      const int line = current().line;
      next();
      K2_ASSIGN_OR_RETURN(ExprPtr operand, parse_not());
      auto e = make_expr(ExprKind::kNot, line);
      e->children.push_back(std::move(operand));
      return e;
    }
    return parse_compare();
  }

  Result<ExprPtr> parse_compare() {
    const int line = current().line;
    K2_ASSIGN_OR_RETURN(ExprPtr expr, parse_math1());
    ExprPtr cmp;
    while (true) {
      std::string op;
      if (current().type == TokenType::kOperator &&
          (current().text == "==" || current().text == "!=" || current().text == "<" || current().text == "<=" ||
           current().text == ">" || current().text == ">=")) {
        op = current().text;
        next();
      } else if (is_name("in")) {
        op = "in";
        next();
      } else if (is_name("not") && look().type == TokenType::kName && look().text == "in") {
        op = "notin";
        next();
        next();
      } else {
        break;
      }
      if (!cmp) {
        cmp = make_expr(ExprKind::kCompare, line);
        cmp->children.push_back(std::move(expr));
      }
      K2_ASSIGN_OR_RETURN(ExprPtr operand, parse_math1());
      cmp->ops.push_back(std::move(op));
      cmp->children.push_back(std::move(operand));
    }
    return cmp ? std::move(cmp) : std::move(expr);
  }

  Result<ExprPtr> parse_binary_ops(std::initializer_list<std::string_view> ops, Result<ExprPtr> (Parser::*sub)()) {
    K2_ASSIGN_OR_RETURN(ExprPtr left, (this->*sub)());
    ChainGuard chain(*this);
    while (current().type == TokenType::kOperator &&
           std::find(ops.begin(), ops.end(), current().text) != ops.end()) {
      K2_RETURN_IF_ERROR(chain.grow());
      auto e = make_expr(ExprKind::kBinary, current().line);
      e->name = current().text;
      next();
      K2_ASSIGN_OR_RETURN(ExprPtr right, (this->*sub)());
      e->children.push_back(std::move(left));
      e->children.push_back(std::move(right));
      left = std::move(e);
    }
    return left;
  }
  Result<ExprPtr> parse_math1() { return parse_binary_ops({"+", "-"}, &Parser::parse_concat); }
  Result<ExprPtr> parse_math2() { return parse_binary_ops({"*", "/", "//", "%"}, &Parser::parse_pow); }
  Result<ExprPtr> parse_pow() { return parse_binary_ops({"**"}, &Parser::parse_unary_filtered); }

  Result<ExprPtr> parse_concat() {
    const int line = current().line;
    K2_ASSIGN_OR_RETURN(ExprPtr first, parse_math2());
    if (!is_op("~")) return first;
    auto e = make_expr(ExprKind::kConcat, line);
    e->children.push_back(std::move(first));
    while (skip_op("~")) {
      K2_ASSIGN_OR_RETURN(ExprPtr next_operand, parse_math2());
      e->children.push_back(std::move(next_operand));
    }
    return e;
  }

  Result<ExprPtr> parse_unary_filtered() { return parse_unary(true); }

  Result<ExprPtr> parse_unary(bool with_filter) {
    DepthGuard guard(depth_);
    K2_RETURN_IF_ERROR(check_depth());
    ExprPtr node;
    if (is_op("-") || is_op("+")) {
      auto e = make_expr(is_op("-") ? ExprKind::kNeg : ExprKind::kPos, current().line);
      next();
      K2_ASSIGN_OR_RETURN(ExprPtr operand, parse_unary(false));
      e->children.push_back(std::move(operand));
      node = std::move(e);
    } else {
      K2_ASSIGN_OR_RETURN(node, parse_primary());
    }
    K2_ASSIGN_OR_RETURN(node, parse_postfix(std::move(node)));
    if (with_filter) {
      K2_ASSIGN_OR_RETURN(node, parse_filter_expr(std::move(node)));
    }
    return node;
  }

  Result<ExprPtr> parse_primary();
  Result<ExprPtr> parse_postfix(ExprPtr node);
  Result<ExprPtr> parse_filter_expr(ExprPtr node);
  Result<ExprPtr> parse_call(ExprPtr callee);
  Result<ExprPtr> parse_subscript(ExprPtr node);
  Result<ExprPtr> parse_subscribed();
  Status parse_call_args(Expr& target);
  Result<ExprPtr> parse_filter(ExprPtr node, bool start_inline);
  Result<ExprPtr> parse_test(ExprPtr node);

  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
};

}  // namespace k2::jinja::parser_detail
