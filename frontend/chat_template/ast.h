// The parsed form of a template: expression and statement trees as jinja2's parser builds
// them. A tree is built once, never modified, and owned by its Template; any number of
// renders may walk it concurrently.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "frontend/chat_template/value.h"

namespace k2::jinja {

struct Expr;
struct Stmt;
using ExprPtr = std::unique_ptr<Expr>;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

enum class ExprKind : uint8_t {
  kConst,     // value
  kName,      // name
  kList,      // children = items
  kTuple,     // children = items
  kDict,      // children = key0, value0, key1, value1, ...
  kGetattr,   // children[0].name
  kGetitem,   // children[0][children[1]]
  kSlice,     // children = start, stop, step (each may be null)
  kCall,      // children[0](children[1..], kwargs)
  kFilter,    // children[0] | name(children[1..], kwargs)
  kTest,      // children[0] is name(children[1..], kwargs)
  kNot,       // not children[0]
  kNeg,       // -children[0]
  kPos,       // +children[0]
  kBinary,    // children[0] name children[1], name in + - * / // % **
  kConcat,    // children joined with ~
  kCompare,   // children[0] ops[0] children[1] ops[1] children[2] ...
  kAnd,
  kOr,
  kCondExpr,  // children = then, test, else (else may be null)
};

struct Expr {
  ExprKind kind = ExprKind::kConst;
  int line = 0;
  Value value;
  std::string name;
  std::vector<ExprPtr> children;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  ExprPtr dyn_args;    // *args
  ExprPtr dyn_kwargs;  // **kwargs
  std::vector<std::string> ops;  // comparison operators: == != < <= > >= in notin
};

// The left side of set/for/with: a name, a tuple of targets, or namespace.attr.
struct Target {
  enum class Kind : uint8_t { kName, kTuple, kNamespaceAttr } kind = Kind::kName;
  std::string name;
  std::string attr;
  std::vector<Target> items;
};

struct MacroSignature {
  std::vector<std::string> params;
  std::vector<ExprPtr> defaults;  // for the last defaults.size() params
  // Whether the body reads these implicit names; jinja2 only accepts extra arguments then.
  bool uses_varargs = false;
  bool uses_kwargs = false;
  bool uses_caller = false;
};

enum class StmtKind : uint8_t {
  kData,         // text
  kOutput,       // exprs printed one after another
  kIf,           // exprs = tests of if/elif..., bodies = their bodies (+ else body if one more)
  kFor,          // target in exprs[0] [if exprs[1]]; bodies = body, else
  kSet,          // target = exprs[0]
  kSetBlock,     // target = rendered bodies[0], through filter exprs[0] if present
  kMacro,        // name, signature, bodies[0]
  kCallBlock,    // exprs[0] is the call; bodies[0] is `caller` with signature
  kFilterBlock,  // bodies[0] rendered, then exprs[0] (a filter chain applied to a null input)
  kWith,         // targets/exprs pairs, bodies[0]
  kBreak,
  kContinue,
  kScope,        // bodies[0] rendered as is ({% generation %})
};

struct Stmt {
  StmtKind kind = StmtKind::kData;
  int line = 0;
  std::string text;
  std::string name;
  std::vector<ExprPtr> exprs;
  std::vector<Body> bodies;
  Target target;
  std::vector<Target> targets;  // kWith
  bool recursive = false;      // kFor
  MacroSignature signature;    // kMacro, kCallBlock
};

}  // namespace k2::jinja
