#pragma once
// Sparsity allocations of the baselines a practitioner tries before a search (issue 17, "Baselines"). Pure
// functions over small tables, so each rule is exact and testable; pipelines/baselines.cpp turns them into plans.
//
// Sensitivity-guided (from the sensitivity sweep, pipelines/sensitivity.cpp), two rules over items i (one layer ×
// component) of n_i parameters and sensitivity s_i.
//
// Rank (the default, allocate_sensitivity_rank): item i with normalised rank r_i ∈ [0, 1] in increasing
// sensitivity (0: the least sensitive, 1: the most; tied items share the mean of their 0-based positions, divided
// by n − 1; a single item has r = 0) gets
//     x_i = clamp(c + λ · (1 − 2 r_i), 0, max_sparsity)
// with c the one shift for which Σ n_i x_i = target_pruned: sparsities spread linearly over a width of 2λ around
// c, the least sensitive pruned most. Only the order of the s_i matters, so a sweep step at which many components
// lose nothing (s = 0, e.g. q and k at 50%) ties them instead of sending them to the clip, and one noisy
// component cannot take a share out of proportion; the spread λ bounds how far any item is from the others.
// c is found by bisection of the monotone Σ n_i x_i(c) and then solved exactly over the unclipped items.
//
// Inverse (the first rule, allocate_inverse_sensitivity; measured harmful on tiny-llama2-trained: with one 50%
// step most q/k items have s ≈ 0 and all go to the clip) gets sparsity
//     x_i = min(max_sparsity, α / max(s_i, kMinSensitivity))
// with α the one value for which Σ n_i x_i = target_pruned: the more sensitive a component, the less it is
// pruned, inversely proportional. Clipped items stay at max_sparsity and the mass they could not take is spread
// over the others in proportion to their 1/s (found by repeating the fit over the unclipped items until none
// new clips: water-filling).
//
// The sweep's sensitivity of an item (pipelines/baselines.cpp) is the share of the greedy continuation it loses
// when pruned alone at the sweep step nearest the budget's sparsity (the first such step in sweep order on a
// tie): s_i = 1 − FDT_i,step / N.
//
// OWL (Yin et al., outlier-weighted layer-wise sparsity): layer l with outlier ratio D_l (the share of its
// activation entries with |x| > M · mean|x|) gets
//     x_l = S + 2λ · (mean(D) − D_l) / (max(D) − min(D))
// so the layer sparsities span exactly [S − …, S + …] of width 2λ around the mean S, layers with more outliers
// pruned less; all layers equal (max = min) gives S everywhere. The layers have equal sizes, so the mean of x_l
// is S and the budget holds; x_l is then clipped to [0, max_sparsity].
#include <span>
#include <vector>

namespace divprune {

inline constexpr double kMinSensitivity = 1e-3;

// x_i as above. InputError when the target cannot be met (target_pruned > max_sparsity · Σ n_i, or < 0).
std::vector<double> allocate_inverse_sensitivity(std::span<const double> sensitivity, std::span<const double> sizes,
                                                 double target_pruned, double max_sparsity);

// x_i of the rank rule above, for spread λ = `lambda` ≥ 0. InputError when the target cannot be met.
std::vector<double> allocate_sensitivity_rank(std::span<const double> sensitivity, std::span<const double> sizes,
                                              double target_pruned, double lambda, double max_sparsity);

// r_i of the rank rule: normalised ranks in increasing value, ties sharing their mean position.
std::vector<double> normalised_ranks(std::span<const double> values);

// x_l as above, for mean sparsity `sparsity` and λ = `lambda`.
std::vector<double> allocate_owl(std::span<const double> outlier_ratio, double sparsity, double lambda,
                                 double max_sparsity);

// The share of entries with |x| > threshold · mean|x| (OWL's M); 0 for an empty span.
double outlier_ratio(std::span<const float> values, double threshold);

}  // namespace divprune
