#pragma once
// The `heldout` stage's configuration (section `heldout`, configs/README.md): the held-out evaluation data and
// how many of the search's plans to re-measure on it.
#include <cstdint>

#include "pipelines/run_config.hpp"

namespace divprune {

struct HeldoutSettings {
  int64_t candidates = 5;     // the search's top k plans by the selection objective
  int64_t resamples = 2000;   // paired bootstrap (metrics/bootstrap.hpp)
  uint64_t seed = 1;
  // The run configuration with `data` replaced by the held-out data: each of heldout.data.{perplexity, prompts,
  // multiple_choice, logprobs} given replaces the source keys (text / file / build) of the same subsection of
  // `data` and overrides its other keys; keys not given (ctx, continuation, prompt tokens, log-prob storage) are
  // the selection data's, so the two sets are measured alike. heldout.data.perplexity and .prompts are required
  // when `data` has them; multiple choice is held out only when heldout.data.multiple_choice is given.
  RunConfig data;
};
// InputError naming the key on bad values, and when the held-out sources are the selection's (the same
// perplexity file, or the same prompts file / text). Prompts identical after tokenisation are refused by the
// stage (it needs the tokenizer).
HeldoutSettings read_heldout_settings(const RunConfig& config);

}  // namespace divprune
