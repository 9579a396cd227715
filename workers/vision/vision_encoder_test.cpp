#include "workers/vision/vision_encoder.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>
#include <thread>

#include "workers/parallel/thread_group_communicator.h"

namespace k2 {
namespace {

const std::filesystem::path kSet = std::filesystem::path(K2_TEST_DATA_DIR) / "models" / "tiny-k25-vision";

struct Items {
  std::vector<std::vector<float>> pixels;
  std::vector<MediaInput> inputs;
};

// Random pixels for each grid (values in [-1, 1], as normalised images are).
Items make_items(const VisionConfig& c, const std::vector<MediaGrid>& grids) {
  Items items;
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (const MediaGrid& g : grids) {
    std::vector<float> p(static_cast<size_t>(g.patches() * c.patch_values()));
    for (float& v : p) v = u(rng);
    items.pixels.push_back(std::move(p));
  }
  for (size_t i = 0; i < grids.size(); ++i) items.inputs.push_back(MediaInput{grids[i], items.pixels[i]});
  return items;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0.0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::fabs(double{a[i]} - b[i]));
  return d;
}

// Runs `ranks` encoders (one thread each) over the same items.
std::vector<Result<std::vector<MediaEmbedding>>> run_group(const VisionConfig& c, EncoderTpMode mode, int ranks,
                                                          const Items& items, std::vector<uint64_t>* local = nullptr) {
  auto comms = ThreadGroupCommunicator::create(ranks);
  std::vector<std::unique_ptr<MoonVit>> models;
  for (int r = 0; r < ranks; ++r) {
    const Shard shard = mode == EncoderTpMode::kWeights ? Shard{r, ranks} : Shard{};
    models.push_back(MoonVit::load_dummy(c, 3, shard, comms[static_cast<size_t>(r)].get()).value());
  }
  std::vector<Result<std::vector<MediaEmbedding>>> out(static_cast<size_t>(ranks), internal_error("not run"));
  if (local != nullptr) local->assign(static_cast<size_t>(ranks), 0);
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r) {
    threads.emplace_back([&, r] {
      VisionEncoder encoder(*models[static_cast<size_t>(r)], mode, comms[static_cast<size_t>(r)].get());
      out[static_cast<size_t>(r)] = encoder.encode(items.inputs);
      if (local != nullptr) (*local)[static_cast<size_t>(r)] = encoder.num_encoded_locally();
    });
  }
  for (auto& t : threads) t.join();
  return out;
}

class VisionEncoderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = VisionConfig::from_dir(kSet).value();
    // Uneven work: three items of different sizes, one a video chunk.
    items_ = make_items(config_, {{1, 4, 6}, {1, 8, 8}, {3, 4, 4}});
    std::unique_ptr<MoonVit> whole = MoonVit::load_dummy(config_, 3).value();
    VisionEncoder encoder(*whole, EncoderTpMode::kWeights, nullptr);
    reference_ = encoder.encode(items_.inputs).value();
  }
  VisionConfig config_;
  Items items_;
  std::vector<MediaEmbedding> reference_;
};

TEST_F(VisionEncoderTest, DataModeGathersEveryItemBitForBitOnEveryRank) {
  std::vector<uint64_t> local;
  auto runs = run_group(config_, EncoderTpMode::kData, 2, items_, &local);
  for (int r = 0; r < 2; ++r) {
    ASSERT_TRUE(runs[static_cast<size_t>(r)].ok()) << runs[static_cast<size_t>(r)].status().to_string();
    const auto& got = runs[static_cast<size_t>(r)].value();
    ASSERT_EQ(got.size(), reference_.size());
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].tokens, reference_[i].tokens);
      EXPECT_TRUE(same_bits(got[i].data, reference_[i].data)) << "rank " << r << " item " << i;
    }
  }
  EXPECT_EQ(local[0] + local[1], 3u);  // each item encoded once in the group
  EXPECT_GE(local[0], 1u);
  EXPECT_GE(local[1], 1u);
}

