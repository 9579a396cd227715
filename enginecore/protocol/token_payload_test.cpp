#include "enginecore/protocol/token_payload.h"

#include <numeric>

#include <gtest/gtest.h>

#include "enginecore/protocol/codec.h"

namespace k2::protocol {
namespace {

TEST(TokenPayload, VocabularyRoundTripsThroughAnArenaAndBadBlobsAreErrors) {
  auto arena = Arena::create(ArenaOptions{make_run_id(), "vocab", 6, 1 << 20, -1});
  ASSERT_TRUE(arena.ok());
  const std::vector<std::string> vocab = {"a", "", std::string("\xe4\xb8", 2), std::string(1, '\0'), " the"};
  auto handle = store_vocabulary(vocab, *arena);
  ASSERT_TRUE(handle.ok()) << handle.status().to_string();
  auto back = read_vocabulary(*handle, *arena);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(*back, vocab);
  // Bytes that are not an array of bin: an error naming the problem.
  const std::string not_bin = "\x92\x01\x02";  // [1, 2]
  auto bad = arena->store(std::as_bytes(std::span<const char>(not_bin.data(), not_bin.size())));
  ASSERT_TRUE(bad.ok());
  auto refused = read_vocabulary(*bad, *arena);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("not bytes"), std::string::npos);
  ASSERT_TRUE(arena->free(*handle).ok());
  EXPECT_FALSE(read_vocabulary(*handle, *arena).ok());  // stale handle
  // A header claiming 2^32 entries in a few bytes is an error, not a 128 GB allocation
  // (found by fuzz_vocabulary).
  const std::string huge = "\xdf\x93\xc4\x93\x00\x07\x00\x07\x00\x0a\xd4";
  EXPECT_FALSE(decode_vocabulary(huge).ok());
  EXPECT_FALSE(decode_vocabulary("\xdd\xff\xff\xff\xff").ok());
}

TEST(TokenPayload, SmallInlineLargeInArenaThroughTheCodec) {
  auto arena = Arena::create(ArenaOptions{make_run_id(), "prompts", 5, 1 << 20, -1});
  ASSERT_TRUE(arena.ok());
  std::vector<int32_t> small{1, 2, 3};
  std::vector<int32_t> large(5000);
  std::iota(large.begin(), large.end(), 100);

  auto s = place_tokens(small, &*arena);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->location, DataLocation::kInline);
  auto l = place_tokens(large, &*arena);
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->location, DataLocation::kShm);
  EXPECT_EQ(l->handle.arena_id, 5u);

  AddRequest add{"r", *l, SamplingParams{}, 0, 0, 0, {}, {}, std::nullopt, {}};
  Frames frames = encode(add);
  EXPECT_LT(frames[1].size(), 200u) << "the prompt does not ride in the message";
  auto decoded = decode(frames);
  ASSERT_TRUE(decoded.ok());
  auto peer = Arena::open(arena->name());
  ASSERT_TRUE(peer.ok());
  auto ids = read_tokens(std::get<AddRequest>(*decoded).prompt, &*peer);
  ASSERT_TRUE(ids.ok()) << ids.status().to_string();
  EXPECT_EQ(*ids, large);
  EXPECT_EQ(*read_tokens(*s, nullptr), small);
  EXPECT_FALSE(read_tokens(*l, nullptr).ok());

  // Once freed, the handle is stale: an error, not the next prompt's tokens.
  ASSERT_TRUE(arena->free(l->handle).ok());
  auto other = place_tokens(std::vector<int32_t>(5000, 7), &*arena);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->handle.offset, l->handle.offset);
  EXPECT_FALSE(read_tokens(*l, &*peer).ok());
}

}  // namespace
}  // namespace k2::protocol
