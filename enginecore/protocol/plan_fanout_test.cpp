#include "enginecore/protocol/plan_fanout.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <thread>

namespace k2::protocol {
namespace {

using namespace std::chrono_literals;

std::vector<std::byte> bytes_of(const std::string& s) {
  std::vector<std::byte> out(s.size());
  if (!s.empty()) std::memcpy(out.data(), s.data(), s.size());
  return out;
}

std::string text_of(std::span<const std::byte> b) { return std::string(reinterpret_cast<const char*>(b.data()), b.size()); }
std::string text_of(const FanoutPlan& p) { return text_of(p.plan); }

std::vector<std::byte> float_bytes(const std::vector<float>& v) {
  const auto b = std::as_bytes(std::span<const float>(v));
  return std::vector<std::byte>(b.begin(), b.end());
}

// A kind-4 frame: plan "head"+"tail", two items.
std::vector<std::byte> media_frame(const std::vector<std::byte>& a, const std::vector<std::byte>& b) {
  const std::vector<std::byte> head = bytes_of("head"), tail = bytes_of("tail");
  const std::span<const std::byte> parts[2] = {head, tail};
  const FanoutMedia media[2] = {{1, 2, a}, {3, 4, b}};
  return encode_fanout_plan(7, parts, media);
}

Status publish_text(PlanFanout& fanout, const std::string& head, const std::string& tail) {
  const std::vector<std::byte> a = bytes_of(head), b = bytes_of(tail);
  const std::span<const std::byte> parts[2] = {a, b};
  return fanout.publish(parts);
}

class PlanFanoutTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto sec = ControlPlaneSecurity::load("");
    ASSERT_TRUE(sec.ok());
    security_ = std::move(*sec);
    auto fanout = PlanFanout::bind(context_, *security_, "127.0.0.1");
    ASSERT_TRUE(fanout.ok()) << fanout.status().to_string();
    fanout_.emplace(std::move(*fanout));
  }
  PlanSubscriber subscribe() {
    auto sub = PlanSubscriber::connect(context_, *security_, fanout_->endpoint());
    EXPECT_TRUE(sub.ok()) << sub.status().to_string();
    return std::move(*sub);
  }

  zmq::context_t context_{1};
  std::unique_ptr<ControlPlaneSecurity> security_;
  std::optional<PlanFanout> fanout_;
};

TEST(PlanFanoutWire, HeaderRoundTripsAndBadFramesAreErrors) {
  std::vector<std::byte> frame = encode_fanout_header(FanoutKind::kPlan, 0x0102030405060708ULL);
  frame.push_back(std::byte{42});
  auto decoded = decode_fanout(frame);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(decoded->kind, FanoutKind::kPlan);
  EXPECT_EQ(decoded->sequence, 0x0102030405060708ULL);
  ASSERT_EQ(decoded->payload.size(), 1u);
  EXPECT_EQ(decoded->payload[0], std::byte{42});

  EXPECT_EQ(decode_fanout(std::span<const std::byte>(frame.data(), 15)).status().code(), Code::kCorrupt);
  auto bad_magic = frame;
  bad_magic[0] = std::byte{'X'};
  EXPECT_EQ(decode_fanout(bad_magic).status().code(), Code::kCorrupt);
  auto bad_kind = frame;
  bad_kind[4] = std::byte{9};
  EXPECT_EQ(decode_fanout(bad_kind).status().code(), Code::kCorrupt);
  auto reserved = frame;
  reserved[6] = std::byte{1};
  EXPECT_EQ(decode_fanout(reserved).status().code(), Code::kCorrupt);
  auto beat = encode_fanout_header(FanoutKind::kHeartbeat, 3);
  EXPECT_TRUE(decode_fanout(beat).ok());
  beat.push_back(std::byte{0});
  EXPECT_EQ(decode_fanout(beat).status().code(), Code::kCorrupt);
}

