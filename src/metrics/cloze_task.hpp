#pragma once
// A cloze multiple-choice task built from a text file (`data.multiple_choice.build.kind: cloze`; issue 16): the
// last word of a sentence among `choices` candidates of similar corpus frequency. Small models do it well above
// chance (the next-sentence task, metrics/eval_data.hpp, is near chance for tiny-llama2-trained), so flips between
// a base and a compressed model are measured on answers the base mostly gets right.
//
// Construction (deterministic for a given file and options; own splitmix64 PRNG, no std:: distributions):
//  - paragraphs are split into sentences at " . " as for the next-sentence task, headings ("= ... =") skipped;
//  - a sentence is a candidate when it has [min_words, max_words] words and its last word (the one before the
//    final ".") is a lower-case alphabetic word of at least 3 letters ("answer words"; proper nouns, numbers and
//    WikiText's "@-@" markers never are);
//  - the context is the `context_sentences` − 1 sentences of the paragraph before it (as many as there are)
//    followed by the sentence without its last word; the choices are single words (each fed after the context,
//    tokenised on its own like every choice);
//  - distractors: answer words counted over the whole text and ranked by count; a distractor is drawn among the
//    answer words within kFrequencyWindow ranks of the true word, never the true word and never a word of the
//    item's context, so no choice is favoured by being more frequent in the corpus;
//  - items are spread evenly over the candidate sentences; the answer position is drawn.
// Throws InputError when the text has fewer candidate sentences than items, or too few answer words.
#include <filesystem>
#include <vector>

#include "metrics/eval_data.hpp"

namespace divprune {

inline constexpr int64_t kClozeFrequencyWindow = 25;  // ranks on either side of the true word

// `options`: items, choices, context_sentences, min_words, max_words and seed as for the next-sentence task.
std::vector<McItem> build_cloze_task(const std::filesystem::path& text_file, const NextSentenceOptions& options);

}  // namespace divprune
