#pragma once
// The search's accuracy predictor (Ji et al.): gradient-boosted trees (XGBoost, C API, in-process) that map
// a plan's feature vector (compress/FEATURES.md) to a metric such as mean FDT, mean KL or perplexity.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace divprune {

// Row-major (rows, cols) features.
struct FeatureMatrix {
  size_t rows = 0;
  size_t cols = 0;
  std::vector<float> values;
  std::span<const float> row(size_t i) const { return {values.data() + i * cols, cols}; }
};

struct PredictorParams {
  int rounds = 300;
  int max_depth = 4;
  double eta = 0.05;
  double subsample = 0.8;
  double colsample = 0.8;
  double min_child_weight = 1.0;
  int threads = 1;
  uint64_t seed = 0;
};

struct PredictorScores {
  double r2 = 0.0;
  double spearman = 0.0;
  double mae = 0.0;
  size_t folds = 0;
  std::vector<double> held_out_prediction;  // (rows) each row predicted by the model that did not see it
};

class Predictor {
 public:
  Predictor(Predictor&&) noexcept;
  Predictor& operator=(Predictor&&) noexcept;
  ~Predictor();

  static Predictor train(const FeatureMatrix& x, std::span<const double> y, const PredictorParams& params);
  std::vector<double> predict(const FeatureMatrix& x) const;
  // XGBoost's JSON model, stored in the archive so a run's predictor can be reloaded elsewhere.
  std::string model_json() const;
  // Total gain per feature index (0 for features never split on).
  std::vector<double> feature_gain(size_t features) const;

 private:
  explicit Predictor(void* booster) : booster_(booster) {}
  void* booster_ = nullptr;  // BoosterHandle
};

// k-fold cross-validation (rows shuffled with `params.seed`): R², Spearman ρ and MAE of held-out predictions.
PredictorScores cross_validate(const FeatureMatrix& x, std::span<const double> y, const PredictorParams& params,
                               size_t folds);

}  // namespace divprune
