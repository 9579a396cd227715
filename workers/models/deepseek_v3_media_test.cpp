// The media embedding override of DeepSeekV3::forward (SequenceChunk::media_rows): rows
// replace the placeholder tokens' embeddings, in order, chunk by chunk; anything but one row
// per placeholder is an error; a text prompt is untouched.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "workers/models/deepseek_v3.h"

namespace k2 {
namespace {

const std::filesystem::path kMicro = std::filesystem::path(K2_TEST_DATA_DIR) / "models" / "micro-bf16";

class MediaRowsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ModelConfig config = ModelConfig::from_dir(kMicro).value();
    ASSERT_FALSE(config.media_placeholder_token_id.has_value()) << "micro-bf16 is a text model";
    Checkpoint checkpoint = Checkpoint::open(kMicro, config).value();
    auto text = DeepSeekV3::load(checkpoint, config, ProgressStyle::kQuiet);
    ASSERT_TRUE(text.ok()) << text.status().to_string();
    text_model_ = std::move(text).value().release();
    // The same weights with a placeholder id no prompt() token uses.
    config.media_placeholder_token_id = static_cast<int32_t>(config.vocab_size - 1);
    auto mm = DeepSeekV3::load(checkpoint, config, ProgressStyle::kQuiet);
    ASSERT_TRUE(mm.ok()) << mm.status().to_string();
    model_ = std::move(mm).value().release();
  }
  static void TearDownTestSuite() {
    delete model_;
    delete text_model_;
  }

  static int32_t pad() { return *model_->config().media_placeholder_token_id; }
  static int64_t hidden() { return model_->config().hidden_size; }

  LatentKvCache make_cache() const {
    return LatentKvCache::create(model_->config().num_hidden_layers, 16, 4, model_->cache_row_dim()).value();
  }
  // Text tokens, with the placeholder at `pads`.
  std::vector<int32_t> prompt(int64_t n, std::vector<int64_t> pads) const {
    std::vector<int32_t> p;
    const int64_t text_ids = model_->config().vocab_size - 256;
    for (int64_t i = 0; i < n; ++i) p.push_back(static_cast<int32_t>((i * 37 + 5) % text_ids));
    for (int64_t i : pads) p[static_cast<size_t>(i)] = pad();
    return p;
  }
  // Encoder-like rows of unit scale, unlike any embedding row.
  static std::vector<float> media(int64_t n, int salt = 0) {
    std::vector<float> r(static_cast<size_t>(n * hidden()));
    for (size_t i = 0; i < r.size(); ++i) r[i] = std::sin(0.37f * static_cast<float>(i) + static_cast<float>(salt));
    return r;
  }
  static Result<Logits> run(const DeepSeekV3& m, LatentKvCache& cache, std::vector<SequenceChunk> seqs,
                            ForwardTrace* trace = nullptr) {
    return m.forward(ForwardBatch{std::move(seqs), LogitRows::kAll}, cache, trace);
  }
  static double max_diff(const float* a, const float* b, int64_t n) {
    double d = 0;
    for (int64_t i = 0; i < n; ++i) d = std::max(d, std::fabs(double(a[i]) - b[i]));
    return d;
  }

  static DeepSeekV3* model_;       // placeholder = vocab - 1
  static DeepSeekV3* text_model_;  // same weights, no placeholder id
};
DeepSeekV3* MediaRowsTest::model_ = nullptr;
DeepSeekV3* MediaRowsTest::text_model_ = nullptr;

TEST_F(MediaRowsTest, RowsReplaceThePlaceholderEmbeddingsInOrder) {
  const auto p = prompt(8, {2, 3, 6});
  const auto rows = media(3);
  const std::vector<int32_t> table = {0, 1};
  const int64_t d = hidden(), v = model_->config().vocab_size;
  LatentKvCache c1 = make_cache(), c2 = make_cache();
  ForwardTrace plain, mm;
  auto a = run(*model_, c1, {{p, 0, table}}, &plain);  // a text chunk: the placeholder embeds as itself
  auto b = run(*model_, c2, {{p, 0, table, rows}}, &mm);
  ASSERT_TRUE(a.ok() && b.ok()) << b.status().to_string();
  int64_t next = 0;
  for (int64_t i = 0; i < 8; ++i) {
    const float* got = mm.embed.data() + i * d;
    if (p[i] == pad()) {
      EXPECT_EQ(max_diff(got, rows.data() + (next++) * d, d), 0.0) << "position " << i;
    } else {
      EXPECT_EQ(max_diff(got, plain.embed.data() + i * d, d), 0.0) << "position " << i;
    }
  }
  EXPECT_EQ(max_diff(a->data.data(), b->data.data(), 2 * v), 0.0);  // causal: before the first row
  EXPECT_GT(max_diff(a->row(7), b->row(7), v), 1e-3);               // after it, the rows matter
}

