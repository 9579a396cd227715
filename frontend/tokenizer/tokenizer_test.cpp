#include "frontend/tokenizer/tokenizer.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>

#include "frontend/tokenizer/encode_cuts.h"
#include "frontend/tokenizer/tokenizer_test_util.h"
#include "frontend/tokenizer/utf8.h"

namespace k2 {
namespace {

using nlohmann::json;
using tok_test::data_path;
using tok_test::ids_of;
using tok_test::read_jsonl;
using tok_test::read_text;

TEST(TokenizerGolden, EveryLineOfEveryTokenizer) {
  for (const auto& [dir, golden] : tok_test::tokenizer_dirs()) {
    SCOPED_TRACE(dir);
    auto t = tok_test::load_or_die(dir);
    ASSERT_TRUE(t);
    const auto rows = read_jsonl(golden);
    ASSERT_EQ(rows.size(), 165u);
    for (const json& row : rows) {
      const std::string text = row["text"];
      SCOPED_TRACE(text.substr(0, 60));
      const auto ids = ids_of(row["ids"]);
      const auto ordinary = ids_of(row["ids_ordinary"]);
      EXPECT_EQ(t->encode(text), ids);
      EXPECT_EQ(t->encode_ordinary(text), ordinary);
      EXPECT_EQ(t->encode(text, /*allow_special_tokens=*/false), ordinary);  // no cuts apply
      EXPECT_EQ(*t->decode(ids), text);
      EXPECT_EQ(*t->decode(ordinary), text);
      EXPECT_EQ(*t->decode_bytes(ids), text);
    }
  }
}

TEST(TokenizerGolden, ChatTemplateAndParserIdsWithTok1024) {
  auto t = tok_test::load_or_die(data_path("text/tok-1024"));
  ASSERT_TRUE(t);
  int checked = 0;
  for (const json& row : read_jsonl(data_path("text/goldens/chat_template_cases.jsonl"))) {
    if (row["rendered"].is_null()) continue;
    EXPECT_EQ(t->encode(row["rendered"].get<std::string>()), ids_of(row["ids"])) << row["case"];
    ++checked;
  }
  for (const json& row : read_jsonl(data_path("text/goldens/tool_parser_cases.jsonl"))) {
    EXPECT_EQ(t->encode(row["model_output"].get<std::string>()), ids_of(row["ids"])) << row["id"];
    ++checked;
  }
  EXPECT_EQ(checked, 130 + 46);
}

TEST(TokenizerMetadata, MatchesSpecialTokensJson) {
  for (const auto& [dir, golden] : tok_test::tokenizer_dirs()) {
    SCOPED_TRACE(dir);
    auto t = tok_test::load_or_die(dir);
    ASSERT_TRUE(t);
    const json spec = json::parse(read_text(dir + "/special_tokens.json"));
    EXPECT_EQ(t->num_base_tokens(), spec["num_base_tokens"].get<int32_t>());
    EXPECT_EQ(t->vocab_size(), spec["vocab_size"].get<int32_t>());
    EXPECT_EQ(t->bos_token_id(), spec["bos_token_id"].get<int32_t>());
    EXPECT_EQ(t->eos_token_id(), spec["eos_token_id"].get<int32_t>());
    EXPECT_EQ(t->unk_token_id(), spec["unk_token_id"].get<int32_t>());
    EXPECT_EQ(t->pad_token_id(), spec["pad_token_id"].get<int32_t>());
    EXPECT_EQ(t->special_token_id("<|im_end|>"), spec["im_end_token_id"].get<int32_t>());
    ASSERT_EQ(t->special_tokens().size(), spec["tokens"].size());
    for (size_t i = 0; i < spec["tokens"].size(); ++i) {
      const json& s = spec["tokens"][i];
      const int32_t id = s["id"];
      const SpecialToken& mine = t->special_tokens()[i];
      EXPECT_EQ(mine.id, id);
      EXPECT_EQ(mine.content, s["content"].get<std::string>());
      EXPECT_EQ(mine.named, s["named"].get<bool>());
      EXPECT_EQ(mine.special, s["special"].get<bool>());
      EXPECT_EQ(t->is_special(id), s["special"].get<bool>()) << id;
      EXPECT_TRUE(t->is_special_slot(id));
      EXPECT_EQ(t->special_token_id(mine.content), id);
      EXPECT_EQ(t->token_id(mine.content), id);
      EXPECT_EQ(t->token_bytes(id), mine.content);
      // Every special name, named or reserved, encodes to its id.
      EXPECT_EQ(t->encode(mine.content), std::vector<int32_t>{id});
    }
    const json gen = json::parse(read_text(dir + "/generation_config.json"));
    EXPECT_EQ(t->generation_eos_token_ids(), std::vector<int32_t>{gen["eos_token_id"].get<int32_t>()});
    const auto stops = t->stop_token_ids();
    EXPECT_NE(std::find(stops.begin(), stops.end(), spec["im_end_token_id"].get<int32_t>()), stops.end());
    EXPECT_NE(std::find(stops.begin(), stops.end(), spec["eos_token_id"].get<int32_t>()), stops.end());
    ASSERT_TRUE(t->chat_template().has_value());
    EXPECT_EQ(*t->chat_template(), read_text(dir + "/chat_template.jinja"));
    EXPECT_EQ(t->special_tokens_map().bos_token, "[BOS]");
    EXPECT_EQ(t->special_tokens_map().pad_token, "[PAD]");
    EXPECT_EQ(t->special_tokens_map().additional_special_tokens.size(), 12u);
    EXPECT_FALSE(t->is_special(0));
    EXPECT_FALSE(t->is_special_slot(t->num_base_tokens() - 1));
    EXPECT_EQ(t->token_bytes(t->vocab_size()), "");
    EXPECT_EQ(t->token_id("a"), 64);
    EXPECT_EQ(t->token_id("no such token string"), std::nullopt);
  }
}

class Tok1024 : public ::testing::Test {
 protected:
  void SetUp() override {
    t_ = tok_test::load_or_die(data_path("text/tok-1024"));
    ASSERT_TRUE(t_);
  }
  int32_t id(const char* name) { return *t_->special_token_id(name); }
  std::shared_ptr<const Tokenizer> t_;
};

TEST_F(Tok1024, SkipSpecialTokensDropsOnlyFlaggedIds) {
  const std::string text = "<|im_user|>user<|im_middle|>hi<|im_end|><think>x</think><|reserved_token_800|>[BOS]";
  const auto ids = t_->encode(text);
  EXPECT_EQ(ids.front(), id("<|im_user|>"));
  EXPECT_EQ(*t_->decode(ids), text);
  // <think> and </think> are not special (flag false); unnamed reserved slots are.
  EXPECT_EQ(*t_->decode(ids, true), "userhi<think>x</think>");
}

TEST_F(Tok1024, SpecialsAsTextWhenNotAllowed) {
  const std::string text = "a<|im_end|>b";
  const auto with = t_->encode(text);
  const auto without = t_->encode(text, false);
  EXPECT_NE(std::find(with.begin(), with.end(), id("<|im_end|>")), with.end());
  for (int32_t i : without) EXPECT_LT(i, t_->num_base_tokens());
  EXPECT_EQ(*t_->decode(without), text);
  EXPECT_EQ(without, t_->encode_ordinary(text));
}

TEST_F(Tok1024, RegexSeesOnlyTextBeforeASpecial) {
  // tiktoken runs the regex on the text between specials alone: before "<|im_end|>" the two
  // spaces end the text, so `\s+(?!\S)` takes both (one token). With "<" visible they
  // would split as " " + " <".
  EXPECT_EQ(t_->encode("x  <|im_end|>"),
            (std::vector<int32_t>{*t_->token_id("x"), *t_->token_id("  "), id("<|im_end|>")}));
  EXPECT_NE(t_->encode("x  <|im_end|>", false)[1], *t_->token_id("  "));
}

TEST_F(Tok1024, DecodeRejectsBadIds) {
  const std::vector<int32_t> bad{1, t_->vocab_size()};
  auto r = t_->decode(bad);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("position 1"), std::string::npos);
  const std::vector<int32_t> negative{-1};
  EXPECT_FALSE(t_->decode_bytes(negative).ok());
}

TEST_F(Tok1024, InvalidUtf8IsTokenizedAsBytes) {
  const std::string inputs[] = {std::string("\xff\xfe" "abc\xc3", 6), std::string("a\xe2\x82 b", 5),
                                std::string("\xed\xa0\x80x", 4), std::string("\x80", 1),
                                std::string("ok\xf4\x90\x80\x80<|im_end|>\xc0", 17)};
  for (const std::string& s : inputs) {
    SCOPED_TRACE(testing::PrintToString(s));
    const auto ids = t_->encode(s);
    EXPECT_EQ(*t_->decode_bytes(ids), s);
    std::string lossy;
    tok::append_utf8_lossy(s, true, lossy);
    EXPECT_EQ(*t_->decode(ids), lossy);
    EXPECT_EQ(*t_->decode_bytes(t_->encode_ordinary(s)), s);
  }
  EXPECT_EQ(*t_->decode(t_->encode(std::string("\xff\xfe" "abc\xc3", 6))), "\xEF\xBF\xBD\xEF\xBF\xBD" "abc\xEF\xBF\xBD");
}

TEST_F(Tok1024, RunCutsSplitLongRuns) {
  // 60,000 letters "ainin...": Kimi cuts after 25,000 and 50,000 characters, inside an
  // "in", and encodes each cut on its own, so BPE never merges across a cut.
  ASSERT_TRUE(t_->token_id("in").has_value());
  std::string text = "a";
  while (text.size() < 60000) text += "in";
  text.resize(60000);
  std::vector<int32_t> expected;
  for (size_t at : {0, 25000, 50000}) {
    const auto part = t_->encode_ordinary(std::string_view(text).substr(at, 25000));
    expected.insert(expected.end(), part.begin(), part.end());
  }
  EXPECT_EQ(t_->encode(text), expected);
  EXPECT_EQ(t_->encode(text, false), expected);
  EXPECT_NE(t_->encode_ordinary(text), expected);  // the ordinary encode does not cut
}

TEST_F(Tok1024, SpecialStraddlingThe400kCutIsText) {
  // "ab " keeps every run short; the special token starts 5 characters before the cut.
  std::string text;
  while (text.size() < tok::kMaxEncodeChars - 5) text += "ab ";
  text.resize(tok::kMaxEncodeChars - 5);
  text += "<|im_end|>";
  const auto ids = t_->encode(text);
  EXPECT_EQ(std::find(ids.begin(), ids.end(), id("<|im_end|>")), ids.end());
  EXPECT_EQ(*t_->decode(ids), text);
  text.resize(tok::kMaxEncodeChars - 10);
  text += "<|im_end|>";  // now it ends exactly at the cut: matched
  const auto ids2 = t_->encode(text);
  EXPECT_EQ(ids2.back(), id("<|im_end|>"));
}

TEST_F(Tok1024, HugeInputsDoNotFailTheRegex) {
  const std::string inputs[] = {std::string(1 << 20, ' '), std::string(1 << 20, '\n'),
                                std::string(1 << 20, '!'), std::string(1 << 20, '7')};
  for (const std::string& s : inputs) {
    const auto ids = t_->encode_ordinary(s);
    EXPECT_EQ(*t_->decode_bytes(ids), s);
    EXPECT_EQ(*t_->decode_bytes(t_->encode(s)), s);
  }
  std::string han;
  for (int i = 0; i < 100000; ++i) han += "\xe4\xb8\xad";  // 中
  EXPECT_EQ(*t_->decode_bytes(t_->encode(han)), han);
}

TEST_F(Tok1024, ConcurrentEncodesAgree) {
  const auto rows = read_jsonl(data_path("text/tok-1024/golden.jsonl"));
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&] {
      for (int rep = 0; rep < 20; ++rep) {
        for (const json& row : rows) {
          if (t_->encode(row["text"].get<std::string>()) != ids_of(row["ids"])) ++mismatches;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

// --- loading errors -------------------------------------------------------------------------

class TokenizerLoad : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = read_text(data_path("text/tok-512/tiktoken.model"));
    config_ = read_text(data_path("text/tok-512/tokenizer_config.json"));
  }
  Status build(const std::string& model, const std::string& config, const std::string& gen = "") {
    return Tokenizer::from_contents(model, config, gen, "", "dir").status();
  }
  std::string model_, config_;
};

TEST_F(TokenizerLoad, GoodContentsLoad) { EXPECT_TRUE(build(model_, config_).ok()); }

// nlohmann reports a number too large for any type as out_of_range, not parse_error (the
// fuzzer found it escaping as an exception).
TEST_F(TokenizerLoad, HugeNumberInConfigIsAnError) {
  const Status s = build(model_, R"({"model_max_length": 222222222222800000007428453e51932})");
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("tokenizer_config.json"), std::string::npos) << s.message();
}

TEST_F(TokenizerLoad, MissingDirectoryNamesTheFile) {
  auto r = Tokenizer::load("/nonexistent/tokdir");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Code::kNotFound);
  EXPECT_NE(r.status().message().find("/nonexistent/tokdir/tiktoken.model"), std::string::npos);
}

