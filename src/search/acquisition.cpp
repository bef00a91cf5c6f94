#include "search/acquisition.hpp"

#include <fmt/format.h>

#include <cmath>
#include <random>

#include "core/errors.hpp"

namespace divprune {

PredictorEnsemble PredictorEnsemble::train(const FeatureMatrix& x, std::span<const double> y,
                                           const PredictorParams& params, int boosters) {
  if (boosters < 1) throw InputError(fmt::format("predictor ensemble: {} boosters, need at least 1", boosters));
  if (x.rows == 0 || x.rows != y.size())
    throw InputError(fmt::format("predictor ensemble: {} feature rows but {} targets", x.rows, y.size()));
  PredictorEnsemble out;
  for (int b = 0; b < boosters; ++b) {
    // A bootstrap resample: as many rows as pairs, drawn with replacement.
    std::mt19937_64 rng(params.seed + static_cast<uint64_t>(b));
    std::uniform_int_distribution<size_t> pick(0, x.rows - 1);
    FeatureMatrix xb{x.rows, x.cols, {}};
    xb.values.reserve(x.values.size());
    std::vector<double> yb;
    yb.reserve(x.rows);
    for (size_t i = 0; i < x.rows; ++i) {
      const size_t r = pick(rng);
      xb.values.insert(xb.values.end(), x.row(r).begin(), x.row(r).end());
      yb.push_back(y[r]);
    }
    PredictorParams pb = params;
    pb.seed = params.seed + static_cast<uint64_t>(b);
    out.boosters_.push_back(Predictor::train(xb, yb, pb));
  }
  return out;
}

PredictorEnsemble::Prediction PredictorEnsemble::predict(const FeatureMatrix& x) const {
  EXPECTS(!boosters_.empty(), "an ensemble of at least one booster");
  std::vector<std::vector<double>> each;
  for (const Predictor& p : boosters_) each.push_back(p.predict(x));
  const double n = static_cast<double>(boosters_.size());
  Prediction out{std::vector<double>(x.rows, 0.0), std::vector<double>(x.rows, 0.0)};
  for (size_t r = 0; r < x.rows; ++r) {
    double sum = 0.0;
    for (const auto& e : each) sum += e[r];
    const double mean = sum / n;
    double squares = 0.0;
    for (const auto& e : each) squares += (e[r] - mean) * (e[r] - mean);
    out.mean[r] = mean;
    out.std[r] = boosters_.size() > 1 ? std::sqrt(squares / (n - 1.0)) : 0.0;
  }
  return out;
}

double plan_feature_distance(std::span<const float> a, std::span<const float> b) {
  EXPECTS(a.size() == b.size(), "feature vectors of the same length");
  double sum = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
    sum += d * d;
  }
  return std::sqrt(sum);
}

std::vector<size_t> pick_diverse(const FeatureMatrix& features, const std::vector<bool>& eligible, size_t count,
                                 double min_distance) {
  EXPECTS(eligible.size() == features.rows, "one eligibility flag per row");
  std::vector<size_t> picked;
  for (size_t i = 0; i < features.rows && picked.size() < count; ++i) {
    if (!eligible[i]) continue;
    bool too_close = false;
    for (size_t j : picked)
      if (plan_feature_distance(features.row(i), features.row(j)) < min_distance) too_close = true;
    if (!too_close) picked.push_back(i);
  }
  return picked;
}

}  // namespace divprune
