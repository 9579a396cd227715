#include "enginecore/protocol/codec.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>

#include <gtest/gtest.h>

#include "enginecore/protocol/fuzz_frames.h"

namespace k2::protocol {
namespace {

SamplingParams sample_params() {
  SamplingParams p;
  p.temperature = 0.7f;
  p.top_p = 0.9f;
  p.top_k = 40;
  p.min_p = 0.05f;
  p.seed = -12345678901LL;
  p.max_tokens = 128;
  p.min_tokens = 2;
  p.ignore_eos = true;
  p.stop_token_ids = {163586, 7};
  p.eos_token_ids = {163585};
  p.logprobs = 5;
  p.prompt_logprobs = 1;
  p.presence_penalty = 0.5f;
  p.frequency_penalty = -0.25f;
  p.repetition_penalty = 1.1f;
  p.logit_bias = {{11, -100.f}, {12, 2.5f}};
  p.n = 2;
  return p;
}

TokenLogprobs sample_logprobs() {
  return TokenLogprobs{2, 3, {5, 6, 7, 8, 9, 10}, {-0.1f, -2.f, -3.f, -0.5f, -1.f, -std::numeric_limits<float>::infinity()}, {1, 2}};
}

// One of every message type with non-default fields; also the fuzz seed corpus.
std::vector<Message> sample_messages() {
  std::vector<Message> out;
  out.push_back(Hello{ProcessKind::kEngineCore, 3, kProtocolVersion, true, false, 4242});
  out.push_back(EngineConfigMsg{R"({"max_model_len":4096})", "abc123", {"ipc:///tmp/k2/in"}, {"ipc:///tmp/k2/out"}, 3, "k2serve-1-abc123-prompts", ShmHandle{1, 4096, 1000, 3}, "tcp://10.0.0.1:29552", "\x91\xc4\x01a"});
  out.push_back(ReadyMsg{3, 1000, 16, 4096, 256, 8192, 0xdeadbeefULL, "{}", {"/k2serve-1-abc-kv"}});
  AddRequest add{"cmpl-1-abcdefgh", inline_tokens({1, 2, 3, 163584}), sample_params(), 1, 1.7e9, 0, "tenant", "cmpl-1/0", StructuredOutputParams{R"({"type":"object"})", false, 7}, {}};
  out.push_back(add);
  add.prompt = TokenIds{DataLocation::kShm, {}, ShmHandle{2, 4096, 40000, 9}, 0, 10000};
  out.push_back(add);
  out.push_back(AbortRequests{{"a", "b-2"}});
  out.push_back(Utility{0, 77, "reset_prefix_cache", "[]"});
  RequestOutput ro{"cmpl-1", {42, 43}, sample_logprobs(), std::nullopt, FinishReason::kStop, 163586, 16,
                   {{RequestEventType::kScheduled, 12.5}}};
  out.push_back(EngineOutputs{0, {ro}, SchedulerStats{3, 1, 0.25f, 100, 40, 2, 99, 7, 3, std::nullopt}, 12.75,
                              UtilityOutput{77, std::nullopt, "true"}, {"cmpl-0"}});
  StepPlan plan;
  plan.step_id = 99;
  plan.sampling_params = {sample_params()};
  ScheduledRequest r1;
  r1.request_id = "r1";
  r1.token_ids = inline_tokens({5, 6, 7});
  r1.start_position = 16;
  r1.num_tokens = 3;
  r1.blocks.block_ids = {1, 2};
  r1.sample = true;
  r1.params_index = 0;
  r1.cached_token_ids = std::vector<int32_t>(16, 4);
  r1.num_prompt_tokens = 19;
  r1.media = {MediaItem{"/k2serve-1-abc-media", ShmHandle{2, 8192, 9408, 5}, 1, 4, 4, 0x1234, 0x5678, 3, 4}};
  r1.encode_media = {0};
  plan.requests.push_back(r1);
  ScheduledRequest r2;
  r2.request_id = "r2";
  r2.slot = 1;
  r2.token_ids = inline_tokens({9});
  r2.start_position = 40;
  r2.num_tokens = 1;
  r2.blocks.replace = false;
  r2.blocks.block_ids = {7};
  r2.sample = true;
  r2.num_output_tokens = 3;
  r2.num_prompt_tokens = 38;
  r2.allowed_token_mask = {0xffffffffu, 0x1u};
  plan.requests.push_back(r2);
  plan.finished_request_ids = {"r0"};
  plan.total_num_tokens = 4;
  out.push_back(plan);
  out.push_back(StepResult{99, 0, {{0, {12}, sample_logprobs(), std::nullopt}, {1, {13}, std::nullopt, std::nullopt}},
                           ShmHandle{1, 128, 64, 2}, "", 7, 3, std::nullopt});
  out.push_back(EngineDead{"worker 0 died", 1});
  // A multimodal prompt: one image's pixel_values in the frontend's media arena.
  add.media = {MediaItem{"/k2serve-1-abc-media", ShmHandle{2, 8192, 9408, 5}, 1, 4, 4, 0x1234, 0x5678, 8, 4}};
  out.push_back(add);
  out.push_back(DpControl{DpControlKind::kSync, 1, 3, 7, true, -1});
  // Expert-load statistics: asked for by a plan, reported by a worker, published in stats.
  plan.report_expert_load = true;
  out.push_back(plan);
  const ExpertLoad load{4, {1, 3}, {5, 0, 2, 9, 1, 1, 0, uint64_t{1} << 40}};
  out.push_back(StepResult{100, 0, {}, std::nullopt, "", 0, 0, load});
  out.push_back(EngineOutputs{1, {}, SchedulerStats{0, 0, 0.f, 0, 0, 0, 100, 0, 0, load}, 13.5, std::nullopt, {}});
  return out;
}

Frames frames_of(std::initializer_list<std::string> parts) { return Frames(parts); }

std::string header(MsgType t, uint8_t version = kProtocolVersion) {
  return std::string{static_cast<char>(version), static_cast<char>(t)};
}

template <class T>
std::string packed(const T& value) {
  msgpack::sbuffer buf;
  msgpack::pack(buf, value);
  return std::string(buf.data(), buf.size());
}

TEST(Codec, EveryMessageRoundTrips) {
  for (const auto& m : sample_messages()) {
    Frames f = encode(m);
    ASSERT_EQ(f.size(), 2u);
    EXPECT_EQ(static_cast<uint8_t>(f[0][0]), kProtocolVersion);
    EXPECT_EQ(static_cast<MsgType>(f[0][1]), message_type(m));
    auto back = decode(f);
    ASSERT_TRUE(back.ok()) << message_type_name(message_type(m)) << ": " << back.status().to_string();
    EXPECT_TRUE(*back == m) << message_type_name(message_type(m));
  }
}

TEST(Codec, LargeTokenArraysTravelAsExtraFrames) {
  std::vector<int32_t> ids(1000);
  for (int i = 0; i < 1000; ++i) ids[i] = i * 161 - 5;
  AddRequest add{"big", inline_tokens(ids), SamplingParams{}, 0, 0, 0, {}, {}, std::nullopt, {}};
  Frames f = encode(add, EncodeOptions{256});
  ASSERT_EQ(f.size(), 3u);
  EXPECT_EQ(f[2].size(), 4000u);
  EXPECT_LT(f[1].size(), 200u);
  auto back = decode(f);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_TRUE(*back == Message(add));

  Frames small = encode(Message(AddRequest{"s", inline_tokens({1, 2}), {}, 0, 0, 0, {}, {}, std::nullopt, {}}), EncodeOptions{256});
  EXPECT_EQ(small.size(), 2u);

  Frames truncated = f;
  truncated[2].pop_back();
  EXPECT_EQ(decode(truncated).status().code(), Code::kCorrupt);
  Frames missing(f.begin(), f.begin() + 2);
  EXPECT_EQ(decode(missing).status().code(), Code::kCorrupt);
  Frames extra = encode(add);
  extra.push_back("unreferenced");
  EXPECT_EQ(decode(extra).status().code(), Code::kCorrupt);
}

TEST(Codec, FramingErrorsAreValues) {
  Frames good = encode(Message(AbortRequests{{"x"}}));
  EXPECT_EQ(decode(Frames{}).status().code(), Code::kCorrupt);
  EXPECT_EQ(decode(Frames{good[0]}).status().code(), Code::kCorrupt);
  EXPECT_EQ(decode(frames_of({"", good[1]})).status().code(), Code::kCorrupt);
  EXPECT_EQ(decode(frames_of({header(MsgType::kAbortRequests, kProtocolVersion + 1), good[1]})).status().code(), Code::kUnimplemented);
  EXPECT_EQ(decode(frames_of({std::string{static_cast<char>(kProtocolVersion), 0}, good[1]})).status().code(), Code::kCorrupt);
  EXPECT_EQ(decode(frames_of({std::string{static_cast<char>(kProtocolVersion), 99}, good[1]})).status().code(), Code::kCorrupt);
  EXPECT_EQ(decode(frames_of({good[0], good[1] + "x"})).status().code(), Code::kCorrupt);
  // The body of one type under another type's header.
  EXPECT_FALSE(decode(frames_of({header(MsgType::kHello), good[1]})).ok());
  Frames many(100, good[1]);
  many[0] = good[0];
  EXPECT_EQ(decode(many).status().code(), Code::kCorrupt);
}

TEST(Codec, EveryTruncationAndByteFlipIsHandled) {
  for (const auto& m : sample_messages()) {
    Frames f = encode(m);
    for (size_t n = 0; n < f[1].size(); ++n) {
      auto r = decode(frames_of({f[0], f[1].substr(0, n)}));
      EXPECT_FALSE(r.ok()) << "prefix " << n;
    }
    for (size_t i = 0; i < f[1].size(); ++i) {
      for (uint8_t x : {0x01, 0x80, 0xff}) {
        Frames g = f;
        g[1][i] = static_cast<char>(g[1][i] ^ x);
        auto r = decode(g);  // any outcome but a crash or exception
        if (r.ok()) {
          EXPECT_TRUE(validate(*r).ok());
        }
      }
    }
  }
}

TEST(Codec, HostileSizesAreBounded) {
  // An array header claiming 2^32-1 elements in a 5-byte body must fail without allocating.
  std::string huge_array{static_cast<char>(0xdd), static_cast<char>(0xff), static_cast<char>(0xff),
                         static_cast<char>(0xff), static_cast<char>(0xff)};
  EXPECT_EQ(decode(frames_of({header(MsgType::kAbortRequests), huge_array})).status().code(), Code::kCorrupt);
  std::string huge_str{static_cast<char>(0xdb), static_cast<char>(0xff), static_cast<char>(0xff),
                       static_cast<char>(0xff), static_cast<char>(0xff)};
  EXPECT_EQ(decode(frames_of({header(MsgType::kEngineDead), huge_str})).status().code(), Code::kCorrupt);
  std::string deep(200, static_cast<char>(0x91));  // [[[[...]]]]
  deep.push_back(static_cast<char>(0x90));
  EXPECT_EQ(decode(frames_of({header(MsgType::kAbortRequests), deep})).status().code(), Code::kCorrupt);
}

TEST(Codec, ForwardCompatibleArrays) {
  // Fewer trailing fields: defaults. More trailing fields: ignored.
  auto short_hello = decode(frames_of({header(MsgType::kHello), packed(std::make_tuple(2, 5))}));
  ASSERT_TRUE(short_hello.ok()) << short_hello.status().to_string();
  auto& h = std::get<Hello>(*short_hello);
  EXPECT_EQ(h.kind, ProcessKind::kWorker);
  EXPECT_EQ(h.rank, 5u);
  EXPECT_EQ(h.version, kProtocolVersion);
  auto long_abort = decode(frames_of({header(MsgType::kAbortRequests),
                                      packed(std::make_tuple(std::vector<std::string>{"q"}, 1, "future"))}));
  ASSERT_TRUE(long_abort.ok());
  EXPECT_EQ(std::get<AbortRequests>(*long_abort).request_ids, std::vector<std::string>{"q"});
}

// Frames from a build before expert-load statistics still decode (the fields are trailing and
// optional), and the new fields survive a round trip.
TEST(Codec, ExpertLoadIsOptionalOnTheWire) {
  const auto old_result = packed(std::make_tuple(7, 1, std::vector<int>{}, msgpack::type::nil_t(), "", 4, 2));
  auto result = decode(frames_of({header(MsgType::kStepResult), old_result}));
  ASSERT_TRUE(result.ok()) << result.status().to_string();
  EXPECT_EQ(std::get<StepResult>(*result).mm_cache_queries, 4u);
  EXPECT_FALSE(std::get<StepResult>(*result).expert_load);
  const auto old_plan = packed(std::make_tuple(8, std::vector<int>{}, std::vector<int>{}, std::vector<std::string>{"x"}, 0));
  auto plan = decode(frames_of({header(MsgType::kStepPlan), old_plan}));
  ASSERT_TRUE(plan.ok()) << plan.status().to_string();
  EXPECT_FALSE(std::get<StepPlan>(*plan).report_expert_load);
  const auto old_stats = std::make_tuple(3, 1, 0.5f, 10, 4, 0, 9, 0, 0);
  const auto old_outputs = packed(std::make_tuple(2, std::vector<int>{}, old_stats, 1.5, msgpack::type::nil_t(),
                                                  std::vector<std::string>{}));
  auto outputs = decode(frames_of({header(MsgType::kEngineOutputs), old_outputs}));
  ASSERT_TRUE(outputs.ok()) << outputs.status().to_string();
  const auto& stats = std::get<EngineOutputs>(*outputs).scheduler_stats;
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->num_running, 3u);
  EXPECT_FALSE(stats->expert_load);

