#include "enginecore/structured/grammar_matcher.h"

#include <algorithm>
#include <cstring>

namespace k2::structured {

namespace {

constexpr uint32_t kNoNode = 0xffffffffu;
constexpr uint32_t kAcceptedState = 0xfffffffeu;
constexpr uint32_t kScratchBit = 0x80000000u;
// Closure operations allowed for one byte; the grammar's structure bounds closures far below
// this, so reaching it means a bug, and the byte is then rejected rather than looping.
constexpr int kClosureBudget = 1 << 16;
constexpr size_t kMaxCachedMasks = 64;

}  // namespace

// Advances sets of stacks byte by byte. Frames pushed while stepping live in `scratch` (ids
// with kScratchBit) until the matcher commits them, so the same code serves accept_token and
// the read-only mask walk, and both reach exactly the same decisions.
class GrammarMatcher::Stepper {
 public:
  Stepper(const Automaton& a, const std::vector<Node>& nodes, std::vector<Node>& scratch, const GrammarLimits& limits)
      : a_(a), nodes_(nodes), scratch_(scratch), max_depth_(static_cast<uint32_t>(limits.max_nesting_depth)),
        max_stacks_(limits.max_stacks) {}

  // False when no stack survives (or a limit was hit, which counts as a rejected byte).
  bool step(const std::vector<Top>& from, uint8_t byte, std::vector<Top>& to) {
    to.clear();
    step_begin_ = scratch_.size();
    budget_ = kClosureBudget;
    for (const Top& t : from) {
      if (t.state == kAcceptedState) continue;
      uint32_t q = a_.next(t.state, byte);
      if (q == kDeadState) continue;
      bool ok = a_.flags(q) == kHasBytes ? add({q, t.parent}, to) : close({q, t.parent}, to);
      if (!ok) {
        to.clear();
        return false;
      }
    }
    return !to.empty();
  }

  // Expands `t` into the stacks whose top can read a byte (calls pushed, finished rules popped).
  bool close(Top t, std::vector<Top>& out) {
    if (--budget_ < 0) return false;
    uint8_t f = a_.flags(t.state);
    if ((f & kHasBytes) && !add(t, out)) return false;
    if (f & kHasCalls) {
      for (const auto* c = a_.calls_begin(t.state); c != a_.calls_end(t.state); ++c) {
        uint32_t frame = push(c->return_state, t.parent);
        if (frame == kNoNode) continue;  // deeper than the nesting limit: this reading dies
        if (!close({a_.rule_start(c->rule), frame}, out)) return false;
      }
    }
    if (f & kAccepting) {
      if (t.parent == kNoNode) return add({kAcceptedState, kNoNode}, out);
      Node below = node(t.parent);
      return close({below.state, below.parent}, out);
    }
    return true;
  }

  void begin() {
    step_begin_ = scratch_.size();
    budget_ = kClosureBudget;
  }

 private:
  const Node& node(uint32_t id) const { return id & kScratchBit ? scratch_[id & ~kScratchBit] : nodes_[id]; }

  bool add(Top t, std::vector<Top>& out) {
    if (std::find(out.begin(), out.end(), t) != out.end()) return true;
    if (out.size() >= max_stacks_) return false;
    out.push_back(t);
    return true;
  }

  uint32_t push(uint32_t state, uint32_t parent) {
    uint32_t depth = parent == kNoNode ? 1 : node(parent).depth + 1;
    if (depth > max_depth_) return kNoNode;
    for (size_t i = step_begin_; i < scratch_.size(); ++i) {
      if (scratch_[i].state == state && scratch_[i].parent == parent) return static_cast<uint32_t>(i) | kScratchBit;
    }
    scratch_.push_back({state, parent, depth});
    return static_cast<uint32_t>(scratch_.size() - 1) | kScratchBit;
  }

