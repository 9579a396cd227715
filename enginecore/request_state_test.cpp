#include "enginecore/request_state.h"

#include <gtest/gtest.h>

namespace k2::engine {
namespace {

constexpr TokenId kEos = 2;
constexpr TokenId kImEnd = 7;
constexpr TokenId kStopId = 9;

Request make_request(StopParams stop, std::vector<TokenId> prompt = {100, 101, 102}) {
  RequestParams p;
  p.request_id = "r";
  p.prompt_token_ids = std::move(prompt);
  p.stop = std::move(stop);
  return Request(std::move(p), 0);
}

StopParams default_stop() {
  StopParams s;
  s.max_tokens = 10;
  s.eos_token_ids = {kEos, kImEnd};
  s.stop_token_ids = {kStopId};
  return s;
}

FinishReason append_and_check(Request& r, TokenId t, int32_t max_model_len, std::optional<TokenId>* stop) {
  r.append_output_token(t);
  return check_stop(r, max_model_len, stop);
}

TEST(CheckStop, OrdinaryTokenContinues) {
  Request r = make_request(default_stop());
  std::optional<TokenId> stop;
  EXPECT_EQ(append_and_check(r, 50, 100, &stop), FinishReason::kNone);
  EXPECT_FALSE(stop.has_value());
}

TEST(CheckStop, PrimaryEosStopsWithoutStopToken) {
  Request r = make_request(default_stop());
  std::optional<TokenId> stop;
  EXPECT_EQ(append_and_check(r, kEos, 100, &stop), FinishReason::kStop);
  EXPECT_FALSE(stop.has_value());
}

TEST(CheckStop, SecondEosIdStopsAndIsReported) {
  Request r = make_request(default_stop());
  std::optional<TokenId> stop;
  EXPECT_EQ(append_and_check(r, kImEnd, 100, &stop), FinishReason::kStop);
  ASSERT_TRUE(stop.has_value());
  EXPECT_EQ(*stop, kImEnd);
}

TEST(CheckStop, StopTokenIdStopsAndIsReported) {
  Request r = make_request(default_stop());
  std::optional<TokenId> stop;
  EXPECT_EQ(append_and_check(r, kStopId, 100, &stop), FinishReason::kStop);
  EXPECT_EQ(stop, std::optional<TokenId>(kStopId));
}

TEST(CheckStop, IgnoreEosDisablesEveryEosIdButNotStopIds) {
  StopParams s = default_stop();
  s.ignore_eos = true;
  Request r = make_request(s);
  std::optional<TokenId> stop;
  EXPECT_EQ(append_and_check(r, kEos, 100, &stop), FinishReason::kNone);
  EXPECT_EQ(append_and_check(r, kImEnd, 100, &stop), FinishReason::kNone);
  EXPECT_EQ(append_and_check(r, kStopId, 100, &stop), FinishReason::kStop);
}

TEST(CheckStop, MinTokensSuppressesEosAndStopIds) {
  StopParams s = default_stop();
  s.min_tokens = 3;
  Request r = make_request(s);
  std::optional<TokenId> stop;
  EXPECT_EQ(append_and_check(r, kEos, 100, &stop), FinishReason::kNone);
  EXPECT_EQ(append_and_check(r, kStopId, 100, &stop), FinishReason::kNone);
  EXPECT_EQ(append_and_check(r, kEos, 100, &stop), FinishReason::kStop);  // third output
}

TEST(CheckStop, MaxTokensEndsWithLength) {
  StopParams s = default_stop();
  s.max_tokens = 2;
  Request r = make_request(s);
  std::optional<TokenId> stop;
  EXPECT_EQ(append_and_check(r, 50, 100, &stop), FinishReason::kNone);
  EXPECT_EQ(append_and_check(r, 51, 100, &stop), FinishReason::kLength);
}

TEST(CheckStop, EosOnTheLastAllowedTokenIsStopNotLength) {
  StopParams s = default_stop();
  s.max_tokens = 1;
  Request r = make_request(s);
  std::optional<TokenId> stop;
  EXPECT_EQ(append_and_check(r, kEos, 100, &stop), FinishReason::kStop);
}

TEST(CheckStop, MaxModelLenEndsWithLengthEvenBeforeMinTokens) {
  StopParams s = default_stop();
  s.min_tokens = 5;
  Request r = make_request(s);  // 3 prompt tokens
  std::optional<TokenId> stop;
  EXPECT_EQ(append_and_check(r, 50, 5, &stop), FinishReason::kNone);
  EXPECT_EQ(append_and_check(r, kEos, 5, &stop), FinishReason::kLength);
}

TEST(ValidateRequestParams, RejectsWhatCannotBeServed) {
  RequestParams p;
  p.request_id = "a";
  p.prompt_token_ids = {1, 2, 3};
  EXPECT_TRUE(validate_request_params(p, 8).ok());
  EXPECT_EQ(validate_request_params(p, 3).code(), Code::kOutOfRange);  // no room for an output
  RequestParams empty = p;
  empty.prompt_token_ids.clear();
  EXPECT_EQ(validate_request_params(empty, 8).code(), Code::kInvalidArgument);
  RequestParams no_id = p;
  no_id.request_id.clear();
  EXPECT_FALSE(validate_request_params(no_id, 8).ok());
  RequestParams zero_max = p;
  zero_max.stop.max_tokens = 0;
  EXPECT_FALSE(validate_request_params(zero_max, 8).ok());
  RequestParams min_over_max = p;
  min_over_max.stop.min_tokens = 20;
  EXPECT_FALSE(validate_request_params(min_over_max, 8).ok());
  RequestParams negative = p;
  negative.prompt_token_ids[1] = -4;
  EXPECT_FALSE(validate_request_params(negative, 8).ok());
}

TEST(FinishReasonName, MatchesOpenAi) {
  EXPECT_STREQ(finish_reason_name(FinishReason::kStop), "stop");
  EXPECT_STREQ(finish_reason_name(FinishReason::kLength), "length");
  EXPECT_STREQ(finish_reason_name(FinishReason::kAbort), "abort");
}

}  // namespace
}  // namespace k2::engine
