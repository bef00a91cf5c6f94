// Tensor parallelism is invisible in compressed models: on 4 ranks, the tiny-llama2-mha model (4 heads) is
// compressed at tp = 2 and tp = 4 (MPI_Comm_split into groups) and compared with a tp = 1 computation that
// every rank does alone with a SoloCommunicator:
//   - every rank's working copy is exactly (bit for bit) its slice of the tp = 1 working copy;
//   - the gathered logits agree to 1e-5 relative.
// The weights are float16, so ties in |w| are common and the global tie-breaking is exercised.
#include <cblas.h>
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <fstream>
#include <unistd.h>

#include "compress/apply.hpp"
#include "compress/calibration.hpp"
#include "compress/operators.hpp"
#include "compress/plan.hpp"
#include "core/errors.hpp"
#include "core/mpi_communicator.hpp"
#include "model/checkpoint.hpp"
#include "model/llama.hpp"
#include "parallel/gather_logits.hpp"
#include "parallel/replica.hpp"
#include "parallel/topology.hpp"
#include "tests/support/assets.hpp"

namespace divprune {
namespace {

using ::testing::HasSubstr;

constexpr const char* kModel = "tiny-llama2-mha/model.safetensors";

// Every operator on both kinds of shards: magnitude on column-parallel q / up and row-parallel down,
// magnitude_row on row-parallel o (rows split across ranks) and column-parallel up, int8 on both kinds,
// heads, channels, 2:4 on row-parallel down (176 / 4 = 44 columns per shard at tp 4).
const char* kMixed = R"(drop_layers: []
components:
  - {layers: all, names: [q], prune: {method: magnitude, sparsity: 0.37}}
  - {layers: all, names: [o], prune: {method: magnitude_row, sparsity: 0.3}, quant: int8}
  - {layers: [0], names: [k, v], prune: {method: heads, sparsity: 0.25}}
  - {layers: [1], names: [k, v, o], prune: {method: heads, sparsity: 0.5}}
  - {layers: all, names: [gate, up], prune: {method: channels, sparsity: 0.2}, quant: int8}
  - {layers: [1], names: [up], prune: {method: magnitude_row, sparsity: 0.45}}
  - {layers: [0], names: [down], prune: {method: "2:4"}, quant: int8}
  - {layers: [1], names: [down], prune: {method: magnitude, sparsity: 0.6}}
)";
const char* kSecond = R"(drop_layers: [0]
components:
  - {layers: all, names: [q, k, v, o, gate, up, down], prune: {method: magnitude, sparsity: 0.5}}
  - {layers: all, names: [o, down], quant: int8}
)";

// Many sparsities on float16 weights: equal |w| straddle the thresholds, across shard boundaries too.
const char* kTies = R"(components:
  - {layers: all, names: [q, o], prune: {method: magnitude, sparsity: 0.5}}
  - {layers: all, names: [k], prune: {method: magnitude, sparsity: 0.25}}
  - {layers: all, names: [v], prune: {method: magnitude, sparsity: 0.75}}
  - {layers: all, names: [gate], prune: {method: magnitude, sparsity: 0.1}}
  - {layers: all, names: [up], prune: {method: magnitude, sparsity: 0.9}}
  - {layers: all, names: [down], prune: {method: magnitude, sparsity: 0.5}}
  - {layers: [1], names: [o, down], prune: {method: magnitude_row, sparsity: 0.5}}
  - {layers: [1], names: [q, k, v, gate, up], prune: {method: magnitude_row, sparsity: 0.25}, quant: int8}
)";

// Per-row selections on row-parallel o/down, whose rows are split across ranks: ties across shards.
const char* kRowTies = R"(components:
  - {layers: [0], names: [o, down], prune: {method: magnitude_row, sparsity: 0.2}}
  - {layers: [1], names: [o, down], prune: {method: magnitude_row, sparsity: 0.4}}
)";
const char* kRowTies2 = R"(components:
  - {layers: [0], names: [o, down], prune: {method: magnitude_row, sparsity: 0.6}}
  - {layers: [1], names: [o, down], prune: {method: magnitude_row, sparsity: 0.8}}
)";

