#include "enginecore/structured/automaton.h"

#include <algorithm>
#include <map>
#include <unordered_map>

namespace k2::structured {

uint32_t Nfa::add_state() {
  if (states_.size() >= max_states_) {
    overflowed_ = true;
    if (states_.empty()) states_.emplace_back();
    return 0;
  }
  states_.emplace_back();
  return static_cast<uint32_t>(states_.size() - 1);
}

// Edges are dropped once the builder has overflowed: state 0 stands in for every state
// then, and the result is discarded anyway.
void Nfa::add_eps(uint32_t from, uint32_t to) {
  if (!overflowed_) states_[from].eps.push_back(to);
}
void Nfa::add_bytes(uint32_t from, uint8_t lo, uint8_t hi, uint32_t to) {
  if (!overflowed_) states_[from].bytes.push_back({lo, hi, to});
}
void Nfa::add_call(uint32_t from, uint32_t rule, uint32_t to) {
  if (!overflowed_) states_[from].calls.push_back({rule, to});
}

Frag Nfa::empty() {
  uint32_t s = add_state();
  return {s, s};
}

Frag Nfa::nothing() { return {add_state(), add_state()}; }

Frag Nfa::literal(std::string_view bytes) {
  uint32_t start = add_state();
  uint32_t cur = start;
  for (char c : bytes) {
    uint32_t next = add_state();
    add_bytes(cur, static_cast<uint8_t>(c), static_cast<uint8_t>(c), next);
    cur = next;
  }
  return {start, cur};
}

Frag Nfa::byte_range(uint8_t lo, uint8_t hi) {
  Frag f{add_state(), add_state()};
  add_bytes(f.start, lo, hi, f.end);
  return f;
}

Frag Nfa::call(uint32_t rule) {
  Frag f{add_state(), add_state()};
  add_call(f.start, rule, f.end);
  return f;
}

Frag Nfa::seq(Frag a, Frag b) {
  add_eps(a.end, b.start);
  return {a.start, b.end};
}

Frag Nfa::alt(const std::vector<Frag>& alternatives) {
  Frag f{add_state(), add_state()};
  for (const Frag& a : alternatives) {
    add_eps(f.start, a.start);
    add_eps(a.end, f.end);
  }
  return f;
}

Frag Nfa::star(Frag body) {
  Frag f{add_state(), add_state()};
  add_eps(f.start, body.start);
  add_eps(f.start, f.end);
  add_eps(body.end, body.start);
  add_eps(body.end, f.end);
  return f;
}

Frag Nfa::optional(Frag body) {
  Frag f{add_state(), add_state()};
  add_eps(f.start, body.start);
  add_eps(f.start, f.end);
  add_eps(body.end, f.end);
  return f;
}

namespace {

struct SetHash {
  size_t operator()(const std::vector<uint32_t>& v) const {
    uint64_t h = 1469598103934665603ull;
    for (uint32_t x : v) h = (h ^ x) * 1099511628211ull;
    return static_cast<size_t>(h);
  }
};

}  // namespace

// Subset construction over byte classes; call edges are labels like bytes, grouped by callee.
class Determinizer {
 public:
  Determinizer(const Nfa& nfa, const AutomatonLimits& limits, Automaton& out)
      : nfa_(nfa), limits_(limits), out_(out), mark_(nfa.size(), 0), is_final_(nfa.size(), 0) {}

  Status run(std::vector<RuleInfo>& rules) {
    compute_byte_classes();
    for (const RuleInfo& r : rules) is_final_[r.nfa.end] = 1;
    for (RuleInfo& r : rules) {
      std::vector<uint32_t> start{r.nfa.start};
      K2_ASSIGN_OR_RETURN(r.dfa_start, state_for(std::move(start)));
      out_.rule_starts_.push_back(r.dfa_start);
    }
    std::vector<std::vector<uint32_t>> buckets(out_.num_classes_);
    std::map<uint32_t, std::vector<uint32_t>> call_targets;
    for (uint32_t d = 0; d < sets_.size(); ++d) {
      work_ += sets_[d].size();
      if (work_ > limits_.max_work) {
        return out_of_range("grammar too complex to compile (determinisation work limit reached)");
      }
      for (auto& b : buckets) b.clear();
      call_targets.clear();
      uint8_t flags = 0;
      for (uint32_t s : sets_[d]) {
        if (is_final_[s]) flags |= kAccepting;
        const Nfa::State& st = nfa_.state(s);
        for (const Nfa::ByteEdge& e : st.bytes) {
          for (uint32_t c = out_.byte_class_[e.lo]; c <= out_.byte_class_[e.hi]; ++c) {
            buckets[c].push_back(e.target);
          }
        }
        for (const Nfa::CallEdge& e : st.calls) call_targets[e.rule].push_back(e.target);
      }
      for (uint32_t c = 0; c < out_.num_classes_; ++c) {
        if (buckets[c].empty()) continue;
        K2_ASSIGN_OR_RETURN(uint32_t target, state_for(std::move(buckets[c])));
        buckets[c] = {};
        out_.next_[static_cast<size_t>(d) * out_.num_classes_ + c] = target;
        flags |= kHasBytes;
      }
      for (auto& [rule, targets] : call_targets) {
        K2_ASSIGN_OR_RETURN(uint32_t ret, state_for(std::move(targets)));
        out_.calls_.push_back({rule, ret});
        flags |= kHasCalls;
      }
      out_.flags_[d] = flags;
      out_.call_offsets_[d + 1] = static_cast<uint32_t>(out_.calls_.size());
    }
    return check_rules(rules);
  }