TEST(PlanFanoutWire, MediaSectionRoundTrips) {
  const std::vector<std::byte> a = float_bytes({0.5f, -1.0f, 2.0f}), b = float_bytes({3.25f});
  const std::vector<std::byte> frame = media_frame(a, b);
  ASSERT_EQ(frame.size(), kFanoutHeaderBytes + 8 + 8 + 8 + 2 * 24 + a.size() + b.size());
  auto decoded = decode_fanout(frame);
  ASSERT_TRUE(decoded.ok()) << decoded.status().to_string();
  EXPECT_EQ(decoded->kind, FanoutKind::kPlanWithMedia);
  EXPECT_EQ(decoded->sequence, 7u);
  EXPECT_EQ(text_of(decoded->payload), "headtail");
  ASSERT_EQ(decoded->media.size(), 2u);
  EXPECT_EQ(decoded->media[0].hash_low, 1u);
  EXPECT_EQ(decoded->media[0].hash_high, 2u);
  EXPECT_TRUE(std::ranges::equal(decoded->media[0].bytes, a));
  EXPECT_EQ(decoded->media[1].hash_low, 3u);
  EXPECT_TRUE(std::ranges::equal(decoded->media[1].bytes, b));
  // Without media the frame stays kind 1, the plan right after the header.
  const std::vector<std::byte> plan = bytes_of("p");
  const std::span<const std::byte> parts[1] = {plan};
  auto plain = decode_fanout(encode_fanout_plan(0, parts, {}));
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->kind, FanoutKind::kPlan);
  EXPECT_TRUE(plain->media.empty());
}

TEST(PlanFanoutWire, TruncatedOrCorruptMediaSectionsAreErrors) {
  const std::vector<std::byte> a = float_bytes({0.5f, -1.0f}), b = float_bytes({3.25f});
  const std::vector<std::byte> frame = media_frame(a, b);
  for (size_t n = kFanoutHeaderBytes; n < frame.size(); ++n)
    EXPECT_EQ(decode_fanout(std::span<const std::byte>(frame.data(), n)).status().code(), Code::kCorrupt) << n;
  auto trailing = frame;
  trailing.push_back(std::byte{0});
  EXPECT_EQ(decode_fanout(trailing).status().code(), Code::kCorrupt);
  auto with = [&](size_t at, std::byte v) {
    auto f = frame;
    f[at] = v;
    return decode_fanout(f).status();
  };
  const size_t plan_len = kFanoutHeaderBytes, count = plan_len + 8 + 8, item0 = count + 8;
  EXPECT_EQ(with(plan_len + 7, std::byte{0x80}).code(), Code::kCorrupt);  // plan length past the frame
  EXPECT_EQ(with(count, std::byte{0}).code(), Code::kCorrupt);            // no items
  EXPECT_EQ(with(count, std::byte{0xff}).code(), Code::kCorrupt);         // more items than fit
  EXPECT_EQ(with(count + 5, std::byte{1}).code(), Code::kCorrupt);        // reserved bytes
  EXPECT_EQ(with(item0 + 16, std::byte{7}).code(), Code::kCorrupt);       // not whole floats
  EXPECT_EQ(with(item0 + 23, std::byte{0x10}).code(), Code::kCorrupt);    // bytes past the frame
  const std::vector<std::byte> same = media_frame(a, b);
  auto twice = same;
  twice[item0 + 24 + a.size()] = std::byte{1};  // item 1's hash = item 0's
  twice[item0 + 24 + a.size() + 8] = std::byte{2};
  EXPECT_EQ(decode_fanout(twice).status().code(), Code::kCorrupt);
  auto media_on_beat = encode_fanout_header(FanoutKind::kHeartbeat, 1);
  media_on_beat.insert(media_on_beat.end(), frame.begin() + kFanoutHeaderBytes, frame.end());
  EXPECT_EQ(decode_fanout(media_on_beat).status().code(), Code::kCorrupt);
}

TEST_F(PlanFanoutTest, ShippedPixelsReachTheReaderWithTheirPlan) {
  PlanSubscriber sub = subscribe();
  ASSERT_TRUE(fanout_->wait_for_readers(1, 5s).ok());
  const std::vector<float> pixels = {1.5f, -2.0f, 0.25f, 8.0f};
  const std::vector<std::byte> bytes = float_bytes(pixels), plan = bytes_of("plan");
  const std::span<const std::byte> parts[1] = {plan};
  const FanoutMedia media[1] = {{11, 22, bytes}};
  ASSERT_TRUE(fanout_->publish(parts, media).ok());
  ASSERT_TRUE(publish_text(*fanout_, "next", "").ok());
  auto got = sub.next(5s);
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  EXPECT_EQ(text_of(*got), "plan");
  ASSERT_EQ(got->media.size(), 1u);
  const MediaPixels* p = find_pixels(got->media, 11, 22);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->values, pixels);
  EXPECT_EQ(find_pixels(got->media, 22, 11), nullptr);
  auto next = sub.next(5s);
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(text_of(*next), "next");
  EXPECT_TRUE(next->media.empty()) << "a plan's pixels do not outlive it";
}

