// The OWL baseline measures its outlier ratios on the calibration windows when the run has a `calibration:` section
// (issue 17: "on the calibration data if the calibrated-compression work has landed"): the archived ratios equal
// search/allocation.hpp outlier_ratio() of the q/k/v and gate/up inputs of the uncompressed tiny-llama2-trained
// over the same windows (compress/calibration.hpp calibration_sequences), computed here in-process, bit for bit
// (threshold M = 2, so that most layers have outliers to count);
// and they differ from the ratios on data.prompts of the same run without the section.
#include <gtest/gtest.h>

#include "archive/baselines_archive.hpp"
#include "compress/calibration.hpp"
#include "kernels/backend.hpp"
#include "model/checkpoint.hpp"
#include "model/llama.hpp"
#include "model/tokenizer.hpp"
#include "search/allocation.hpp"
#include "tests/search_pipeline/search_util.hpp"

namespace divprune::test {
namespace {

std::vector<double> archived_ratios(const fs::path& archive) {
  const auto record = read_search_baselines(RunArchive(archive));
  EXPECT_TRUE(record);
  return record ? record->owl_outlier_ratio : std::vector<double>{};
}

TEST(OwlCalibration, OutlierRatiosOnTheCalibrationWindows) {
  ASSETS_OR_SKIP("tiny-llama2-trained/config.json");
  const fs::path dir = temp_dir();
  const fs::path text = assets_dir() / "ptb.valid.txt";
  const std::string sections = search_sections(2, 0, 1, "mean_fdt") + "baselines: {kinds: [owl], owl_threshold: 2}\n";
  const std::string calibration = "calibration: {text: " + text.string() + ", sequences: 3, length: 32, seed: 5}\n";
  const auto with = write_config(dir, "with.yaml", search_config(dir / "with.h5", sections + calibration));
  const auto without = write_config(dir, "without.yaml", search_config(dir / "without.h5", sections));
  for (const fs::path& cfg : {with, without}) {
    const auto r = run_config(cfg, "--set stages=[baseline,sample,baselines]");
    ASSERT_EQ(r.exit_code, 0) << cfg << ": " << r.err;
    if (cfg == with) {
      EXPECT_NE(r.err.find("OWL statistics on 3 calibration windows of 32 tokens"), std::string::npos) << r.err;
    }
  }
  const std::vector<double> on_windows = archived_ratios(dir / "with.h5");
  const std::vector<double> on_prompts = archived_ratios(dir / "without.h5");

  // The same statistic in-process: every q/k/v and gate/up input of each layer over the windows, in forward order.
  std::unique_ptr<Checkpoint> checkpoint = open_checkpoint(assets_dir() / "tiny-llama2-trained");
  const ModelConfig& config = checkpoint->config();
  HostWeights pristine = load_host_weights(*checkpoint, make_shard_layout(config, {0, 1}));
  std::unique_ptr<Backend> backend = make_backend(BackendKind::Cpu);
  SoloCommunicator comm;
  LlamaModel model{config, pristine.layout, *backend, comm, upload_weights(*backend, pristine)};
  const auto windows =
      calibration_sequences(Tokenizer((assets_dir() / "llama2-tokenizer.model").string()), CalibrationSpec{text, 3, 32, 5});
  ASSERT_EQ(windows.size(), 3u);
  std::vector<std::vector<float>> values(static_cast<size_t>(config.num_layers));
  model.set_observer([&](int64_t layer, LinearInput input, const Tensor& x) {
    if (input != LinearInput::Attn && input != LinearInput::Mlp) return;
    std::vector<float> host(static_cast<size_t>(x.numel()));
    model.backend().download(x, host);
    values[static_cast<size_t>(layer)].insert(values[static_cast<size_t>(layer)].end(), host.begin(), host.end());
  });
  for (const auto& ids : windows) {
    KvCache cache = model.make_cache(static_cast<int64_t>(ids.size()));
    model.forward(ids, 0, cache);
  }
  model.set_observer({});
  ASSERT_EQ(on_windows.size(), static_cast<size_t>(config.num_layers));
  ASSERT_EQ(on_prompts.size(), on_windows.size());
  bool differ = false;
  for (size_t l = 0; l < on_windows.size(); ++l) {
    EXPECT_EQ(on_windows[l], outlier_ratio(values[l], 2.0)) << "layer " << l;
    differ = differ || on_windows[l] != on_prompts[l];
    std::printf("[ measured ] layer %zu: OWL outlier ratio %.5f on 3 x 32 calibration tokens, %.5f on the prompts\n", l,
                on_windows[l], on_prompts[l]);
  }
  EXPECT_TRUE(differ);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace divprune::test