 private:
  void compute_byte_classes() {
    std::array<bool, 257> boundary{};
    boundary[0] = true;
    for (size_t s = 0; s < nfa_.size(); ++s) {
      for (const Nfa::ByteEdge& e : nfa_.state(static_cast<uint32_t>(s)).bytes) {
        boundary[e.lo] = true;
        boundary[static_cast<size_t>(e.hi) + 1] = true;
      }
    }
    int cls = -1;
    for (int b = 0; b < 256; ++b) {
      if (boundary[b]) ++cls;
      out_.byte_class_[b] = static_cast<uint8_t>(cls);
    }
    out_.num_classes_ = static_cast<uint32_t>(cls + 1);
  }

  void close(std::vector<uint32_t>& set) {
    ++generation_;
    std::vector<uint32_t> todo = set;
    set.clear();
    while (!todo.empty()) {
      uint32_t s = todo.back();
      todo.pop_back();
      if (mark_[s] == generation_) continue;
      mark_[s] = generation_;
      set.push_back(s);
      for (uint32_t t : nfa_.state(s).eps) todo.push_back(t);
    }
    std::sort(set.begin(), set.end());
  }

  Result<uint32_t> state_for(std::vector<uint32_t> set) {
    close(set);
    auto it = ids_.find(set);
    if (it != ids_.end()) return it->second;
    if (sets_.size() >= limits_.max_dfa_states) {
      return out_of_range("grammar too large: more than " + std::to_string(limits_.max_dfa_states) +
                          " automaton states");
    }
    uint32_t id = static_cast<uint32_t>(sets_.size());
    ids_.emplace(set, id);
    sets_.push_back(std::move(set));
    out_.next_.resize(sets_.size() * out_.num_classes_, kDeadState);
    out_.flags_.push_back(0);
    out_.call_offsets_.resize(sets_.size() + 1, 0);
    return id;
  }

  // A rule that matches "" or calls itself before consuming a byte would let the matcher's
  // closure loop; JSON values are never empty, so such a rule can only come from a
  // self-referencing $ref chain.
  Status check_rules(const std::vector<RuleInfo>& rules) {
    for (const RuleInfo& r : rules) {
      if (out_.flags_[r.dfa_start] & kAccepting) {
        return invalid_argument("schema at " + r.name + " matches an empty string");
      }
    }
    std::vector<int> color(rules.size(), 0);
    for (size_t i = 0; i < rules.size(); ++i) {
      if (color[i] == 0 && has_cycle(static_cast<uint32_t>(i), color)) {
        return invalid_argument("schema at " + rules[i].name +
                                " refers to itself without consuming input ($ref cycle)");
      }
    }
    return {};
  }

  bool has_cycle(uint32_t rule, std::vector<int>& color) {
    color[rule] = 1;
    uint32_t start = out_.rule_starts_[rule];
    for (const auto* c = out_.calls_begin(start); c != out_.calls_end(start); ++c) {
      if (color[c->rule] == 1) return true;
      if (color[c->rule] == 0 && has_cycle(c->rule, color)) return true;
    }
    color[rule] = 2;
    return false;
  }

  const Nfa& nfa_;
  AutomatonLimits limits_;
  Automaton& out_;
  std::vector<uint32_t> mark_;
  std::vector<uint8_t> is_final_;
  uint32_t generation_ = 0;
  size_t work_ = 0;
  std::vector<std::vector<uint32_t>> sets_;
  std::unordered_map<std::vector<uint32_t>, uint32_t, SetHash> ids_;
};

Result<Automaton> Automaton::build(const Nfa& nfa, std::vector<RuleInfo>& rules, uint32_t root_rule,
                                   const AutomatonLimits& limits) {
  if (nfa.overflowed()) return out_of_range("grammar too large: NFA state limit reached");
  Automaton out;
  out.root_rule_ = root_rule;
  out.call_offsets_.push_back(0);
  Determinizer det(nfa, limits, out);
  K2_RETURN_IF_ERROR(det.run(rules));
  if (out.flags_.size() >= kSlowBit) return out_of_range("grammar too large");
  out.tagged_next_ = out.next_;
  for (uint32_t& q : out.tagged_next_) {
    if (q != kDeadState && out.flags_[q] != kHasBytes) q |= kSlowBit;
  }
  return out;
}

}  // namespace k2::structured
