// What one forward call of a model takes and gives back: a varlen batch of sequence
// chunks (prefill, chunked prefill and decode rows mixed freely), and optional traces of
// intermediate tensors for golden checks.
//
// Plain value types; the spans point at the caller's memory and must outlive the call.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

namespace k2 {

// One sequence's new tokens in a forward call.
struct SequenceChunk {
  std::span<const int32_t> tokens;       // the new tokens, at least one
  int64_t start_pos = 0;                 // tokens of this sequence already in the KV cache
  std::span<const int32_t> block_table;  // covers start_pos + tokens.size() positions
  // Multimodal chunks: [placeholders, hidden] rows (the encoded media) that replace the
  // embeddings of this chunk's media placeholder tokens (ModelConfig::
  // media_placeholder_token_id), in order; there must be exactly one row per placeholder,
  // so a chunk of a multimodal prompt without placeholders passes an empty span. nullopt:
  // a text chunk, every token (a generated placeholder id too) embedded as itself.
  std::optional<std::span<const float>> media_rows = std::nullopt;
  // With LogitRows::kLastPerSequence: this sequence still gets a row per token (prompt
  // logprobs), the others only their last.
  bool all_logits = false;
};

// The rows of a prompt's media (`rows`: one per placeholder of `prompt`, `width` floats each)
// that belong to its tokens [begin, end): what a chunked prefill passes as each chunk's
// media_rows. Rows that `rows` lacks are left out, so that forward() reports the mismatch.
inline std::span<const float> media_rows_for_chunk(std::span<const int32_t> prompt, int32_t placeholder,
                                                   std::span<const float> rows, int64_t width, size_t begin,
                                                   size_t end) {
  size_t first = 0, count = 0;
  for (size_t i = 0; i < std::min(end, prompt.size()); ++i) {
    if (prompt[i] == placeholder) ++(i < begin ? first : count);
  }
  const size_t offset = std::min(first * static_cast<size_t>(width), rows.size());
  return rows.subspan(offset, std::min(count * static_cast<size_t>(width), rows.size() - offset));
}

enum class LogitRows {
  kAll,              // one row per new token, in batch order (teacher forcing, goldens)
  kLastPerSequence,  // one row per sequence: the logits that pick its next token
};

struct ForwardBatch {
  std::vector<SequenceChunk> sequences;
  LogitRows logit_rows = LogitRows::kLastPerSequence;
  // An idle data-parallel rank's dummy forward (it only keeps the ranks' collectives paired):
  // its rows count in no expert load and are not dispatched to experts of other ranks.
  bool dummy = false;
};

// Router choices of one MoE layer, one entry per token row (k = num_experts_per_tok).
struct RouterTrace {
  int64_t layer = 0;
  std::vector<int32_t> idx;     // [rows, k] by descending selection score
  std::vector<float> weights;   // [rows, k] normalised and scaled
  std::vector<float> gap;       // [rows] k-th minus (k+1)-th selection score
  std::vector<float> group_gap; // [rows] topk_group-th minus next group score (+inf: no groups)
};

// Intermediate tensors of one forward call; rows are all new tokens in batch order.
struct ForwardTrace {
  std::vector<float> embed;                // [rows, hidden]
  std::vector<std::vector<float>> hidden;  // per layer: the residual stream after it, [rows, hidden]
  std::vector<float> final_norm;           // [rows, hidden]
  std::vector<RouterTrace> routers;        // one per MoE layer, in layer order
};

struct Logits {
  int64_t rows = 0;
  int64_t vocab = 0;
  std::vector<float> data;  // [rows, vocab]
  const float* row(int64_t r) const { return data.data() + r * vocab; }
};

}  // namespace k2
