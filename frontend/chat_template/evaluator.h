// Walks a parsed template and writes its output: jinja2's runtime semantics for
// scoping (a fresh scope per loop iteration and macro call, `set` in `if` leaking to the
// enclosing scope), Undefined, macros and caller(), loop objects and loop controls.
//
// An Interpreter belongs to one render on one thread and owns every value that render
// creates. It enforces RenderLimits so hostile templates end in an error value: output
// and string sizes, macro recursion depth, loop iterations and total evaluation steps.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "frontend/chat_template/ast.h"
#include "frontend/chat_template/value.h"

namespace k2::jinja {

struct RenderLimits {
  size_t max_output_bytes = size_t{32} << 20;  // rendered text, and any one string value
  int max_call_depth = 100;                     // nested macro/caller/loop() calls
  int max_native_depth = 2000;                  // nested statement/expression evaluation
  uint64_t max_loop_iterations = 2'000'000;     // all loops of one render together
  uint64_t max_steps = 50'000'000;              // expression + statement evaluations
};

// Variables visible to a template: one frame of a chain. Frames are shared_ptrs so a
// macro can keep its defining frame (weakly) for closures.
struct Scope {
  std::vector<std::pair<std::string, Value>> vars;
  std::shared_ptr<Scope> parent;
  const Value* find(std::string_view name) const;
  void set(const std::string& name, Value value);
};
using ScopePtr = std::shared_ptr<Scope>;

struct DepthCounter {
  explicit DepthCounter(int& d) : depth(d) { ++depth; }
  ~DepthCounter() { --depth; }
  DepthCounter(const DepthCounter&) = delete;
  DepthCounter& operator=(const DepthCounter&) = delete;
  int& depth;
};

class Interpreter {
 public:
  explicit Interpreter(const RenderLimits& limits) : limits_(limits) {}
  // Empties every namespace this render created: a namespace can hold itself (directly or
  // through a loop object), and those reference cycles would otherwise leak.
  ~Interpreter();
  Interpreter(const Interpreter&) = delete;
  Interpreter& operator=(const Interpreter&) = delete;

  // Renders `body` with `globals` (the render variables) as the outermost frame.
  Result<std::string> render(const Body& body, ScopePtr globals);

  // For filters, tests and callables.
  Result<Value> call(const Value& fn, CallArgs args);
  Result<Value> call_macro(const Stmt& def, const ScopePtr& closure, const Value& self, CallArgs args,
                           const Value& caller);
  Result<Value> call_loop(const Stmt& loop, const ScopePtr& scope, int depth, CallArgs args);
  // Fails when a string of `bytes` would exceed the output limit.
  Status check_size(size_t bytes) const;
  const RenderLimits& limits() const { return limits_; }
  Status step();
  // Registers a namespace() object created during this render (see ~Interpreter).
  void adopt_namespace(const Value& ns) { namespaces_.push_back(ns); }

  // The error jinja2 raises when an Undefined is used (printing and iterating are fine).
  static Status undefined_error(const Value& v);

 private:
  enum class Flow { kNormal, kBreak, kContinue };

  Result<Flow> exec_body(const Body& body, std::string& out, ScopePtr& scope);
  Result<Flow> exec(const Stmt& s, std::string& out, ScopePtr& scope);
  Status exec_for(const Stmt& s, std::string& out, ScopePtr& scope, const Value& iterable, int depth);
  Status exec_call_block(const Stmt& s, std::string& out, ScopePtr& scope);
  Status assign(const Target& target, const Value& value, Scope& scope);
  Status append(std::string& out, std::string_view text);
  Result<std::string> render_nested(const Body& body, ScopePtr scope);

  Result<Value> eval(const Expr& e, const ScopePtr& scope);
  Result<Value> eval_name(const Expr& e, const ScopePtr& scope);
  Result<Value> eval_compare(const Expr& e, const ScopePtr& scope);
  Result<Value> eval_slice(const Expr& e, const Value& obj, const ScopePtr& scope);
  Result<CallArgs> eval_args(const Expr& e, const ScopePtr& scope, size_t first_child);
  Result<Value> eval_filter(const Expr& e, const ScopePtr& scope, const Value* input);
  Result<Value> eval_collection(const Expr& e, const ScopePtr& scope);

  const RenderLimits& limits_;
  ScopePtr globals_;
  std::vector<Value> namespaces_;  // the render variables, also seen by macros whose frame is gone
  int call_depth_ = 0;
  int native_depth_ = 0;
  uint64_t loop_iterations_ = 0;
  uint64_t steps_ = 0;
};

}  // namespace k2::jinja