// Calibrated operators on both kinds of shards (row-parallel o/down are computed whole and sliced).
const char* kCalibrated = R"(components:
  - {layers: all, names: [q, v], prune: {method: wanda, sparsity: 0.4}}
  - {layers: all, names: [o], prune: {method: sparsegpt, sparsity: 0.5}, quant: {method: gptq, bits: 4, group_size: 16}}
  - {layers: [0], names: [k, gate], prune: {method: sparsegpt, pattern: "2:4"}}
  - {layers: [1], names: [up], prune: {method: wanda, pattern: "4:8"}, quant: {method: rtn, bits: 3, group_size: 32}}
  - {layers: [0], names: [down], prune: {method: wanda, sparsity: 0.3}, quant: {method: gptq, bits: 3, group_size: -1, act_order: true}}
  - {layers: [1], names: [down], prune: {method: sparsegpt, pattern: "4:8"}, quant: {method: rtn, bits: 4, group_size: 16, sym: false}}
)";

int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

// One rank's part of a model at a given tp (groups of consecutive world ranks).
struct Part {
  MPI_Comm group = MPI_COMM_NULL;
  Topology topology;
  std::unique_ptr<Checkpoint> checkpoint;
  HostWeights pristine;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Communicator> comm;
  std::unique_ptr<LlamaModel> model;

  explicit Part(int tp) {
    const int rank = world_rank();
    if (tp > 1) {
      CHECK_MPI(MPI_Comm_split(MPI_COMM_WORLD, rank / tp, rank % tp, &group));
      comm = std::make_unique<MpiCommunicator>(group);
    } else {
      comm = std::make_unique<SoloCommunicator>();
    }
    topology.tp = tp;
    topology.tp_rank = tp > 1 ? rank % tp : 0;
    topology.tp_comm = group;
    checkpoint = open_checkpoint(::divprune::test::assets_dir() / "tiny-llama2-mha");
    pristine = load_host_weights(*checkpoint, make_shard_layout(checkpoint->config(), {topology.tp_rank, tp}));
    backend = make_backend(BackendKind::Cpu);
    model = std::make_unique<LlamaModel>(checkpoint->config(), pristine.layout, *backend, *comm,
                                         upload_weights(*backend, pristine));
  }
  ~Part() {
    model.reset();
    comm.reset();
    if (group != MPI_COMM_NULL) MPI_Comm_free(&group);
  }
  const ModelConfig& config() const { return checkpoint->config(); }
  void apply(const char* yaml, const CalibrationStats* calibration = nullptr) {
    apply_plan(parse_plan(yaml, config(), "plan.yaml", topology.tp), pristine, *model, calibration);
  }
  // Full logits on the group's rank 0, empty elsewhere.
  std::vector<float> logits() {
    std::vector<int32_t> ids(32);
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>((i * 7919 + 13) % 32000);
    KvCache cache = model->make_cache(static_cast<int64_t>(ids.size()));
    Tensor local = model->forward(ids, 0, cache);
    return gather_vocab_slices(*model, local, topology);
  }
  std::vector<float> download(int64_t layer, Component c) {
    const Tensor& t = model->weights().layers[static_cast<size_t>(layer)].linear[c];
    std::vector<float> host(static_cast<size_t>(t.numel()));
    backend->download(t, host);
    return host;
  }
};

// Relative to the largest reference logit.
double relative_error(const std::vector<float>& got, const std::vector<float>& ref) {
  EXPECT_EQ(got.size(), ref.size());
  double diff = 0.0, scale = 0.0;
  for (size_t i = 0; i < std::min(got.size(), ref.size()); ++i) {
    diff = std::max(diff, std::abs(static_cast<double>(got[i]) - ref[i]));
    scale = std::max(scale, std::abs(static_cast<double>(ref[i])));
  }
  return diff / scale;
}

// The block of the full matrix that a shard holds.
std::vector<float> slice(const std::vector<float>& full, const ShardGeometry& g) {
  std::vector<float> out;
  out.reserve(static_cast<size_t>(g.rows * g.cols));
  for (int64_t i = 0; i < g.rows; ++i)
    for (int64_t j = 0; j < g.cols; ++j) out.push_back(full[static_cast<size_t>((g.row0 + i) * g.full_cols + g.col0 + j)]);
  return out;
}

class CompressTp : public ::testing::Test {
 protected:
  void SetUp() override { openblas_set_num_threads(1); }
};