TEST_F(PlanFanoutTest, EveryReaderGetsEveryPlanInOrder) {
  PlanSubscriber a = subscribe(), b = subscribe();
  ASSERT_TRUE(fanout_->wait_for_readers(2, 5s).ok());
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(publish_text(*fanout_, "plan-", std::to_string(i)).ok());
  for (PlanSubscriber* sub : {&a, &b}) {
    for (int i = 0; i < 50; ++i) {
      auto got = sub->next(5s);
      ASSERT_TRUE(got.ok()) << got.status().to_string();
      EXPECT_EQ(text_of(*got), "plan-" + std::to_string(i));
    }
    EXPECT_EQ(sub->received(), 50u);
  }
}

TEST_F(PlanFanoutTest, WaitForReadersTimesOutWithoutThem) {
  PlanSubscriber a = subscribe();
  const Status s = fanout_->wait_for_readers(2, 300ms);
  EXPECT_EQ(s.code(), Code::kUnavailable);
  EXPECT_NE(s.message().find("only 1 of 2"), std::string::npos) << s.message();
}

// A reader that does not read while many large plans go out loses none of them.
TEST_F(PlanFanoutTest, SlowReaderLosesNothing) {
  PlanSubscriber fast = subscribe(), slow = subscribe();
  ASSERT_TRUE(fanout_->wait_for_readers(2, 5s).ok());
  const std::string big(256 * 1024, 'x');
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(publish_text(*fanout_, std::to_string(i) + ":", big).ok());
  for (int i = 0; i < 200; ++i) ASSERT_TRUE(fast.next(5s).ok());
  std::this_thread::sleep_for(200ms);
  for (int i = 0; i < 200; ++i) {
    auto got = slow.next(5s);
    ASSERT_TRUE(got.ok()) << i << ": " << got.status().to_string();
    EXPECT_EQ(text_of(*got).substr(0, text_of(*got).find(':')), std::to_string(i));
  }
}

// A reader whose connection dropped (a new subscription) must not silently skip plans.
TEST_F(PlanFanoutTest, ReaderThatMissedPlansFails) {
  {
    PlanSubscriber first = subscribe();
    ASSERT_TRUE(fanout_->wait_for_readers(1, 5s).ok());
    ASSERT_TRUE(publish_text(*fanout_, "a", "").ok());
    ASSERT_TRUE(first.next(5s).ok());
  }  // dropped
  PlanSubscriber again = subscribe();
  ASSERT_TRUE(fanout_->wait_for_readers(2, 5s).ok());
  ASSERT_TRUE(publish_text(*fanout_, "b", "").ok());
  auto got = again.next(5s);
  EXPECT_EQ(got.status().code(), Code::kCorrupt);
  EXPECT_NE(got.status().message().find("expected plan 0"), std::string::npos) << got.status().message();
}

TEST_F(PlanFanoutTest, HeartbeatsAreSilentAndCloseEndsTheStream) {
  PlanSubscriber sub = subscribe();
  ASSERT_TRUE(fanout_->wait_for_readers(1, 5s).ok());
  ASSERT_TRUE(fanout_->heartbeat_if_due().ok());  // none due yet or one: both are fine
  std::this_thread::sleep_for(kFanoutHeartbeatInterval + 50ms);
  ASSERT_TRUE(fanout_->heartbeat_if_due().ok());
  auto idle = sub.next(300ms);
  EXPECT_EQ(idle.status().code(), Code::kUnavailable);
  EXPECT_TRUE(idle.status().message().ends_with("timed out")) << idle.status().message();
  ASSERT_TRUE(publish_text(*fanout_, "p", "").ok());
  fanout_->close();
  auto plan = sub.next(5s);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(text_of(*plan), "p");
  auto closed = sub.next(5s);
  EXPECT_EQ(closed.status().code(), Code::kUnavailable);
  EXPECT_TRUE(closed.status().message().ends_with(" closed")) << closed.status().message();
}

}  // namespace
}  // namespace k2::protocol
