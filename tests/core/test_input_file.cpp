// core/input_file.hpp: user-named files are checked before they are opened, so a FIFO (which would block a
// reader forever), a directory or a device is refused with one message naming the file and what it is.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/errors.hpp"
#include "tests/support/error_of.hpp"
#include "core/input_file.hpp"

namespace divprune {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

using testing_support::error_of;

class InputFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("divprune-input-file-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    std::ofstream(dir_ / "plain.txt") << "hello\n";
    ASSERT_EQ(::mkfifo((dir_ / "fifo").c_str(), 0600), 0);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(InputFile, ReadsRegularFilesWhole) {
  EXPECT_EQ(read_input_file(dir_ / "plain.txt", "the text"), "hello\n");
  EXPECT_EQ(error_of([&] { require_regular_file(dir_ / "plain.txt", "the text"); }), "no error");
}

TEST_F(InputFile, RefusesWhatIsNotARegularFile) {
  const std::string fifo = (dir_ / "fifo").string();
  EXPECT_EQ(error_of([&] { read_input_file(dir_ / "fifo", "the plan file"); }),
            fifo + ": cannot open the plan file: not a regular file (a FIFO)");
  EXPECT_EQ(error_of([&] { require_regular_file(dir_, "config file"); }),
            dir_.string() + ": cannot open config file: not a regular file (a directory)");
  EXPECT_EQ(error_of([&] { require_regular_file("/dev/null", "text file"); }),
            "/dev/null: cannot open text file: not a regular file (a character device)");
  EXPECT_EQ(error_of([&] { require_regular_file(dir_ / "missing", "text file"); }),
            (dir_ / "missing").string() + ": cannot open text file: no such file or directory");
}

TEST_F(InputFile, OutputPaths) {
  // Missing files and missing folders are fine (created later); an existing regular file is rewritten.
  EXPECT_EQ(error_of([&] { require_output_file_path(dir_ / "new.h5", "the archive"); }), "no error");
  EXPECT_EQ(error_of([&] { require_output_file_path(dir_ / "a" / "b" / "new.h5", "the archive"); }), "no error");
  EXPECT_EQ(error_of([&] { require_output_file_path(dir_ / "plain.txt", "the archive"); }), "no error");
  EXPECT_EQ(error_of([&] { require_output_file_path("/dev/null", "the archive"); }),
            "/dev/null: cannot write the archive: not a regular file (a character device)");
  EXPECT_THAT(error_of([&] { require_output_file_path(dir_ / "fifo", "--out"); }), HasSubstr("(a FIFO)"));
  const fs::path under = dir_ / "plain.txt" / "runs" / "a.h5";
  EXPECT_EQ(error_of([&] { require_output_file_path(under, "the archive"); }),
            under.string() + ": cannot write the archive: " + (dir_ / "plain.txt").string() +
                " is not a directory (a regular file)");
}

}  // namespace
}  // namespace divprune