TEST_F(CompressTp, WorkingCopiesAreExactSlicesAndLogitsAgree) {
  ASSETS_OR_SKIP(kModel);
  // Applied one after the other on the same working copy (re-applying must equal applying to fresh weights).
  const std::vector<const char*> plans = {kMixed, kSecond, kTies, kRowTies, kRowTies2};
  Part solo(1);
  std::vector<std::vector<float>> solo_logits;
  std::vector<std::vector<std::vector<float>>> solo_weights;  // [plan][layer * 7 + component]
  for (const char* plan : plans) {
    solo.apply(plan);
    solo_logits.push_back(solo.logits());
    solo_weights.emplace_back();
    for (int64_t l = 0; l < solo.config().num_layers; ++l)
      for (Component c : kAllComponents) solo_weights.back().push_back(solo.download(l, c));
  }
  Part base(1);
  EXPECT_GT(relative_error(solo_logits[0], base.logits()), 1e-3) << "the plan changes the model";

  for (int tp : {2, 4}) {
    Part part(tp);
    for (size_t p = 0; p < plans.size(); ++p) {
      part.apply(plans[p]);
      size_t index = 0;
      for (int64_t l = 0; l < part.config().num_layers; ++l)
        for (Component c : kAllComponents) {
          const ShardGeometry g = shard_geometry(c, part.config(), part.pristine.layout);
          EXPECT_EQ(part.download(l, c), slice(solo_weights[p][index++], g))
              << "plan " << p << " tp " << tp << " rank " << part.topology.tp_rank << " layer " << l << " "
              << component_name(c);
        }
      const std::vector<float> logits = part.logits();
      if (part.topology.tp_rank == 0) {
        const double e = relative_error(logits, solo_logits[p]);
        EXPECT_LE(e, 1e-5) << "plan " << p << " tp " << tp;
        if (world_rank() == 0) std::printf("plan %zu tp %d: relative logit error %.3g\n", p, tp, e);
      }
    }
  }
}

// Calibration statistics collected at tp 2 / 4 (o/down inputs all-gathered) agree with tp 1 to float tolerance;
// given the same statistics (tp 1's, on every rank) the calibrated working copies are exact slices of tp 1's.
TEST_F(CompressTp, CalibratedWorkingCopiesAreExactSlices) {
  ASSETS_OR_SKIP(kModel);
  std::vector<std::vector<int32_t>> seqs(2);
  for (int s = 0; s < 2; ++s)
    for (int t = 0; t < 24; ++t) seqs[static_cast<size_t>(s)].push_back((s * 7919 + t * 104729 + 13) % 32000);
  Part solo(1);
  const CalibrationStats stats = collect_calibration(*solo.model, seqs);
  solo.apply(kCalibrated, &stats);
  const std::vector<float> solo_logits = solo.logits();
  std::vector<std::vector<float>> solo_weights;
  for (int64_t l = 0; l < solo.config().num_layers; ++l)
    for (Component c : kAllComponents) solo_weights.push_back(solo.download(l, c));
  for (int tp : {2, 4}) {
    Part part(tp);
    const CalibrationStats local = collect_calibration(*part.model, seqs);
    for (size_t l = 0; l < stats.layers.size(); ++l)
      for (int i = 0; i < kNumLinearInputs; ++i) {
        const InputStats& a = stats.layers[l][static_cast<size_t>(i)];
        const InputStats& b = local.layers[l][static_cast<size_t>(i)];
        ASSERT_EQ(a.gram.size(), b.gram.size());
        double diff = 0.0, scale = 0.0;
        for (size_t k = 0; k < a.gram.size(); ++k) {
          diff = std::max(diff, std::abs(a.gram[k] - b.gram[k]));
          scale = std::max(scale, std::abs(a.gram[k]));
        }
        EXPECT_LE(diff / scale, 1e-5) << "tp " << tp << " layer " << l << " input " << i;
      }
    part.apply(kCalibrated, &stats);
    size_t index = 0;
    for (int64_t l = 0; l < part.config().num_layers; ++l)
      for (Component c : kAllComponents) {
        const ShardGeometry g = shard_geometry(c, part.config(), part.pristine.layout);
        EXPECT_EQ(part.download(l, c), slice(solo_weights[index++], g))
            << "tp " << tp << " rank " << part.topology.tp_rank << " layer " << l << " " << component_name(c);
      }
    const std::vector<float> logits = part.logits();
    if (part.topology.tp_rank == 0) {
      EXPECT_LE(relative_error(logits, solo_logits), 1e-5) << "tp " << tp;
    }
  }
}