TEST_F(MediaRowsTest, TextOnlyPromptIsUnchanged) {
  const auto p = prompt(7, {});
  const std::vector<int32_t> table = {0, 1};
  LatentKvCache c1 = make_cache(), c2 = make_cache(), c3 = make_cache();
  auto plain = run(*text_model_, c1, {{p, 0, table}});
  auto text_chunk = run(*model_, c2, {{p, 0, table}});
  auto no_rows = run(*model_, c3, {{p, 0, table, std::span<const float>()}});  // multimodal, no media here
  ASSERT_TRUE(plain.ok() && text_chunk.ok() && no_rows.ok()) << no_rows.status().to_string();
  EXPECT_EQ(plain->data, text_chunk->data);
  EXPECT_EQ(plain->data, no_rows->data);
}

TEST_F(MediaRowsTest, RowsNotOnePerPlaceholderAreErrors) {
  const auto p = prompt(8, {2, 3, 6});
  const std::vector<int32_t> table = {0, 1};
  const auto two = media(2), four = media(4), three = media(3);
  const std::span<const float> short_row = std::span<const float>(three).first(three.size() - 1);
  LatentKvCache cache = make_cache();
  for (std::span<const float> rows : {std::span<const float>(two), std::span<const float>(four), short_row,
                                      std::span<const float>()}) {
    auto r = run(*model_, cache, {{p, 0, table, rows}});
    ASSERT_FALSE(r.ok()) << rows.size() << " floats for 3 placeholders";
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
  }
  // A bad second sequence fails the batch; rows for a model without a placeholder id too.
  const auto q = prompt(3, {});
  const std::vector<int32_t> table2 = {2};
  EXPECT_FALSE(run(*model_, cache, {{q, 0, table2}, {p, 0, table, two}}).ok());
  auto no_id = run(*text_model_, cache, {{p, 0, table, three}});
  ASSERT_FALSE(no_id.ok());
  EXPECT_NE(no_id.status().message().find("media_placeholder_token_id"), std::string::npos);
  EXPECT_TRUE(run(*model_, cache, {{p, 0, table, three}}).ok());
}

TEST_F(MediaRowsTest, ChunkedPrefillGivesEachChunkItsSlice) {
  const auto p = prompt(11, {3, 4, 5, 6, 9});
  const auto rows = media(5);
  const std::vector<int32_t> table = {4, 0, 7};
  const int64_t v = model_->config().vocab_size;
  LatentKvCache full_cache = make_cache(), cache = make_cache();
  auto full = run(*model_, full_cache, {{p, 0, table, rows}});
  ASSERT_TRUE(full.ok()) << full.status().to_string();
  const std::pair<size_t, size_t> chunks[] = {{0, 4}, {4, 5}, {5, 8}, {8, 11}};  // cut inside the image
  const std::span<const int32_t> s(p);
  for (const auto& [a, b] : chunks) {
    const std::span<const float> slice = media_rows_for_chunk(p, pad(), rows, hidden(), a, b);
    auto part = run(*model_, cache, {{s.subspan(a, b - a), static_cast<int64_t>(a), table, slice}});
    ASSERT_TRUE(part.ok()) << part.status().to_string();
    EXPECT_LE(max_diff(part->data.data(), full->row(static_cast<int64_t>(a)), static_cast<int64_t>(b - a) * v), 1e-4)
        << "chunk [" << a << ", " << b << ")";
  }
  EXPECT_EQ(media_rows_for_chunk(p, pad(), rows, hidden(), 4, 5).data(), rows.data() + hidden());
  EXPECT_TRUE(media_rows_for_chunk(p, pad(), rows, hidden(), 7, 9).empty());
  EXPECT_EQ(media_rows_for_chunk(p, pad(), rows, hidden(), 7, 11).size(), static_cast<size_t>(hidden()));
  // Too few rows for the prompt: the slice comes up short and forward() says so.
  const std::span<const float> four(rows.data(), 4 * static_cast<size_t>(hidden()));
  EXPECT_TRUE(media_rows_for_chunk(p, pad(), four, hidden(), 8, 11).empty());
  const std::span<const float> short_slice = media_rows_for_chunk(p, pad(), four, hidden(), 8, 11);
  EXPECT_FALSE(run(*model_, cache, {{s.subspan(8, 3), 8, table, short_slice}}).ok());
}

TEST_F(MediaRowsTest, VarlenBatchKeepsEachSequencesRows) {
  const auto a = prompt(6, {1, 2}), b = prompt(5, {4});
  const auto ra = media(2, 1), rb = media(1, 2);
  const std::vector<int32_t> ta = {0, 1}, tb = {2, 3}, tc = {4, 5}, td = {6, 7};
  const int64_t v = model_->config().vocab_size;
  LatentKvCache c1 = make_cache(), c2 = make_cache();
  auto single_a = run(*model_, c1, {{a, 0, ta, ra}});
  auto single_b = run(*model_, c1, {{b, 0, tb, rb}});
  auto batch = run(*model_, c2, {{b, 0, tc, rb}, {a, 0, td, ra}});
  ASSERT_TRUE(single_a.ok() && single_b.ok() && batch.ok()) << batch.status().to_string();
  EXPECT_LE(max_diff(batch->data.data(), single_b->data.data(), 5 * v), 1e-6);
  EXPECT_LE(max_diff(batch->row(5), single_a->data.data(), 6 * v), 1e-6);
}

}  // namespace
}  // namespace k2