  const std::vector<Message> samples = sample_messages();
  auto back = decode(encode(samples.back()));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(std::get<EngineOutputs>(*back).scheduler_stats->expert_load->tokens.back(), uint64_t{1} << 40);
}

TEST(Codec, ExpertLoadShapeIsValidated) {
  auto invalid = [](Message m) { return decode(encode(m)).status().code() == Code::kInvalidArgument; };
  StepResult r{1, 0, {}, std::nullopt, "", 0, 0, ExpertLoad{2, {0, 1}, {1, 2, 3, 4}}};
  EXPECT_FALSE(invalid(r));
  r.expert_load->tokens.pop_back();
  EXPECT_TRUE(invalid(r));
  r.expert_load = ExpertLoad{2, {1, 1}, {1, 2, 3, 4}};  // a layer twice
  EXPECT_TRUE(invalid(r));
  r.expert_load = ExpertLoad{0, {}, {}};
  EXPECT_TRUE(invalid(r));
  EngineOutputs o{0, {}, SchedulerStats{}, 1.0, std::nullopt, {}};
  o.scheduler_stats->expert_load = ExpertLoad{3, {5}, {1, 2}};
  EXPECT_TRUE(invalid(o));
}

TEST(Codec, TypeAndRangeErrors) {
  // rank does not fit uint32; kind is not a process kind; a string where an int belongs.
  EXPECT_EQ(decode(frames_of({header(MsgType::kHello), packed(std::make_tuple(1, int64_t{1} << 40))})).status().code(),
            Code::kCorrupt);
  EXPECT_EQ(decode(frames_of({header(MsgType::kHello), packed(std::make_tuple(9, 0))})).status().code(),
            Code::kInvalidArgument);
  EXPECT_EQ(decode(frames_of({header(MsgType::kHello), packed(std::make_tuple("x", 0))})).status().code(),
            Code::kCorrupt);
  EXPECT_EQ(decode(frames_of({header(MsgType::kHello), packed(7)})).status().code(), Code::kCorrupt);
}

TEST(Codec, ValidationRejectsWhatWouldBreakTheEngine) {
  auto invalid = [](Message m) { return decode(encode(m)).status().code() == Code::kInvalidArgument; };
  AddRequest add{"r", inline_tokens({1}), SamplingParams{}, 0, 0, 0, {}, {}, std::nullopt, {}};
  EXPECT_TRUE(decode(encode(add)).ok());
  AddRequest bad = add;
  bad.params.temperature = std::nanf("");
  EXPECT_TRUE(invalid(bad));
  bad = add;
  bad.params.top_p = 0;
  EXPECT_TRUE(invalid(bad));
  bad = add;
  bad.params.min_tokens = 100;
  EXPECT_TRUE(invalid(bad));
  bad = add;
  bad.params.n = 0;
  EXPECT_TRUE(invalid(bad));
  bad = add;
  bad.request_id = "";
  EXPECT_TRUE(invalid(bad));
  bad = add;
  bad.prompt = inline_tokens({});
  EXPECT_TRUE(invalid(bad));
  bad = add;
  bad.prompt.count = 5;
  EXPECT_TRUE(invalid(bad));
  bad = add;
  bad.prompt = TokenIds{DataLocation::kShm, {}, ShmHandle{1, 64, 8, 0}, 0, 2};  // generation 0
  EXPECT_TRUE(invalid(bad));
  bad.prompt.location = DataLocation::kFrame;  // kFrame without a frame
  EXPECT_FALSE(decode(encode(bad)).ok());

  StepPlan plan = std::get<StepPlan>(sample_messages()[8]);
  StepPlan p = plan;
  p.requests[0].params_index = 1;
  EXPECT_TRUE(invalid(p));
  p = plan;
  p.total_num_tokens = 5;
  EXPECT_TRUE(invalid(p));
  p = plan;
  p.requests[1].num_tokens = 2;
  EXPECT_TRUE(invalid(p));
  p = plan;
  p.requests[1].sample = false;  // a mask for a step that draws nothing
  EXPECT_TRUE(invalid(p));

  AddRequest structured = std::get<AddRequest>(sample_messages()[3]);
  ASSERT_TRUE(structured.structured);
  structured.structured->json_object = true;  // a schema and json_object at once
  EXPECT_TRUE(invalid(structured));
  structured.structured->json_schema.clear();
  EXPECT_FALSE(invalid(structured));

  StepResult r = std::get<StepResult>(sample_messages()[9]);
  r.samples[0].logprobs->ranks.pop_back();
  EXPECT_TRUE(invalid(r));
  EngineOutputs o = std::get<EngineOutputs>(sample_messages()[7]);
  o.outputs[0].finish_reason = static_cast<FinishReason>(17);
  EXPECT_TRUE(invalid(o));
}

// A float of exactly 2^64 (or an integer that converts to it) would make msgpack-cxx's
// integral-float shortcut cast 2^64 to uint64_t on the next encode: found by the fuzzer.
TEST(Codec, FloatsThatCannotBeReEncodedAreRejected) {
  AddRequest add{"r", inline_tokens({1}), SamplingParams{}, 0, 0, 0, {}, {}, std::nullopt, {}};
  add.params.temperature = 1.5f;
  Frames f = encode(add);
  const std::string one_and_half("\xca\x3f\xc0\x00\x00", 5);
  auto at = f[1].find(one_and_half);
  ASSERT_NE(at, std::string::npos);
  f[1].replace(at, 5, std::string("\xca\x5f\x80\x00\x00", 5));  // float32 2^64
  EXPECT_EQ(decode(f).status().code(), Code::kInvalidArgument);
  f[1].replace(at, 5, std::string("\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 9));  // uint64 max
  EXPECT_EQ(decode(f).status().code(), Code::kInvalidArgument);
  EngineOutputs o = std::get<EngineOutputs>(sample_messages()[7]);
  o.outputs[0].new_logprobs->logprobs[0] = 0x1p62f;
  EXPECT_TRUE(decode(encode(o)).ok());
}

// Not a benchmark gate, a sanity bound plus a figure: the engine encodes one StepPlan and
// decodes one StepResult per step, and the overhead goal is ~10 us at batch 64.
TEST(Codec, StepPlanOfBatch64IsCheap) {
  StepPlan plan;
  plan.step_id = 1;
  plan.sampling_params.push_back(SamplingParams{});
  for (uint32_t i = 0; i < 64; ++i) {
    ScheduledRequest r;
    r.request_id = "cmpl-0123456789abcdef-" + std::to_string(i);
    r.slot = i;
    r.token_ids = inline_tokens({static_cast<int32_t>(1000 + i)});
    r.start_position = 100 + i;
    r.num_tokens = 1;
    r.blocks.replace = false;
    r.sample = true;
    r.num_output_tokens = 10;
    r.num_prompt_tokens = 90 + i;
    plan.requests.push_back(std::move(r));
  }
  plan.total_num_tokens = 64;
  constexpr int kIters = 2000;
  auto t0 = std::chrono::steady_clock::now();
  size_t bytes = 0;
  for (int i = 0; i < kIters; ++i) {
    Frames f = encode(plan);
    auto back = decode(f);
    ASSERT_TRUE(back.ok());
    bytes = f[1].size();
  }
  double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / kIters;
  std::printf("StepPlan batch 64: %zu body bytes, encode+decode %.1f us\n", bytes, us);
  EXPECT_LT(us, 2000.0);
}

// Writes the fuzz seed corpus when K2_WRITE_FUZZ_CORPUS names a directory (the checked-in
// corpus under fuzz_corpus/msgpack_frames was made this way); always checks the seeds decode.
TEST(Codec, FuzzSeedCorpus) {
  const char* dir = std::getenv("K2_WRITE_FUZZ_CORPUS");
  int i = 0;
  for (const auto& m : sample_messages()) {
    std::string seed = join_fuzz_input(encode(m, EncodeOptions{8}));
    auto frames = split_fuzz_input(reinterpret_cast<const uint8_t*>(seed.data()), seed.size());
    auto back = decode(std::span<const std::string_view>(frames));
    ASSERT_TRUE(back.ok()) << back.status().to_string();
    EXPECT_TRUE(*back == m);
    if (dir != nullptr) {
      std::ofstream(std::filesystem::path(dir) / ("seed-" + std::to_string(i) + "-" +
                                                  message_type_name(message_type(m))), std::ios::binary) << seed;
    }
    ++i;
  }
}

}  // namespace
}  // namespace k2::protocol
