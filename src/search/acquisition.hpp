#pragma once
// How a search round chooses the plans it evaluates for real (issue 17, "Acquisition").
//
//   point  the predictor's point prediction (one booster); the round takes the best predicted plans, as every
//          search before the ensemble did.
//   ucb    an ensemble of B boosters, each fit on a bootstrap resample of the training pairs (rows drawn with
//          replacement, as many as there are pairs) with its own seed. A plan's acquisition loss is the
//          optimistic bound of its objective: loss = sign·mean − κ·std (sign = −1 for a maximised objective, so
//          mean FDT is scored by mean + κ·std and mean KL / perplexity by mean − κ·std), lower is better.
//
// Diversity rule (both modes): walking the candidates best first, a plan is skipped when it lies closer than
// `min_distance` to a plan already picked in the same round. The distance is the Euclidean (L2) distance
// between the plans' feature vectors of compress/FEATURES.md (sparsities in [0, 1), method one-hots, int8 and
// removed flags; not the predictor's aggregates): one component moved by one 0.1 sparsity level is 0.1 away,
// a component switching prune method or int8 at least 1.
#include <cstdint>
#include <span>
#include <vector>

#include "search/predictor.hpp"

namespace divprune {

enum class AcquisitionMode { Point, Ucb };

struct AcquisitionParams {
  AcquisitionMode mode = AcquisitionMode::Point;
  int boosters = 8;           // ensemble size (ucb)
  double kappa = 1.0;         // exploration weight of the ensemble's std (ucb)
  double min_distance = 0.0;  // diversity rule; 0 picks exactly as the point search always did
};

// B boosters on bootstrap resamples: booster b draws its rows with std::mt19937_64(seed + b) and trains with
// XGBoost seed (seed + b).
class PredictorEnsemble {
 public:
  struct Prediction {
    std::vector<double> mean;  // (rows) mean over the boosters
    std::vector<double> std;   // (rows) sample standard deviation over the boosters (divisor B − 1; 0 when B = 1)
  };
  static PredictorEnsemble train(const FeatureMatrix& x, std::span<const double> y, const PredictorParams& params,
                                 int boosters);
  Prediction predict(const FeatureMatrix& x) const;
  size_t size() const { return boosters_.size(); }

 private:
  std::vector<Predictor> boosters_;
};

// L2 distance between two plan feature vectors (same length).
double plan_feature_distance(std::span<const float> a, std::span<const float> b);

// Indices into `features` (one plan feature row each, given best first), at most `count` of them, in order, no
// two closer than `min_distance` (plan_feature_distance); `eligible[i]` false skips row i (e.g. evaluated already).
std::vector<size_t> pick_diverse(const FeatureMatrix& features, const std::vector<bool>& eligible, size_t count,
                                 double min_distance);

}  // namespace divprune