// Issue 16: the statistics themselves do not depend on tp. Collected at tp 2 and 4 (row-parallel o/down computed
// over full inputs, compress/calibration.cpp) they are bit-identical to tp 1's, so each group applying ITS OWN
// statistics (as a run does) gets working copies that are exact slices of tp 1's: in cached mode and in
// sequential mode (statistics of layer l collected over the already compressed layers before it).
TEST_F(CompressTp, CalibrationStatisticsAreBitIdenticalAcrossTp) {
  ASSETS_OR_SKIP(kModel);
  std::vector<std::vector<int32_t>> seqs(2);
  for (int s = 0; s < 2; ++s)
    for (int t = 0; t < 24; ++t) seqs[static_cast<size_t>(s)].push_back((s * 7919 + t * 104729 + 13) % 32000);
  auto weights_of = [](Part& p) {
    std::vector<std::vector<float>> w;
    for (int64_t l = 0; l < p.config().num_layers; ++l)
      for (Component c : kAllComponents) w.push_back(p.download(l, c));
    return w;
  };
  Part solo(1);
  const CalibrationStats stats = collect_calibration(*solo.model, seqs);
  solo.apply(kCalibrated, &stats);
  const auto cached = weights_of(solo);
  apply_plan_sequential(parse_plan(kCalibrated, solo.config(), "plan.yaml", 1), solo.pristine, *solo.model, seqs);
  const auto sequential = weights_of(solo);
  for (int tp : {2, 4}) {
    Part part(tp);
    const CalibrationStats local = collect_calibration(*part.model, seqs);
    for (size_t l = 0; l < stats.layers.size(); ++l)
      for (int i = 0; i < kNumLinearInputs; ++i) {
        const InputStats& a = stats.layers[l][static_cast<size_t>(i)];
        const InputStats& b = local.layers[l][static_cast<size_t>(i)];
        EXPECT_EQ(a.tokens, b.tokens);
        EXPECT_TRUE(a.gram == b.gram) << "tp " << tp << " layer " << l << " input " << i;
      }
    part.apply(kCalibrated, &local);
    const auto cached_tp = weights_of(part);
    apply_plan_sequential(parse_plan(kCalibrated, part.config(), "plan.yaml", tp), part.pristine, *part.model, seqs);
    const auto sequential_tp = weights_of(part);
    size_t index = 0;
    for (int64_t l = 0; l < part.config().num_layers; ++l)
      for (Component c : kAllComponents) {
        const ShardGeometry g = shard_geometry(c, part.config(), part.pristine.layout);
        EXPECT_EQ(cached_tp[index], slice(cached[index], g))
            << "cached tp " << tp << " rank " << part.topology.tp_rank << " layer " << l << " " << component_name(c);
        EXPECT_EQ(sequential_tp[index], slice(sequential[index], g))
            << "sequential tp " << tp << " rank " << part.topology.tp_rank << " layer " << l << " "
            << component_name(c);
        ++index;
      }
  }
}

TEST_F(CompressTp, ApplyPlanFileOnAReplicaIsCollective) {
  ASSETS_OR_SKIP(kModel);
  const int rank = world_rank();
  const auto dir = std::filesystem::temp_directory_path() / fmt::format("divprune-compress-tp-{}-{}", ::getppid(), rank);
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "mixed.yaml") << kMixed;
  // Rank 3 alone reads a bad plan: every rank must fail with its message instead of hanging.
  std::ofstream(dir / "bad.yaml") << (rank == 3 ? "components:\n  - {layers: [5], names: [q], quant: int8}\n" : kMixed);

  Part solo(1);
  solo.apply(kMixed);
  const std::vector<float> expected = solo.logits();

  Topology topology = make_topology(2);
  {
    ReplicaOptions options;
    options.model = ::divprune::test::assets_dir() / "tiny-llama2-mha";
    options.threads = 1;
    ModelReplica replica(topology, options);
    const ValidatedPlan plan = load_replica_plan(dir / "mixed.yaml", replica);
    EXPECT_EQ(plan.tp(), 2);
    EXPECT_EQ(plan.plan(), parse_plan(kMixed, replica.config(), "mixed.yaml").plan());
    apply_plan(plan, replica.pristine(), replica.model());
    std::vector<int32_t> ids(32);
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int32_t>((i * 7919 + 13) % 32000);
    KvCache cache = replica.model().make_cache(32);
    Tensor local = replica.model().forward(ids, 0, cache);
    const std::vector<float> got = gather_vocab_slices(replica.model(), local, topology);
    if (topology.tp_rank == 0) {
      EXPECT_LE(relative_error(got, expected), 1e-5);
    }
    try {
      load_replica_plan(dir / "bad.yaml", replica);
      ADD_FAILURE() << "accepted on rank " << rank;
    } catch (const CollectiveError& e) {
      EXPECT_EQ(e.exit_code(), 2);
      EXPECT_THAT(e.what(), HasSubstr("bad.yaml: components[0].layers[0] (line 2): layer 5 is out of range"));
    }
  }
  free_topology(topology);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace divprune
