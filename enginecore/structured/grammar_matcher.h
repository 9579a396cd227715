// GrammarMatcher: the per-request state of constrained decoding. It tracks where the output
// generated so far stands in a CompiledGrammar and gives, at every step, the bitmask of the
// tokens that keep the output a prefix of a sentence of the grammar.
//
// The state is a small set of parse stacks (one per way the bytes so far can be read). Stack
// frames below the top are interned nodes owned by the matcher; the top frame is a DFA state.
// Owns its node store and a cache of masks for states seen before. Holds shared_ptrs to the
// (immutable) grammar and vocabulary. Not thread-safe: one matcher per request, used by one
// thread at a time; copying a matcher forks the request's state.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "enginecore/structured/compiled_grammar.h"
#include "enginecore/structured/token_vocabulary.h"

namespace k2::structured {

class GrammarMatcher {
 public:
  GrammarMatcher(std::shared_ptr<const CompiledGrammar> grammar, std::shared_ptr<const TokenVocabulary> vocab);

  // False (state unchanged) when the token is not allowed now.
  bool accept_token(int32_t id);
  // Feeds raw bytes as if they were one token; false (state unchanged) when not allowed.
  bool accept_bytes(std::string_view bytes);
  // Bit (id % 32) of word (id / 32) is set iff accept_token(id) would succeed.
  // mask.size() must be at least vocab.mask_words(); extra words are zeroed.
  void fill_next_token_bitmask(std::span<uint32_t> mask) const;

  bool is_terminated() const { return terminated_; }
  // The output so far is a complete JSON value of the grammar: end tokens are allowed.
  bool can_terminate() const;

  const TokenVocabulary& vocabulary() const { return *vocab_; }
  size_t mask_cache_hits() const { return cache_hits_; }

  struct Top {
    uint32_t state;   // DFA state, or kAcceptedState once the root rule has ended
    uint32_t parent;  // node id of the frame below, kNoNode for the root frame
    bool operator==(const Top&) const = default;
  };
  struct Node {
    uint32_t state;  // the caller's return state
    uint32_t parent;
    uint32_t depth;  // number of frames at and below this one
  };

 private:
  class Stepper;
  friend class Stepper;

  bool advance(std::string_view bytes);
  void commit(std::vector<Top>& tops);
  uint32_t intern(uint32_t scratch_or_node);
  void walk_trie(std::span<uint32_t> mask) const;

  std::shared_ptr<const CompiledGrammar> grammar_;
  std::shared_ptr<const TokenVocabulary> vocab_;
  std::vector<Top> tops_;
  bool terminated_ = false;

  std::vector<Node> nodes_;
  std::unordered_map<uint64_t, uint32_t> node_ids_;

  // Scratch shared by advance() and walk_trie(); reused to avoid allocation per step.
  mutable std::vector<Node> scratch_;
  mutable std::vector<std::vector<Top>> levels_;
  mutable std::vector<Top> single_;       // per trie depth: the one stack, when there is one
  mutable std::vector<uint8_t> is_multi_; // per trie depth: the stacks are in levels_ instead
  mutable std::vector<size_t> scratch_marks_;
  mutable std::unordered_map<std::string, std::vector<uint32_t>> mask_cache_;
  mutable size_t cache_hits_ = 0;
};

}  // namespace k2::structured
