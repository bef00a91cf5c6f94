#pragma once
// Sparsity allocations of the baselines a practitioner tries before a search (issue 17, "Baselines"). Pure
// functions over small tables, so each rule is exact and testable; pipelines/baselines.cpp turns them into plans.
//
// Sensitivity-guided (from the sensitivity sweep, pipelines/sensitivity.cpp): item i (one layer × component) of
// n_i parameters and sensitivity s_i gets sparsity
//     x_i = min(max_sparsity, α / max(s_i, kMinSensitivity))
// with α the one value for which Σ n_i x_i = target_pruned: the more sensitive a component, the less it is
// pruned, inversely proportional. Clipped items stay at max_sparsity and the mass they could not take is spread
// over the others in proportion to their 1/s (found by repeating the fit over the unclipped items until none
// new clips: water-filling). The sweep's sensitivity of an item is the share of the greedy continuation it loses
// when pruned alone, averaged over the sweep's steps: s_i = mean_steps(1 − FDT_i,step / N).
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

// x_l as above, for mean sparsity `sparsity` and λ = `lambda`.
std::vector<double> allocate_owl(std::span<const double> outlier_ratio, double sparsity, double lambda,
                                 double max_sparsity);

// The share of entries with |x| > threshold · mean|x| (OWL's M); 0 for an empty span.
double outlier_ratio(std::span<const float> values, double threshold);

}  // namespace divprune
