#include "model/shard.hpp"

#include <fmt/format.h>

#include "core/errors.hpp"
#include "model/config.hpp"

namespace divprune {

ShardLayout make_shard_layout(const ModelConfig& config, TpShard shard) {
  const int tp = shard.size;
  if (tp < 1) throw InputError(fmt::format("--tp must be at least 1, got {}", tp));
  auto require_divides = [&](int64_t value, const char* what) {
    if (value % tp != 0)
      throw InputError(fmt::format("--tp {} does not divide {} = {} of the model ({})", tp, what, value,
                                   config.source));
  };
  require_divides(config.num_heads, "num_attention_heads");
  require_divides(config.num_kv_heads, "num_key_value_heads");
  require_divides(config.intermediate_size, "intermediate_size");
  ShardLayout layout;
  layout.shard = shard;
  layout.heads = config.num_heads / tp;
  layout.kv_heads = config.num_kv_heads / tp;
  layout.q_rows = {shard.rank * layout.heads * config.head_dim, (shard.rank + 1) * layout.heads * config.head_dim};
  layout.kv_rows = {shard.rank * layout.kv_heads * config.head_dim,
                    (shard.rank + 1) * layout.kv_heads * config.head_dim};
  const int64_t ffn = config.intermediate_size / tp;
  layout.ffn_rows = {shard.rank * ffn, (shard.rank + 1) * ffn};
  const int64_t base = config.vocab_size / tp, extra = config.vocab_size % tp;
  const int64_t begin = shard.rank * base + std::min<int64_t>(shard.rank, extra);
  layout.vocab = {begin, begin + base + (shard.rank < extra ? 1 : 0)};
  return layout;
}

}  // namespace divprune
