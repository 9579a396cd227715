// libFuzzer target: the input bytes are a configuration followed by a program of
// add / step / abort operations, where a step's "worker result" (sampled tokens, and now
// and then a malformed result) also comes from the input. Requests may carry media spans
// (valid or not) under a small encoder budget. The scheduler must refuse bad
// input with a Status, never crash, and keep its invariants after every operation.
#include <cstddef>
#include <cstdint>
#include <string>

#include "enginecore/scheduler.h"

namespace {

using k2::engine::KvCacheConfig;
using k2::engine::RequestParams;
using k2::engine::Scheduler;
using k2::engine::SchedulerConfig;
using k2::engine::SchedulerOutput;
using k2::engine::StepResult;
using k2::engine::TokenId;

class Bytes {
 public:
  Bytes(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  bool empty() const { return pos_ >= size_; }
  uint8_t next() { return pos_ < size_ ? data_[pos_++] : 0; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

void check(const Scheduler& s) {
  const k2::Status st = s.check_invariants();
  K2_CHECK(st.ok(), st.to_string());
}

// Each listed item is one the chunk reaches, and the step's charged encoder work (listed
// items minus those the workers' cache holds) fits the budget or is a single item larger
// than all of it.
void check_encoder_work(const Scheduler& s, const SchedulerOutput& plan) {
  int32_t listed = 0;
  bool charged_is_one_item = false;
  for (const auto& r : plan.requests) {
    const k2::engine::Request* request = s.find_request(r.request_id);
    K2_CHECK(request != nullptr, "a scheduled request is unknown");
    const int32_t end = r.start_position + static_cast<int32_t>(r.token_ids.size());
    for (int32_t i : r.encode_media) {
      K2_CHECK(i >= 0 && static_cast<size_t>(i) < request->media().size(), "encode_media out of range");
      const k2::engine::MediaSpan& m = request->media()[static_cast<size_t>(i)];
      K2_CHECK(m.offset < end && m.end() > r.start_position, "an encoded item outside its chunk");
      listed += m.num_tokens;
      charged_is_one_item = charged_is_one_item || m.num_tokens == plan.num_encoder_tokens;
    }
  }
  K2_CHECK(plan.num_encoder_tokens >= 0 && plan.num_encoder_tokens <= listed, "encoder work miscounted");
  K2_CHECK(plan.num_encoder_tokens <= s.encoder_budget().compute_budget() || charged_is_one_item,
           "encoder budget exceeded");
}

RequestParams make_request(Bytes& in, int index) {
  RequestParams p;
  p.request_id = in.next() % 16 == 0 ? std::string() : "r" + std::to_string(index % 40);
  const int num_prompt = in.next() % 48;
  const int vocab = 1 + in.next() % 8;  // few distinct tokens: many shared prefixes
  for (int i = 0; i < num_prompt; ++i) p.prompt_token_ids.push_back(static_cast<TokenId>(in.next() % vocab));
  p.stop.max_tokens = static_cast<int8_t>(in.next()) % 40;
  p.stop.min_tokens = in.next() % 8;
  p.stop.ignore_eos = (in.next() & 1) != 0;
  p.stop.eos_token_ids = {0, 1};
  p.stop.stop_token_ids = {static_cast<TokenId>(in.next() % 16)};
  p.priority = static_cast<int8_t>(in.next()) % 4;
  p.skip_prefix_cache = in.next() % 8 == 0;
  if (const int group = in.next() % 8; group < 3) p.group_id = "g" + std::to_string(group);
  if (in.next() % 8 == 0) p.cache_salt = "salt";
  for (int n = in.next() % 4; n > 0; --n) {  // few distinct pictures; spans may be bad
    const uint64_t content = in.next() % 3;
    p.media.push_back(k2::engine::MediaSpan{{content, content}, static_cast<int8_t>(in.next()) % 48,
                                            static_cast<int8_t>(in.next()) % 16});
  }
  return p;
}

StepResult make_result(Bytes& in, const SchedulerOutput& plan) {
  StepResult result;
  result.step_id = plan.step_id;
  for (const auto& r : plan.requests) {
    std::vector<TokenId> sampled;
    if (r.needs_sample) sampled.push_back(static_cast<TokenId>(in.next() % 16));
    result.sampled_token_ids.push_back(std::move(sampled));
  }
  switch (in.next() % 32) {  // now and then a result no correct worker sends
    case 0: result.step_id += 1; break;
    case 1: result.sampled_token_ids.emplace_back(); break;
    case 2:
      if (!result.sampled_token_ids.empty()) result.sampled_token_ids[0].push_back(-1);
      break;
    default: break;
  }
  return result;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Bytes in(data, size);
  SchedulerConfig config;
  config.max_model_len = 8 + in.next() % 64;
  config.enable_chunked_prefill = (in.next() & 3) != 0;
  config.max_num_batched_tokens = 1 + in.next() % 64;
  if (!config.enable_chunked_prefill) config.max_num_batched_tokens += config.max_model_len;
  config.max_num_seqs = 1 + in.next() % 8;
  config.policy = (in.next() & 1) != 0 ? k2::engine::SchedulingPolicy::kPriority : k2::engine::SchedulingPolicy::kFcfs;
  KvCacheConfig kv;
  kv.block_size = 1 << (in.next() % 4);
  kv.num_blocks = 2 + in.next() % 48;
  kv.enable_prefix_caching = (in.next() % 4) != 0;
  config.encoder.max_num_encoder_input_tokens = in.next() % 16;
  config.encoder.encoder_cache_size = in.next() % 24;
  config.encoder.shared_cache = in.next() % 4 != 0;
  auto created = Scheduler::create(config, kv);
  if (!created.ok()) return 0;
  Scheduler& s = **created;

  int index = 0;
  for (int op = 0; op < 2000 && !in.empty(); ++op) {
    switch (in.next() % 4) {
      case 0: (void)s.add_request(make_request(in, index++)); break;
      case 1: (void)s.abort("r" + std::to_string(in.next() % 40)); break;
      default: {
        const SchedulerOutput plan = s.schedule();
        K2_CHECK(plan.num_scheduled_tokens <= config.max_num_batched_tokens, "budget exceeded");
        check_encoder_work(s, plan);
        if (plan.empty()) break;
        if (in.next() % 8 == 0) (void)s.abort("r" + std::to_string(in.next() % 40));
        if (!s.update_from_output(plan, make_result(in, plan)).ok()) {
          // A refused result leaves the plan in flight; the correct one must still apply.
          StepResult ok;
          ok.step_id = plan.step_id;
          for (const auto& r : plan.requests) {
            ok.sampled_token_ids.push_back(r.needs_sample ? std::vector<TokenId>{5} : std::vector<TokenId>{});
          }
          const k2::Status st = s.update_from_output(plan, ok);
          K2_CHECK(st.ok(), st.to_string());
        }
        break;
      }
    }
    (void)s.take_outputs();
    check(s);
  }
  return 0;
}
