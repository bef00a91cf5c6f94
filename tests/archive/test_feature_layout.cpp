// A run resumed on an archive whose plans were written with another feature layout (another divprune version with
// more or fewer features, or a configuration that gained or lost its `calibration:` section) is refused before it
// writes anything: the stored vectors would otherwise be read, and the predictor trained, as the new layout.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "archive/archive.hpp"
#include "archive/h5.hpp"
#include "core/errors.hpp"

namespace divprune {
namespace {

namespace fs = std::filesystem;

ArchiveRunInfo info_with(std::vector<std::string> names) {
  ArchiveRunInfo info;
  info.config_yaml = "stages: [evaluate]\n";
  info.model_path = "model";
  info.model_checksum = "abc";
  info.model_config_json = "{}";
  info.stages = {"evaluate"};
  info.feature_names = std::move(names);
  return info;
}

TEST(ArchiveFeatureLayout, ResumeWithOtherFeatureNamesIsRefused) {
  const fs::path dir = fs::temp_directory_path() / ("divprune-feature-layout-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const RunArchive archive(dir / "run.h5");
  const std::vector<std::string> names = {"layer0.q.sparsity", "layer0.q.magnitude", "layer0.removed"};
  RunArchive writer(archive.path());
  EXPECT_EQ(writer.begin_run(info_with(names)), 1);
  // Before any plan is archived there is no layout to keep: another one is accepted.
  EXPECT_EQ(writer.begin_run(info_with({"x"})), 2);
  writer.write_feature_names(names);
  EXPECT_EQ(writer.begin_run(info_with(names)), 3);  // the same layout resumes
  EXPECT_EQ(writer.begin_run(info_with({})), 4);     // a caller that does not check (no names)

  // A build with one more feature per plan: refused, naming the file, both lengths and the first difference.
  std::vector<std::string> more = names;
  more.insert(more.begin() + 2, "layer0.q.wanda");
  try {
    writer.begin_run(info_with(more));
    FAIL() << "expected an InputError";
  } catch (const InputError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find(archive.path().string()), std::string::npos) << m;
    EXPECT_NE(m.find("holds 3 plan features, this run writes 4"), std::string::npos) << m;
    EXPECT_NE(m.find("index 2: \"layer0.removed\" vs \"layer0.q.wanda\""), std::string::npos) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;  // one line
  }
  // Fewer features (a configuration without the calibrated tail): refused too.
  EXPECT_THROW(writer.begin_run(info_with({names[0], names[1]})), InputError);
  // Nothing of the refused runs was recorded: the next accepted one is run 5.
  EXPECT_EQ(writer.begin_run(info_with(names)), 5);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace divprune