TEST_F(TokenizerLoad, BadModelLinesNameTheLine) {
  auto replace_line = [&](int line, const std::string& with) {
    std::string m = model_;
    size_t pos = 0;
    for (int i = 1; i < line; ++i) pos = m.find('\n', pos) + 1;
    m.replace(pos, m.find('\n', pos) - pos, with);
    return m;
  };
  const std::pair<std::string, std::string> cases[] = {
      {replace_line(3, "!!!! 2"), "tiktoken.model line 3: bad base64"},
      {replace_line(4, "Iw== x"), "tiktoken.model line 4: bad rank"},
      {replace_line(5, "Iw=="), "tiktoken.model line 5: expected"},
      {replace_line(6, "Iw== 99999"), "tiktoken.model line 6: rank 99999"},
      {replace_line(7, "Iw== 2"), "tiktoken.model line 7: rank 2 repeats line 3"},
  };
  for (const auto& [model, want] : cases) {
    const Status s = build(model, config_);
    EXPECT_FALSE(s.ok());
    EXPECT_NE(s.message().find(want), std::string::npos) << s.message();
  }
  // A token whose bytes repeat another's (rank 5 given the bytes of rank 2).
  const Status dup = build(replace_line(6, "Iw== 5"), config_);
  EXPECT_NE(dup.message().find("line 6: token repeats the bytes of line 3"), std::string::npos) << dup.message();
  EXPECT_NE(build("", config_).message().find("no tokens"), std::string::npos);
}

