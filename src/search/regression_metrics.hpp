#pragma once
// Scores of a regression on held-out data: what the search's predictor is judged by.
#include <span>

namespace divprune {

double r_squared(std::span<const double> truth, std::span<const double> predicted);
double mean_absolute_error(std::span<const double> truth, std::span<const double> predicted);
// Spearman rank correlation (Pearson correlation of ranks; ties get their average rank).
double spearman_rho(std::span<const double> a, std::span<const double> b);

}  // namespace divprune
