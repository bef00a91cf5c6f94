#include "model/sampling.hpp"

#include <cmath>
#include <limits>

#include "model/vocab_stats.hpp"

namespace divprune {

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

double gumbel(uint64_t seed, int64_t sequence, int64_t position, int64_t token) {
  uint64_t h = splitmix64(seed ^ splitmix64(static_cast<uint64_t>(sequence) * 0x100000001b3ull +
                                            splitmix64(static_cast<uint64_t>(position) * 131071ull + static_cast<uint64_t>(token))));
  const double u = (static_cast<double>(h >> 11) + 0.5) * 0x1.0p-53;  // (0, 1)
  return -std::log(-std::log(u));
}

}  // namespace

std::vector<std::vector<int32_t>> sample_sequences(LlamaModel& model, int64_t count, int64_t length, uint64_t seed) {
  const int64_t v_begin = model.layout().vocab.begin, v_local = model.layout().vocab.size();
  std::vector<std::vector<int32_t>> out;
  KvCache cache = model.make_cache(length + 1);
  std::vector<float> logits(static_cast<size_t>(v_local));
  VocabPartials partials;
  partials.resize(1);
  for (int64_t s = 0; s < count; ++s) {
    std::vector<int32_t> sequence;
    int32_t token = model.config().bos_id;
    for (int64_t pos = 0; pos < length; ++pos) {
      Tensor step = model.forward(std::span<const int32_t>(&token, 1), pos, cache);
      model.backend().download(step, logits);
      double best = -std::numeric_limits<double>::infinity();
      int64_t best_id = v_begin;
      for (int64_t j = 0; j < v_local; ++j) {
        const double score = logits[static_cast<size_t>(j)] + gumbel(seed, s, pos, v_begin + j);
        if (score > best) {
          best = score;
          best_id = v_begin + j;
        }
      }
      partials.max[0] = static_cast<float>(best);
      partials.argmax[0] = static_cast<int32_t>(best_id);
      partials.sum_exp[0] = 1.0f;
      token = combine_vocab_partials(partials, model.comm(), false).argmax[0];
      sequence.push_back(token);
    }
    out.push_back(std::move(sequence));
  }
  return out;
}

}  // namespace divprune