TEST_F(VisionEncoderTest, DataModeWithFewerItemsThanRanks) {
  Items one = make_items(config_, {{1, 4, 6}});
  std::vector<uint64_t> local;
  auto runs = run_group(config_, EncoderTpMode::kData, 3, one, &local);
  for (const auto& run : runs) {
    ASSERT_TRUE(run.ok()) << run.status().to_string();
    ASSERT_EQ(run->size(), 1u);
    EXPECT_TRUE(same_bits(run->at(0).data, reference_[0].data));
  }
  EXPECT_EQ(local, (std::vector<uint64_t>{1, 0, 0}));
}

TEST_F(VisionEncoderTest, WeightsModeMatchesTheWholeTowerAndRanksAgree) {
  auto runs = run_group(config_, EncoderTpMode::kWeights, 2, items_);
  for (const auto& run : runs) ASSERT_TRUE(run.ok()) << run.status().to_string();
  for (size_t i = 0; i < reference_.size(); ++i) {
    EXPECT_TRUE(same_bits(runs[0]->at(i).data, runs[1]->at(i).data)) << "item " << i;
    EXPECT_LT(max_abs_diff(runs[0]->at(i).data, reference_[i].data), 2e-5) << "item " << i;
  }
}

TEST_F(VisionEncoderTest, BadItemIsAnErrorOnEveryRankWithoutHanging) {
  Items bad = make_items(config_, {{1, 4, 6}, {1, 3, 4}});  // 3 rows: not a multiple of the merge kernel
  for (EncoderTpMode mode : {EncoderTpMode::kData, EncoderTpMode::kWeights}) {
    auto runs = run_group(config_, mode, 2, bad);
    for (const auto& run : runs) EXPECT_EQ(run.status().code(), Code::kInvalidArgument);
  }
}

TEST_F(VisionEncoderTest, ModeAndModelMustAgree) {
  auto comms = ThreadGroupCommunicator::create(2);
  std::unique_ptr<MoonVit> shard = MoonVit::load_dummy(config_, 3, Shard{0, 2}, comms[0].get()).value();
  VisionEncoder data(*shard, EncoderTpMode::kData, comms[0].get());
  EXPECT_EQ(data.encode(items_.inputs).status().code(), Code::kInvalidArgument);
  std::unique_ptr<MoonVit> whole = MoonVit::load_dummy(config_, 3).value();
  VisionEncoder weights(*whole, EncoderTpMode::kWeights, comms[0].get());
  EXPECT_EQ(weights.encode(items_.inputs).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(MoonVit::load_dummy(config_, 3, Shard{0, 3}, comms[0].get()).status().code(),
            Code::kInvalidArgument);  // 4 heads do not split over 3
}

TEST(AssignMedia, LargestFirstOntoTheLeastLoadedRank) {
  VisionConfig c;
  c.hidden_size = 8;
  c.intermediate_size = 16;
  const std::vector<MediaGrid> grids = {{1, 2, 2}, {1, 8, 8}, {1, 2, 2}, {1, 4, 4}, {1, 2, 2}};
  EXPECT_EQ(assign_media(c, grids, 2), (std::vector<int>{1, 0, 1, 1, 1}));
  EXPECT_EQ(assign_media(c, grids, 1), (std::vector<int>(5, 0)));
  EXPECT_EQ(assign_media(c, {}, 2), std::vector<int>{});
}

TEST(EncoderTpModeNames, ParseBothAndRejectOthers) {
  EXPECT_EQ(parse_encoder_tp_mode("data").value(), EncoderTpMode::kData);
  EXPECT_EQ(parse_encoder_tp_mode("weights").value(), EncoderTpMode::kWeights);
  EXPECT_FALSE(parse_encoder_tp_mode("Data").ok());
  EXPECT_STREQ(encoder_tp_mode_name(EncoderTpMode::kData), "data");
}

}  // namespace
}  // namespace k2