  const Automaton& a_;
  const std::vector<Node>& nodes_;
  std::vector<Node>& scratch_;
  uint32_t max_depth_;
  size_t max_stacks_;
  size_t step_begin_ = 0;
  int budget_ = 0;
};

GrammarMatcher::GrammarMatcher(std::shared_ptr<const CompiledGrammar> grammar,
                               std::shared_ptr<const TokenVocabulary> vocab)
    : grammar_(std::move(grammar)), vocab_(std::move(vocab)) {
  K2_CHECK(grammar_ && vocab_, "GrammarMatcher needs a grammar and a vocabulary");
  scratch_.clear();
  Stepper stepper(grammar_->automaton(), nodes_, scratch_, grammar_->limits());
  stepper.begin();
  std::vector<Top> tops;
  if (!stepper.close({grammar_->automaton().root_start(), kNoNode}, tops)) tops.clear();
  commit(tops);
}

bool GrammarMatcher::can_terminate() const {
  if (terminated_) return false;
  return std::any_of(tops_.begin(), tops_.end(), [](const Top& t) { return t.state == kAcceptedState; });
}

bool GrammarMatcher::accept_token(int32_t id) {
  if (terminated_ || id < 0 || static_cast<size_t>(id) >= vocab_->size()) return false;
  if (vocab_->is_end(id)) {
    if (!can_terminate()) return false;
    terminated_ = true;
    return true;
  }
  const std::string& bytes = vocab_->bytes(id);
  if (bytes.empty()) return false;
  return advance(bytes);
}

bool GrammarMatcher::accept_bytes(std::string_view bytes) {
  if (terminated_ || bytes.empty()) return false;
  return advance(bytes);
}

bool GrammarMatcher::advance(std::string_view bytes) {
  if (levels_.size() < 2) levels_.resize(2);
  scratch_.clear();
  Stepper stepper(grammar_->automaton(), nodes_, scratch_, grammar_->limits());
  std::vector<Top>* cur = &levels_[0];
  std::vector<Top>* next = &levels_[1];
  *cur = tops_;
  for (char c : bytes) {
    if (!stepper.step(*cur, static_cast<uint8_t>(c), *next)) return false;
    std::swap(cur, next);
  }
  std::vector<Top> result = *cur;
  commit(result);
  return true;
}

uint32_t GrammarMatcher::intern(uint32_t id) {
  if (id == kNoNode || !(id & kScratchBit)) return id;
  Node n = scratch_[id & ~kScratchBit];
  uint32_t parent = intern(n.parent);
  uint64_t key = (static_cast<uint64_t>(n.state) << 32) | parent;
  auto [it, inserted] = node_ids_.try_emplace(key, static_cast<uint32_t>(nodes_.size()));
  if (inserted) nodes_.push_back({n.state, parent, n.depth});
  return it->second;
}

void GrammarMatcher::commit(std::vector<Top>& tops) {
  std::vector<Top> interned;
  for (const Top& t : tops) {
    Top u{t.state, intern(t.parent)};
    if (std::find(interned.begin(), interned.end(), u) == interned.end()) interned.push_back(u);
  }
  tops_ = std::move(interned);
  scratch_.clear();
}

void GrammarMatcher::fill_next_token_bitmask(std::span<uint32_t> mask) const {
  K2_CHECK(mask.size() >= vocab_->mask_words(), "token bitmask too small");
  std::fill(mask.begin(), mask.end(), 0u);
  if (terminated_) return;
  std::string key(reinterpret_cast<const char*>(tops_.data()), tops_.size() * sizeof(Top));
  auto it = mask_cache_.find(key);
  if (it != mask_cache_.end()) {
    ++cache_hits_;
    std::copy(it->second.begin(), it->second.end(), mask.begin());
    return;
  }
  walk_trie(mask);
  if (can_terminate()) {
    for (int32_t id : vocab_->end_ids()) mask[static_cast<size_t>(id) / 32] |= 1u << (id % 32);
  }
  if (mask_cache_.size() >= kMaxCachedMasks) mask_cache_.clear();
  mask_cache_.emplace(std::move(key), std::vector<uint32_t>(mask.begin(), mask.begin() + vocab_->mask_words()));
}

void GrammarMatcher::walk_trie(std::span<uint32_t> mask) const {
  std::span<const TokenVocabulary::TrieNode> trie = vocab_->trie();
  std::span<const int32_t> tokens = vocab_->trie_tokens();
  size_t levels = vocab_->max_token_length() + 1;
  if (levels_.size() < levels) levels_.resize(levels);
  single_.resize(levels);
  is_multi_.assign(levels, 0);
  scratch_marks_.assign(levels, 0);
  scratch_.clear();
  if (tops_.size() == 1) {
    single_[0] = tops_[0];
  } else {
    levels_[0] = tops_;
    is_multi_[0] = 1;
  }
  const Automaton& automaton = grammar_->automaton();
  Stepper stepper(automaton, nodes_, scratch_, grammar_->limits());
  std::vector<Top> one(1);
  auto allow = [&](const TokenVocabulary::TrieNode& node) {
    for (uint32_t t = node.tokens_begin; t < node.tokens_end; ++t) {
      int32_t id = tokens[t];
      mask[static_cast<size_t>(id) / 32] |= 1u << (id % 32);
    }
  };
  size_t i = 0;
  while (i < trie.size()) {
    const TokenVocabulary::TrieNode& node = trie[i];
    size_t d = node.depth;
    const std::vector<Top>* from = &levels_[d - 1];
    // Fast path: a single stack whose DFA step needs no call or return (most of a free
    // string); levels held as one Top skip the vectors and the scratch bookkeeping.
    if (!is_multi_[d - 1]) {
      Top top = single_[d - 1];
      uint32_t q = top.state == kAcceptedState ? kDeadState : automaton.next_tagged(top.state, node.byte);
      if (q == kDeadState) {
        i = node.subtree_end;
        continue;
      }
      if (!(q & Automaton::kSlowBit)) {
        single_[d] = {q, top.parent};
        is_multi_[d] = 0;
        scratch_marks_[d] = scratch_marks_[d - 1];
        allow(node);
        ++i;
        continue;
      }
      one[0] = top;
      from = &one;
    }
    scratch_.resize(scratch_marks_[d - 1]);
    std::vector<Top>& to = levels_[d];
    if (!stepper.step(*from, node.byte, to)) {
      i = node.subtree_end;
      continue;
    }
    is_multi_[d] = to.size() != 1;
    if (to.size() == 1) single_[d] = to[0];
    scratch_marks_[d] = scratch_.size();
    allow(node);
    ++i;
  }
  scratch_.clear();
}

}  // namespace k2::structured