TEST_F(TokenizerLoad, ModelWithoutAllBytesIsRejected) {
  // Drop the single byte "A" (rank 32) by renumbering the last line into its place.
  std::string m = model_;
  const size_t pos = m.find("QQ== 32\n");
  ASSERT_NE(pos, std::string::npos);
  m.erase(pos, 8);
  const size_t last = m.rfind('\n', m.size() - 2);
  m.replace(m.find(' ', last), std::string::npos, " 32\n");
  const Status s = build(m, config_);
  EXPECT_NE(s.message().find("no token for the single byte 65"), std::string::npos) << s.message();
}

TEST_F(TokenizerLoad, BadConfigIsAnError) {
  std::string broken = config_;
  broken.insert(broken.find("\"bos_token\""), "oops");
  const Status syntax = build(model_, broken);
  EXPECT_NE(syntax.message().find("dir/tokenizer_config.json line "), std::string::npos) << syntax.message();
  json c = json::parse(config_);
  c["bos_token"] = "[NOPE]";
  EXPECT_NE(build(model_, c.dump()).message().find("bos_token '[NOPE]'"), std::string::npos);
  c = json::parse(config_);
  c["added_tokens_decoder"]["5"] = {{"content", "x"}, {"special", true}};
  EXPECT_NE(build(model_, c.dump()).message().find("outside the special slots"), std::string::npos);
  c = json::parse(config_);
  c["added_tokens_decoder"]["300"] = {{"content", "[BOS]"}, {"special", true}};
  EXPECT_NE(build(model_, c.dump()).message().find("used by ids"), std::string::npos);
  EXPECT_FALSE(build(model_, "[1,2]").ok());
  EXPECT_NE(build(model_, config_, "{\"eos_token_id\": 5000}").message().find("generation_config.json"),
            std::string::npos);
  EXPECT_TRUE(build(model_, config_, "{\"eos_token_id\": [257, 258]}").ok());
}

TEST(TokenizerLoadTime, Tok1024IsFast) {
  const auto start = std::chrono::steady_clock::now();
  auto t = Tokenizer::load(data_path("text/tok-1024"));
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(t.ok());
  EXPECT_LT(ms, 500.0);
}

}  // namespace
}  // namespace k2
