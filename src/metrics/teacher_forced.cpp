#include "metrics/teacher_forced.hpp"

#include <fmt/format.h>

#include "core/errors.hpp"

namespace divprune {

ScoredTargets score_targets(LlamaModel& model, KvCache& cache, std::span<const int32_t> context,
                            std::span<const int32_t> targets, int32_t bos_id) {
  EXPECTS(!targets.empty(), "score_targets: nothing to score");
  std::vector<int32_t> fed;
  fed.reserve(context.size() + targets.size());
  fed.push_back(bos_id);
  fed.insert(fed.end(), context.begin(), context.end());
  fed.insert(fed.end(), targets.begin(), targets.end() - 1);
  if (static_cast<int64_t>(fed.size()) > cache.capacity)
    throw InputError(fmt::format("a sequence of {} tokens exceeds the KV cache of {} (model context {})", fed.size(),
                                 cache.capacity, model.config().max_seq_len));
  // The positions of the BOS and the context predict nothing that is scored: logits of the last |targets| only.
  ScoredTargets out;
  out.logits = model.forward(fed, 0, cache, static_cast<int64_t>(targets.size()));
  VocabPartials partials;
  model.backend().vocab_partials(out.logits, targets, model.layout().vocab.begin, partials);
  out.stats = combine_vocab_partials(partials, model.comm(), true);
  return out;
}

double choice_logprob(LlamaModel& model, KvCache& cache, std::span<const int32_t> context,
                      std::span<const int32_t> choice, int32_t bos_id) {
  const ScoredTargets scored = score_targets(model, cache, context, choice, bos_id);
  double sum = 0.0;
  for (double nll : scored.stats.nll) sum -= nll;
  return sum;
}

}  // namespace divprune
