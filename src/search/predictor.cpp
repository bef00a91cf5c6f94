#include "search/predictor.hpp"

#include <fmt/format.h>
#include <xgboost/c_api.h>

#include <algorithm>
#include <numeric>
#include <random>

#include "core/errors.hpp"
#include "search/regression_metrics.hpp"

// Every XGBoost call is checked; its last error message becomes part of the exception.
#define CHECK_XGB(call)                                                                                   \
  do {                                                                                                    \
    if ((call) != 0) ::divprune::throw_internal(#call, XGBGetLastError(), __FILE__, __LINE__);            \
  } while (0)

namespace divprune {

namespace {

class DMatrix {
 public:
  DMatrix(const FeatureMatrix& x, std::span<const double> labels) {
    CHECK_XGB(XGDMatrixCreateFromMat(x.values.data(), x.rows, x.cols, std::numeric_limits<float>::quiet_NaN(), &handle_));
    if (!labels.empty()) {
      std::vector<float> y(labels.begin(), labels.end());
      CHECK_XGB(XGDMatrixSetFloatInfo(handle_, "label", y.data(), y.size()));
    }
  }
  ~DMatrix() { XGDMatrixFree(handle_); }
  DMatrix(const DMatrix&) = delete;
  DMatrix& operator=(const DMatrix&) = delete;
  DMatrixHandle get() const { return handle_; }

 private:
  DMatrixHandle handle_ = nullptr;
};

FeatureMatrix select_rows(const FeatureMatrix& x, const std::vector<size_t>& rows) {
  FeatureMatrix out{rows.size(), x.cols, {}};
  out.values.reserve(rows.size() * x.cols);
  for (size_t r : rows) out.values.insert(out.values.end(), x.row(r).begin(), x.row(r).end());
  return out;
}

}  // namespace

Predictor::Predictor(Predictor&& other) noexcept : booster_(other.booster_) { other.booster_ = nullptr; }
Predictor& Predictor::operator=(Predictor&& other) noexcept {
  std::swap(booster_, other.booster_);
  return *this;
}
Predictor::~Predictor() {
  if (booster_ != nullptr) XGBoosterFree(static_cast<BoosterHandle>(booster_));
}

Predictor Predictor::train(const FeatureMatrix& x, std::span<const double> y, const PredictorParams& p) {
  if (x.rows == 0 || x.rows != y.size())
    throw InputError(fmt::format("predictor: {} feature rows but {} targets", x.rows, y.size()));
  DMatrix train(x, y);
  DMatrixHandle matrices[] = {train.get()};
  BoosterHandle booster = nullptr;
  CHECK_XGB(XGBoosterCreate(matrices, 1, &booster));
  Predictor out(booster);
  auto set = [&](const char* name, const std::string& value) { CHECK_XGB(XGBoosterSetParam(booster, name, value.c_str())); };
  set("objective", "reg:squarederror");
  set("tree_method", "exact");  // deterministic and exact on the few hundred pairs a search has
  set("max_depth", std::to_string(p.max_depth));
  set("eta", fmt::format("{}", p.eta));
  set("subsample", fmt::format("{}", p.subsample));
  set("colsample_bytree", fmt::format("{}", p.colsample));
  set("min_child_weight", fmt::format("{}", p.min_child_weight));
  set("nthread", std::to_string(p.threads));
  set("seed", std::to_string(p.seed));
  set("verbosity", "0");
  for (int round = 0; round < p.rounds; ++round) CHECK_XGB(XGBoosterUpdateOneIter(booster, round, train.get()));
  return out;
}

std::vector<double> Predictor::predict(const FeatureMatrix& x) const {
  DMatrix data(x, {});
  bst_ulong length = 0;
  const float* result = nullptr;
  CHECK_XGB(XGBoosterPredict(static_cast<BoosterHandle>(booster_), data.get(), 0, 0, 0, &length, &result));
  EXPECTS(length == x.rows, "prediction length");
  return std::vector<double>(result, result + length);
}

std::string Predictor::model_json() const {
  bst_ulong length = 0;
  const char* buffer = nullptr;
  CHECK_XGB(XGBoosterSaveModelToBuffer(static_cast<BoosterHandle>(booster_), R"({"format": "json"})", &length, &buffer));
  return std::string(buffer, length);
}

std::vector<double> Predictor::feature_gain(size_t features) const {
  bst_ulong n_features = 0, dim = 0;
  const char** names = nullptr;
  const bst_ulong* shape = nullptr;
  const float* scores = nullptr;
  CHECK_XGB(XGBoosterFeatureScore(static_cast<BoosterHandle>(booster_), R"({"importance_type": "total_gain"})",
                                  &n_features, &names, &dim, &shape, &scores));
  std::vector<double> gain(features, 0.0);
  for (bst_ulong i = 0; i < n_features; ++i) {
    // Unnamed features are reported as "f<index>".
    const std::string name = names[i];
    if (name.size() > 1 && name[0] == 'f') {
      const size_t index = std::stoul(name.substr(1));
      if (index < features) gain[index] = scores[i];
    }
  }
  return gain;
}

PredictorScores cross_validate(const FeatureMatrix& x, std::span<const double> y, const PredictorParams& params,
                               size_t folds) {
  if (folds < 2 || x.rows < folds)
    throw InputError(fmt::format("predictor: {}-fold cross-validation needs at least {} pairs, have {}", folds, folds, x.rows));
  std::vector<size_t> order(x.rows);
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(params.seed);
  std::shuffle(order.begin(), order.end(), rng);
  PredictorScores scores;
  scores.folds = folds;
  scores.held_out_prediction.assign(x.rows, 0.0);
  for (size_t f = 0; f < folds; ++f) {
    std::vector<size_t> train_rows, test_rows;
    for (size_t i = 0; i < order.size(); ++i) (i % folds == f ? test_rows : train_rows).push_back(order[i]);
    std::vector<double> train_y;
    for (size_t r : train_rows) train_y.push_back(y[r]);
    Predictor model = Predictor::train(select_rows(x, train_rows), train_y, params);
    const std::vector<double> predicted = model.predict(select_rows(x, test_rows));
    for (size_t i = 0; i < test_rows.size(); ++i) scores.held_out_prediction[test_rows[i]] = predicted[i];
  }
  scores.r2 = r_squared(y, scores.held_out_prediction);
  scores.spearman = spearman_rho(y, scores.held_out_prediction);
  scores.mae = mean_absolute_error(y, scores.held_out_prediction);
  return scores;
}

}  // namespace divprune
