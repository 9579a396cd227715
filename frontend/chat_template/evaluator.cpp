#include "frontend/chat_template/evaluator.h"

#include "frontend/chat_template/builtins.h"
#include "frontend/chat_template/operators.h"

namespace k2::jinja {

const Value* Scope::find(std::string_view name) const {
  for (auto it = vars.rbegin(); it != vars.rend(); ++it) {
    if (it->first == name) return &it->second;
  }
  return nullptr;
}

void Scope::set(const std::string& name, Value value) {
  for (auto& [k, v] : vars) {
    if (k == name) {
      v = std::move(value);
      return;
    }
  }
  vars.emplace_back(name, std::move(value));
}

namespace {

// A macro or a call block's `caller`: the definition plus (weakly) the frame it closes over.
class MacroValue : public Callable {
 public:
  MacroValue(const Stmt* def, const ScopePtr& closure) : def_(def), closure_(closure) {}
  Result<Value> call(Interpreter& interp, CallArgs args) const override {
    ScopePtr closure = closure_.lock();
    const Value* caller = args.find_keyword("caller");
    Value caller_value = caller ? *caller : Value::undefined("No caller defined");
    if (caller && def_->signature.uses_caller) {
      for (auto it = args.keyword.begin(); it != args.keyword.end(); ++it) {
        if (it->first == "caller") {
          args.keyword.erase(it);
          break;
        }
      }
    }
    return interp.call_macro(*def_, closure, Value(), std::move(args), caller_value);
  }
  Value attribute(std::string_view name) const override {
    if (name == "name") return Value::string(macro_name());
    if (name == "arguments") {
      ValueList params;
      for (const auto& p : def_->signature.params) params.push_back(Value::string(p));
      return Value::tuple(std::move(params));
    }
    if (name == "catch_kwargs") return Value::boolean(def_->signature.uses_kwargs);
    if (name == "catch_varargs") return Value::boolean(def_->signature.uses_varargs);
    if (name == "caller") return Value::boolean(def_->signature.uses_caller);
    return Callable::attribute(name);
  }
  std::string repr() const override { return "<Macro '" + macro_name() + "'>"; }

 private:
  std::string macro_name() const { return def_->kind == StmtKind::kMacro ? def_->name : "caller"; }
  const Stmt* def_;
  std::weak_ptr<Scope> closure_;
};

// State one loop execution shares between its iterations (loop.changed()).
struct LoopShared {
  ValueList last_changed;
  bool has_changed = false;
};

class LoopValue : public Callable {
 public:
  LoopValue(const Stmt* stmt, ScopePtr scope, int depth, size_t index0, const ValueList* items,
            std::shared_ptr<LoopShared> shared)
      : stmt_(stmt), scope_(std::move(scope)), depth_(depth), index0_(index0), length_(items->size()),
        prev_(index0 > 0 ? (*items)[index0 - 1] : Value::undefined("there is no previous item")),
        next_(index0 + 1 < items->size() ? (*items)[index0 + 1] : Value::undefined("there is no next item")),
        shared_(std::move(shared)) {}

  Result<Value> call(Interpreter& interp, CallArgs args) const override {
    if (!stmt_->recursive) {
      return invalid_argument("TypeError: The loop must be marked as 'recursive' to call it recursively.");
    }
    return interp.call_loop(*stmt_, scope_, depth_ + 1, std::move(args));
  }

  Value attribute(std::string_view name) const override {
    const auto i = static_cast<int64_t>(index0_);
    const auto n = static_cast<int64_t>(length_);
    if (name == "index") return Value::integer(i + 1);
    if (name == "index0") return Value::integer(i);
    if (name == "revindex") return Value::integer(n - i);
    if (name == "revindex0") return Value::integer(n - i - 1);
    if (name == "first") return Value::boolean(i == 0);
    if (name == "last") return Value::boolean(i == n - 1);
    if (name == "length") return Value::integer(n);
    if (name == "depth") return Value::integer(depth_ + 1);
    if (name == "depth0") return Value::integer(depth_);
    if (name == "previtem") return prev_;
    if (name == "nextitem") return next_;
    if (name == "cycle") return Value::callable(std::make_shared<CycleFn>(index0_));
    if (name == "changed") return Value::callable(std::make_shared<ChangedFn>(shared_));
    return Callable::attribute(name);
  }
  std::string repr() const override {
    return "<LoopContext " + std::to_string(index0_ + 1) + "/" + std::to_string(length_) + ">";
  }

