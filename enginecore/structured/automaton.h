// The compiled form of a grammar: a recursive transition network whose rules are byte-level
// DFAs with "call rule R, then continue in state S" edges. Schemas are turned into one
// Thompson NFA per rule (Nfa below) and determinised into one Automaton shared by all rules.
//
// Nfa is a scratch builder owned by one compiler (not thread-safe). Automaton is immutable
// once built and safe to read from any number of threads.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "shm/status.h"

namespace k2::structured {

inline constexpr uint32_t kDeadState = 0xffffffffu;

// A fragment of an NFA under construction: one entry and one exit state.
struct Frag {
  uint32_t start = 0;
  uint32_t end = 0;
};

class Nfa {
 public:
  struct ByteEdge {
    uint8_t lo;
    uint8_t hi;
    uint32_t target;
  };
  struct CallEdge {
    uint32_t rule;
    uint32_t target;
  };
  struct State {
    std::vector<uint32_t> eps;
    std::vector<ByteEdge> bytes;
    std::vector<CallEdge> calls;
  };

  explicit Nfa(size_t max_states) : max_states_(max_states) {}

  // Past the limit no state is added (state 0 is handed back) and overflowed() turns true;
  // the compiler checks it and reports an error, so building never grows without bound.
  uint32_t add_state();
  bool overflowed() const { return overflowed_; }
  void add_eps(uint32_t from, uint32_t to);
  void add_bytes(uint32_t from, uint8_t lo, uint8_t hi, uint32_t to);
  void add_call(uint32_t from, uint32_t rule, uint32_t to);
  const State& state(uint32_t id) const { return states_[id]; }
  size_t size() const { return states_.size(); }

  // Fragment builders (Thompson construction).
  Frag empty();                                   // matches ""
  Frag nothing();                                 // matches no string at all
  Frag literal(std::string_view bytes);
  Frag byte_range(uint8_t lo, uint8_t hi);
  Frag call(uint32_t rule);
  Frag seq(Frag a, Frag b);
  Frag alt(const std::vector<Frag>& alternatives);
  Frag star(Frag body);                           // body*
  Frag optional(Frag body);                       // body?

 private:
  size_t max_states_;
  bool overflowed_ = false;
  std::vector<State> states_;
};

// One rule of the network: its NFA entry/exit while compiling, its DFA start afterwards.
struct RuleInfo {
  Frag nfa;
  uint32_t dfa_start = kDeadState;
  std::string name;  // the schema path it came from, for error messages
};

struct AutomatonLimits {
  size_t max_dfa_states = 0;
  size_t max_work = 0;  // NFA states visited during determinisation, a bound on compile time
};

// Flags of a DFA state.
inline constexpr uint8_t kAccepting = 1;  // the rule may end here
inline constexpr uint8_t kHasCalls = 2;   // a call edge leaves here
inline constexpr uint8_t kHasBytes = 4;   // a byte edge leaves here

class Automaton {
 public:
  struct Call {
    uint32_t rule;
    uint32_t return_state;
  };

  // Determinises every rule of `nfa`; rules[i].nfa.end is rule i's accepting NFA state.
  static Result<Automaton> build(const Nfa& nfa, std::vector<RuleInfo>& rules, uint32_t root_rule,
                                 const AutomatonLimits& limits);

  uint32_t next(uint32_t state, uint8_t byte) const {
    return next_[static_cast<size_t>(state) * num_classes_ + byte_class_[byte]];
  }
  // next() with kSlowBit set when the target state calls, returns or has no byte edge; the
  // mask walk's fast path needs a single load per byte.
  static constexpr uint32_t kSlowBit = 0x80000000u;
  uint32_t next_tagged(uint32_t state, uint8_t byte) const {
    return tagged_next_[static_cast<size_t>(state) * num_classes_ + byte_class_[byte]];
  }
  uint8_t flags(uint32_t state) const { return flags_[state]; }
  const Call* calls_begin(uint32_t state) const { return calls_.data() + call_offsets_[state]; }
  const Call* calls_end(uint32_t state) const { return calls_.data() + call_offsets_[state + 1]; }
  uint32_t rule_start(uint32_t rule) const { return rule_starts_[rule]; }
  uint32_t root_start() const { return rule_starts_[root_rule_]; }
  size_t num_states() const { return flags_.size(); }
  size_t num_rules() const { return rule_starts_.size(); }
  uint32_t num_classes() const { return num_classes_; }

 private:
  std::array<uint8_t, 256> byte_class_{};
  uint32_t num_classes_ = 1;
  uint32_t root_rule_ = 0;
  std::vector<uint32_t> next_;
  std::vector<uint32_t> tagged_next_;
  std::vector<uint8_t> flags_;
  std::vector<uint32_t> call_offsets_;
  std::vector<Call> calls_;
  std::vector<uint32_t> rule_starts_;

  friend class Determinizer;
};

}  // namespace k2::structured
