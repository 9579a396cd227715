#include "enginecore/fake_executor.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace k2::engine::testing {

namespace {

uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t next_fingerprint(uint64_t parent, uint64_t value) {
  return mix(parent ^ mix(value)) | 1;  // never 0
}

uint64_t next_fingerprint(uint64_t parent, TokenId token) {
  return next_fingerprint(parent, static_cast<uint64_t>(static_cast<uint32_t>(token)));
}

bool contains(const std::vector<TokenId>& ids, TokenId id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

}  // namespace

TokenId hash_next_token(std::span<const TokenId> context, TokenId first_token, int32_t num_values) {
  uint64_t h = context.size();
  for (TokenId t : context) h = next_fingerprint(h, t);
  return first_token + static_cast<TokenId>(h % static_cast<uint64_t>(num_values));
}

std::vector<TokenId> reference_outputs(const std::string& request_id, std::span<const TokenId> prompt,
                                       const StopParams& stop, int32_t max_model_len, const SampleFn& sample) {
  std::vector<TokenId> context(prompt.begin(), prompt.end());
  std::vector<TokenId> outputs;
  while (true) {
    const TokenId t = sample(request_id, context);
    context.push_back(t);
    outputs.push_back(t);
    const auto num_out = static_cast<int32_t>(outputs.size());
    if (num_out >= stop.min_tokens) {
      if (!stop.ignore_eos && contains(stop.eos_token_ids, t)) break;
      if (contains(stop.stop_token_ids, t)) break;
    }
    if (num_out >= stop.max_tokens || static_cast<int32_t>(context.size()) >= max_model_len) break;
  }
  return outputs;
}

FakeExecutor::FakeExecutor(const KvCacheConfig& kv_config, SampleFn sample)
    : block_size_(kv_config.block_size),
      sample_(std::move(sample)),
      kv_(static_cast<size_t>(kv_config.num_blocks) * static_cast<size_t>(kv_config.block_size), 0) {}

void FakeExecutor::push_fingerprint(WorkerRequest& w, TokenId token) const {
  const auto pos = static_cast<int32_t>(w.fingerprints.size());
  const uint64_t parent = w.fingerprints.empty() ? 0 : w.fingerprints.back();
  uint64_t value = static_cast<uint32_t>(token);
  for (const MediaSpan& m : *w.media) {
    if (pos >= m.offset && pos < m.end()) value = mix(value ^ mix(m.hash.low ^ mix(m.hash.high + static_cast<uint64_t>(pos - m.offset))));
  }
  w.fingerprints.push_back(next_fingerprint(parent, value));
}

size_t FakeExecutor::slot(const WorkerRequest& w, int32_t position) const {
  const BlockId block = w.block_table.at(static_cast<size_t>(position / block_size_));
  return static_cast<size_t>(block) * static_cast<size_t>(block_size_) + static_cast<size_t>(position % block_size_);
}

void FakeExecutor::apply_plan_state(const SchedulerOutput& plan) {
  for (const std::string& id : plan.preempted_request_ids) state_.erase(id);
  for (const std::string& id : plan.finished_request_ids) state_.erase(id);
  for (const ScheduledRequest& s : plan.requests) {
    if (s.is_new) {
      WorkerRequest w;
      w.block_table = s.new_block_ids;
      w.tokens = s.cached_token_ids;
      auto media = media_.find(s.request_id);
      w.media = media == media_.end() ? &no_media_ : &media->second;
      w.encoded.assign(w.media->size(), false);
      for (TokenId t : w.tokens) push_fingerprint(w, t);
      w.num_computed = static_cast<int32_t>(w.tokens.size());
      EXPECT_EQ(s.start_position, w.num_computed) << s.request_id;
      state_[s.request_id] = std::move(w);
      continue;
    }
    auto it = state_.find(s.request_id);
    if (it == state_.end()) {
      ADD_FAILURE() << "plan continues unknown request " << s.request_id;
      continue;
    }
    EXPECT_TRUE(s.cached_token_ids.empty());
    it->second.block_table.insert(it->second.block_table.end(), s.new_block_ids.begin(), s.new_block_ids.end());
  }
}

void FakeExecutor::encode_media(const std::string& id, WorkerRequest& w, const ScheduledRequest& s) {
  const int32_t begin = s.start_position;
  const int32_t end = begin + static_cast<int32_t>(s.token_ids.size());
  const std::vector<MediaSpan>& media = *w.media;
  for (int32_t i : s.encode_media) {
    ASSERT_TRUE(i >= 0 && static_cast<size_t>(i) < media.size()) << id << " lists unknown media item " << i;
    const MediaSpan& m = media[static_cast<size_t>(i)];
    EXPECT_FALSE(w.encoded[static_cast<size_t>(i)]) << id << " encodes media item " << i << " again";
    EXPECT_TRUE(m.offset < end && m.end() > begin) << id << " encodes media item " << i << " outside its chunk";
    w.encoded[static_cast<size_t>(i)] = true;
    ++num_media_encoded_;
    if (!encoder_cache_.insert(m.hash).second) {
      ++num_encoder_cache_hits_;
      continue;
    }
    ++last_step_items_encoded_;
    last_step_encoder_tokens_ += m.num_tokens;
  }
  for (size_t i = 0; i < media.size(); ++i) {
    const MediaSpan& m = media[i];
    if (w.encoded[i] || m.offset >= end || m.end() <= begin) continue;
    bool twin = false;
    for (size_t j = 0; j < media.size(); ++j) twin = twin || (w.encoded[j] && media[j].hash == m.hash);
    EXPECT_TRUE(twin) << id << " chunk [" << begin << ", " << end << ") reaches media item " << i
                      << ", which was never encoded";
    w.encoded[i] = true;
  }
}

void FakeExecutor::run_request(const std::string& id, WorkerRequest& w, const ScheduledRequest& s,
                               const std::unordered_map<BlockId, int32_t>& owners) {
  const int32_t start = s.start_position;
  const auto n = static_cast<int32_t>(s.token_ids.size());
  ASSERT_EQ(start, w.num_computed) << id;
  ASSERT_GE(n, 1) << id;
  ASSERT_GE(static_cast<int64_t>(w.block_table.size()) * block_size_, int64_t{start} + n) << id;
  // Attention reads the KV of every earlier position: it must be this request's prefix.
  for (int32_t p = 0; p < start; ++p) {
    ASSERT_EQ(kv_[slot(w, p)], w.fingerprints[static_cast<size_t>(p)]) << id << " position " << p;
  }
  num_prefix_tokens_verified_ += start;
  encode_media(id, w, s);
  for (int32_t i = 0; i < n; ++i) {
    const int32_t pos = start + i;
    const TokenId token = s.token_ids[static_cast<size_t>(i)];
    if (pos < static_cast<int32_t>(w.tokens.size())) {
      ASSERT_EQ(w.tokens[static_cast<size_t>(pos)], token) << id << " position " << pos;
    } else {
      w.tokens.push_back(token);
      push_fingerprint(w, token);
    }
    const BlockId block = w.block_table[static_cast<size_t>(pos / block_size_)];
    ASSERT_EQ(owners.at(block), 1) << id << " writes shared block " << block;
    kv_[slot(w, pos)] = w.fingerprints[static_cast<size_t>(pos)];
  }
  w.num_computed += n;
  num_tokens_computed_ += n;
  // Logits only where the chunk reaches the last known token, never inside the prompt.
  if (s.needs_sample) {
    EXPECT_EQ(w.num_computed, static_cast<int32_t>(w.tokens.size())) << id;
  }
  if (w.num_computed < s.num_prompt_tokens) {
    EXPECT_FALSE(s.needs_sample) << id;
  }
}

StepResult FakeExecutor::execute(const SchedulerOutput& plan) {
  StepResult result;
  result.step_id = plan.step_id;
  last_step_encoder_tokens_ = 0;
  last_step_items_encoded_ = 0;
  apply_plan_state(plan);
  std::unordered_map<BlockId, int32_t> owners;
  for (const auto& [id, w] : state_) {
    for (BlockId b : w.block_table) {
      EXPECT_NE(b, kNullBlock) << id;
      ++owners[b];
    }
  }
  for (const ScheduledRequest& s : plan.requests) {
    std::vector<TokenId> sampled;
    auto it = state_.find(s.request_id);
    if (it != state_.end()) {
      run_request(s.request_id, it->second, s, owners);
      if (s.needs_sample) {
        const TokenId t = sample_(s.request_id, it->second.tokens);
        it->second.tokens.push_back(t);
        push_fingerprint(it->second, t);
        sampled.push_back(t);
      }
    }
    result.sampled_token_ids.push_back(std::move(sampled));
  }
  return result;
}

}  // namespace k2::engine::testing