 private:
  class CycleFn : public Callable {
   public:
    explicit CycleFn(size_t index0) : index0_(index0) {}
    Result<Value> call(Interpreter&, CallArgs args) const override {
      if (args.positional.empty()) return invalid_argument("TypeError: no items for cycling given");
      return args.positional[index0_ % args.positional.size()];
    }
    std::string repr() const override { return "<bound method LoopContext.cycle>"; }

   private:
    size_t index0_;
  };
  class ChangedFn : public Callable {
   public:
    explicit ChangedFn(std::shared_ptr<LoopShared> shared) : shared_(std::move(shared)) {}
    Result<Value> call(Interpreter&, CallArgs args) const override {
      if (shared_->has_changed && shared_->last_changed.size() == args.positional.size()) {
        bool same = true;
        for (size_t i = 0; i < args.positional.size() && same; ++i) {
          same = py_equal(shared_->last_changed[i], args.positional[i]);
        }
        if (same) return Value::boolean(false);
      }
      shared_->last_changed = std::move(args.positional);
      shared_->has_changed = true;
      return Value::boolean(true);
    }
    std::string repr() const override { return "<bound method LoopContext.changed>"; }

   private:
    std::shared_ptr<LoopShared> shared_;
  };

  const Stmt* stmt_;
  ScopePtr scope_;
  int depth_;
  size_t index0_;
  size_t length_;
  Value prev_;
  Value next_;
  std::shared_ptr<LoopShared> shared_;
};

}  // namespace

Interpreter::~Interpreter() {
  for (const Value& ns : namespaces_) ns.as_namespace().attrs.clear();
}

Status Interpreter::undefined_error(const Value& v) {
  const UndefinedInfo* info = v.undefined_info();
  if (info && info->unsafe) return invalid_argument("SecurityError: " + info->hint);
  return invalid_argument("UndefinedError: " + (info && !info->hint.empty() ? info->hint : "value is undefined"));
}

Status Interpreter::step() {
  if (++steps_ > limits_.max_steps) {
    return out_of_range("template evaluation exceeded " + std::to_string(limits_.max_steps) + " steps");
  }
  return {};
}

Status Interpreter::check_size(size_t bytes) const {
  if (bytes > limits_.max_output_bytes) {
    return out_of_range("template output exceeds " + std::to_string(limits_.max_output_bytes) + " bytes");
  }
  return {};
}

Status Interpreter::append(std::string& out, std::string_view text) {
  K2_RETURN_IF_ERROR(check_size(out.size() + text.size()));
  out.append(text);
  return {};
}

Result<std::string> Interpreter::render(const Body& body, ScopePtr globals) {
  globals_ = globals;
  auto scope = std::make_shared<Scope>();
  scope->parent = std::move(globals);
  std::string out;
  K2_ASSIGN_OR_RETURN(Flow flow, exec_body(body, out, scope));
  (void)flow;
  return out;
}

Result<std::string> Interpreter::render_nested(const Body& body, ScopePtr scope) {
  std::string out;
  K2_ASSIGN_OR_RETURN(Flow flow, exec_body(body, out, scope));
  (void)flow;
  return out;
}

Result<Interpreter::Flow> Interpreter::exec_body(const Body& body, std::string& out, ScopePtr& scope) {
  for (const auto& s : body) {
    K2_ASSIGN_OR_RETURN(Flow flow, exec(*s, out, scope));
    if (flow != Flow::kNormal) return flow;
  }
  return Flow::kNormal;
}

Result<Interpreter::Flow> Interpreter::exec(const Stmt& s, std::string& out, ScopePtr& scope) {
  K2_RETURN_IF_ERROR(step());
  DepthCounter guard(native_depth_);
  if (native_depth_ > limits_.max_native_depth) return out_of_range("RecursionError: template evaluation nested too deeply");
  switch (s.kind) {
    case StmtKind::kData: K2_RETURN_IF_ERROR(append(out, s.text)); break;
    case StmtKind::kOutput:
      for (const auto& e : s.exprs) {
        K2_ASSIGN_OR_RETURN(Value v, eval(*e, scope));
        K2_RETURN_IF_ERROR(append(out, py_str(v, limits_.max_output_bytes + 1)));
      }
      break;
    case StmtKind::kIf:
      for (size_t i = 0; i < s.bodies.size(); ++i) {
        if (i < s.exprs.size()) {
          K2_ASSIGN_OR_RETURN(Value test, eval(*s.exprs[i], scope));
          if (!test.truthy()) continue;
        }
        return exec_body(s.bodies[i], out, scope);
      }
      break;
    case StmtKind::kFor: {
      K2_ASSIGN_OR_RETURN(Value iterable, eval(*s.exprs[0], scope));
      K2_RETURN_IF_ERROR(exec_for(s, out, scope, iterable, 0));
      break;
    }
    case StmtKind::kSet: {
      K2_ASSIGN_OR_RETURN(Value v, eval(*s.exprs[0], scope));
      K2_RETURN_IF_ERROR(assign(s.target, v, *scope));
      break;
    }
    case StmtKind::kSetBlock:
    case StmtKind::kFilterBlock: {
      K2_ASSIGN_OR_RETURN(std::string text, render_nested(s.bodies[0], std::make_shared<Scope>(Scope{{}, scope})));
      Value v = Value::string(std::move(text));
      if (!s.exprs.empty()) {
        K2_ASSIGN_OR_RETURN(v, eval_filter(*s.exprs[0], scope, &v));
      }
      if (s.kind == StmtKind::kSetBlock) {
        K2_RETURN_IF_ERROR(assign(s.target, v, *scope));
      } else {
        K2_RETURN_IF_ERROR(append(out, py_str(v, limits_.max_output_bytes + 1)));
      }
      break;
    }
    case StmtKind::kMacro:
      scope->set(s.name, Value::callable(std::make_shared<MacroValue>(&s, scope)));
      break;
    case StmtKind::kCallBlock: K2_RETURN_IF_ERROR(exec_call_block(s, out, scope)); break;
    case StmtKind::kWith: {
      auto inner = std::make_shared<Scope>(Scope{{}, scope});
      for (size_t i = 0; i < s.targets.size(); ++i) {
        K2_ASSIGN_OR_RETURN(Value v, eval(*s.exprs[i], scope));
        K2_RETURN_IF_ERROR(assign(s.targets[i], v, *inner));
      }
      K2_ASSIGN_OR_RETURN(Flow flow, exec_body(s.bodies[0], out, inner));
      return flow;
    }
    case StmtKind::kBreak: return Flow::kBreak;
    case StmtKind::kContinue: return Flow::kContinue;
    case StmtKind::kScope: return exec_body(s.bodies[0], out, scope);
  }
  return Flow::kNormal;
}

Status Interpreter::exec_for(const Stmt& s, std::string& out, ScopePtr& scope, const Value& iterable, int depth) {
  K2_ASSIGN_OR_RETURN(ValueList items, py_iterate(iterable));
  if (s.exprs.size() > 1) {  // `for x in y if cond`: loop.* counts the kept items only
    ValueList kept;
    for (auto& item : items) {
      K2_RETURN_IF_ERROR(step());
      auto probe = std::make_shared<Scope>(Scope{{}, scope});
      K2_RETURN_IF_ERROR(assign(s.target, item, *probe));
      K2_ASSIGN_OR_RETURN(Value test, eval(*s.exprs[1], probe));
      if (test.truthy()) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  auto shared = std::make_shared<LoopShared>();
  for (size_t i = 0; i < items.size(); ++i) {
    if (++loop_iterations_ > limits_.max_loop_iterations) {
      return out_of_range("template loops exceeded " + std::to_string(limits_.max_loop_iterations) + " iterations");
    }
    auto inner = std::make_shared<Scope>(Scope{{}, scope});
    K2_RETURN_IF_ERROR(assign(s.target, items[i], *inner));
    inner->set("loop", Value::callable(std::make_shared<LoopValue>(&s, scope, depth, i, &items, shared)));
    K2_ASSIGN_OR_RETURN(Flow flow, exec_body(s.bodies[0], out, inner));
    if (flow == Flow::kBreak) break;
  }
  if (items.empty() && s.bodies.size() > 1) {
    K2_ASSIGN_OR_RETURN(Flow flow, exec_body(s.bodies[1], out, scope));
    (void)flow;
  }
  return {};
}

Result<Value> Interpreter::call_loop(const Stmt& loop, const ScopePtr& scope, int depth, CallArgs args) {
  if (args.positional.size() != 1) return invalid_argument("TypeError: loop() takes exactly one argument");
  DepthCounter guard(call_depth_);
  if (call_depth_ > limits_.max_call_depth) {
    return out_of_range("RecursionError: recursive loop deeper than " + std::to_string(limits_.max_call_depth));
  }
  std::string out;
  ScopePtr s = scope;
  K2_RETURN_IF_ERROR(exec_for(loop, out, s, args.positional[0], depth));
  return Value::string(std::move(out));
}

Status Interpreter::exec_call_block(const Stmt& s, std::string& out, ScopePtr& scope) {
  const Expr& call = *s.exprs[0];
  K2_ASSIGN_OR_RETURN(Value fn, eval(*call.children[0], scope));
  K2_ASSIGN_OR_RETURN(CallArgs args, eval_args(call, scope, 1));
  args.keyword.emplace_back("caller", Value::callable(std::make_shared<MacroValue>(&s, scope)));
  K2_ASSIGN_OR_RETURN(Value result, this->call(fn, std::move(args)));
  return append(out, py_str(result, limits_.max_output_bytes + 1));
}

Result<Value> Interpreter::call(const Value& fn, CallArgs args) {
  if (fn.is_callable()) {
    DepthCounter guard(call_depth_);
    if (call_depth_ > limits_.max_call_depth) {
      return out_of_range("RecursionError: maximum call depth (" + std::to_string(limits_.max_call_depth) +
                          ") exceeded");
    }
    return fn.as_callable().call(*this, std::move(args));
  }
  if (fn.is_undefined()) return undefined_error(fn);
  return invalid_argument(std::string("TypeError: '") + fn.type_name() + "' object is not callable");
}

Result<Value> Interpreter::call_macro(const Stmt& def, const ScopePtr& closure, const Value& self, CallArgs args,
                                      const Value& caller) {
  (void)self;
  const MacroSignature& sig = def.signature;
  const std::string name = def.kind == StmtKind::kMacro ? def.name : "caller";
  auto scope = std::make_shared<Scope>(Scope{{}, closure});
  if (args.positional.size() > sig.params.size() && !sig.uses_varargs) {
    return invalid_argument("TypeError: macro '" + name + "' takes not more than " +
                            std::to_string(sig.params.size()) + " argument(s)");
  }
  const size_t first_default = sig.params.size() - sig.defaults.size();
  for (size_t i = 0; i < sig.params.size(); ++i) {
    const std::string& param = sig.params[i];
    Value value;
    bool found = false;
    if (i < args.positional.size()) {
      value = args.positional[i];
      found = true;
    }
    for (auto it = args.keyword.begin(); it != args.keyword.end(); ++it) {
      if (it->first != param) continue;
      if (found) return invalid_argument("TypeError: macro '" + name + "' got multiple values for argument '" + param + "'");
      value = std::move(it->second);
      args.keyword.erase(it);
      found = true;
      break;
    }
    if (!found) {
      if (i >= first_default) {
        K2_ASSIGN_OR_RETURN(value, eval(*sig.defaults[i - first_default], scope));
      } else {
        value = Value::undefined("parameter '" + param + "' was not provided");
      }
    }
    scope->set(param, std::move(value));
  }
  if (sig.uses_caller) scope->set("caller", caller);
  if (sig.uses_kwargs) {
    Dict kw;
    for (auto& [k, v] : args.keyword) kw.entries.emplace_back(Value::string(k), std::move(v));
    scope->set("kwargs", Value::dict(std::move(kw)));
  } else if (!args.keyword.empty()) {
    return invalid_argument("TypeError: macro '" + name + "' takes no keyword argument '" + args.keyword[0].first + "'");
  }
  if (sig.uses_varargs) {
    ValueList extra;
    for (size_t i = sig.params.size(); i < args.positional.size(); ++i) extra.push_back(args.positional[i]);
    scope->set("varargs", Value::tuple(std::move(extra)));
  }
  K2_ASSIGN_OR_RETURN(std::string text, render_nested(def.bodies[0], scope));
  return Value::string(std::move(text));
}

Status Interpreter::assign(const Target& target, const Value& value, Scope& scope) {
  switch (target.kind) {
    case Target::Kind::kName: scope.set(target.name, value); return {};
    case Target::Kind::kNamespaceAttr: {
      const Value* ns = nullptr;
      for (const Scope* s = &scope; s && !ns; s = s->parent.get()) ns = s->find(target.name);
      if (!ns || !ns->is_namespace()) {
        return invalid_argument("TemplateRuntimeError: cannot assign attribute on non-namespace object");
      }
      ns->as_namespace().set(target.attr, value);
      return {};
    }
    case Target::Kind::kTuple: {
      K2_ASSIGN_OR_RETURN(ValueList items, py_iterate(value));
      if (items.size() != target.items.size()) {
        return invalid_argument(std::string("ValueError: ") +
                                (items.size() < target.items.size() ? "not enough" : "too many") +
                                " values to unpack (expected " + std::to_string(target.items.size()) + ", got " +
                                std::to_string(items.size()) + ")");
      }
      for (size_t i = 0; i < items.size(); ++i) K2_RETURN_IF_ERROR(assign(target.items[i], items[i], scope));
      return {};
    }
  }
  return {};
}

}  // namespace k2::jinja
