#include "model/generate.hpp"

#include <fmt/format.h>

#include "core/errors.hpp"
#include "model/vocab_stats.hpp"

namespace divprune {

std::vector<int32_t> greedy_generate(LlamaModel& model, std::span<const int32_t> prompt, int64_t count) {
  if (prompt.empty()) throw InputError("generate: the prompt is empty (give at least one token, e.g. BOS = 1)");
  if (count < 0) throw InputError(fmt::format("generate: -n must be non-negative, got {}", count));
  const int64_t total = static_cast<int64_t>(prompt.size()) + count;
  if (total > model.config().max_seq_len)
    throw InputError(fmt::format("generate: prompt {} + {} new tokens exceeds the model's context {}", prompt.size(),
                                 count, model.config().max_seq_len));
  KvCache cache = model.make_cache(total);
  std::vector<int32_t> out;
  if (count == 0) return out;
  Tensor logits = model.forward(prompt, 0, cache, /*logit_rows=*/1);  // only the last position predicts
  int64_t pos = static_cast<int64_t>(prompt.size());
  VocabPartials partials;
  while (true) {
    Tensor last = logits.rows(logits.dim(0) - 1, 1);
    model.backend().vocab_partials(last, {}, model.layout().vocab.begin, partials);
    TokenStats stats = combine_vocab_partials(partials, model.comm(), false);
    out.push_back(stats.argmax[0]);
    if (static_cast<int64_t>(out.size()) == count) break;
    logits = model.forward(std::span<const int32_t>(&out.back(), 1), pos, cache);
    ++pos;
  }
  return out;
}

}  // namespace divprune
