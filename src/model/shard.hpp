#pragma once
// How one tensor-parallel rank's share of the model is cut (Megatron layout):
//  - column-parallel q/k/v: contiguous blocks of whole heads; GQA keeps every query head with its KV head
//    because tp must divide the KV heads and query heads of one KV head are contiguous.
//  - column-parallel gate/up: the same contiguous block of intermediate channels for both, so that
//    silu(gate) * up stays local; row-parallel down takes the matching columns.
//  - row-parallel o: the columns matching the local query heads.
//  - vocab-parallel embedding and lm_head: contiguous vocab slices, the first `vocab % tp` ranks one longer.
#include <cstdint>

namespace divprune {

struct ModelConfig;

struct Range {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
};

struct TpShard {
  int rank = 0;
  int size = 1;
};

struct ShardLayout {
  TpShard shard;
  int64_t heads = 0;          // local query heads
  int64_t kv_heads = 0;       // local KV heads
  Range q_rows;               // rows of q_proj (and columns of o_proj)
  Range kv_rows;              // rows of k_proj / v_proj
  Range ffn_rows;             // rows of gate/up (and columns of down)
  Range vocab;                // rows of embed_tokens / lm_head
};

// Throws InputError when tp does not divide the query heads, KV heads or intermediate size.
ShardLayout make_shard_layout(const ModelConfig& config, TpShard shard);

}  // namespace divprune
