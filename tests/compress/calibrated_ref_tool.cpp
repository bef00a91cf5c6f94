// The calibrated operators on a matrix and activations given as files, for the numpy reference test
// (tests/compress/test_calibrated_reference.py, which writes the inputs and checks the outputs):
//   calibrated_ref_tool DIR
// reads DIR/shape.txt ("rows cols tokens"), DIR/w.f32 (rows, cols) and DIR/x.f32 (tokens, cols), little-endian
// float32 row-major; accumulates G = XᵀX in double like compress/calibration.cpp; writes DIR/<case>.f32 (rows,
// cols) for every case below.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "compress/calibrated_operators.hpp"

using namespace divprune;

namespace {

std::vector<float> read_f32(const std::string& path, size_t n) {
  std::vector<float> v(n);
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(n * sizeof(float)));
  if (!in) throw std::runtime_error(path + ": short read");
  return v;
}

void write_f32(const std::string& path, const std::vector<float>& v) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(float)));
  if (!out) throw std::runtime_error(path + ": write failed");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: calibrated_ref_tool DIR\n";
    return 2;
  }
  try {
    const std::string dir = argv[1];
    int64_t rows = 0, cols = 0, tokens = 0;
    std::ifstream(dir + "/shape.txt") >> rows >> cols >> tokens;
    if (rows <= 0 || cols <= 0 || tokens <= 0) throw std::runtime_error("bad shape.txt");
    const HostMatrix w{rows, cols, read_f32(dir + "/w.f32", static_cast<size_t>(rows * cols))};
    const std::vector<float> x = read_f32(dir + "/x.f32", static_cast<size_t>(tokens * cols));
    InputStats stats;
    stats.dim = cols;
    stats.tokens = tokens;
    stats.gram.assign(static_cast<size_t>(cols * cols), 0.0);
    for (int64_t t = 0; t < tokens; ++t)
      for (int64_t i = 0; i < cols; ++i)
        for (int64_t j = 0; j < cols; ++j)
          stats.gram[static_cast<size_t>(i * cols + j)] +=
              static_cast<double>(x[static_cast<size_t>(t * cols + i)]) * x[static_cast<size_t>(t * cols + j)];

    auto run = [&](const std::string& name, auto&& op) {
      HostMatrix m = w;
      op(m);
      write_f32(dir + "/" + name + ".f32", m.data);
    };
    const ObsFactor f = obs_factor(stats, 0.01, false);
    const ObsFactor fa = obs_factor(stats, 0.01, true);
    run("wanda_s50", [&](HostMatrix& m) { wanda_rows(m, stats, 0.5, {}); });
    run("wanda_s30", [&](HostMatrix& m) { wanda_rows(m, stats, 0.3, {}); });
    run("wanda_2_4", [&](HostMatrix& m) { wanda_rows(m, stats, 0.5, {2, 4}); });
    run("wanda_4_8", [&](HostMatrix& m) { wanda_rows(m, stats, 0.5, {4, 8}); });
    run("sparsegpt_s50", [&](HostMatrix& m) { sparsegpt_rows(m, f, 0.5, {}, 128); });
    run("sparsegpt_2_4", [&](HostMatrix& m) { sparsegpt_rows(m, f, 0.5, {2, 4}, 128); });
    run("gptq_b4_g32_sym", [&](HostMatrix& m) { gptq_rows(m, f, {4, 32, true}, 128); });
    run("gptq_b3_gm1_asym", [&](HostMatrix& m) { gptq_rows(m, f, {3, -1, false}, 128); });
    run("gptq_b4_g64_asym_act", [&](HostMatrix& m) { gptq_rows(m, fa, {4, 64, false}, 128); });
    run("gptq_b2_g128_sym", [&](HostMatrix& m) { gptq_rows(m, f, {2, 128, true}, 128); });
    run("rtn_b4_g32_sym", [&](HostMatrix& m) { rtn_rows(m, {4, 32, true}); });
    run("rtn_b3_gm1_asym", [&](HostMatrix& m) { rtn_rows(m, {3, -1, false}); });
    run("sparsegpt_s50_gptq_b4_g32_sym", [&](HostMatrix& m) {
      sparsegpt_rows(m, f, 0.5, {}, 128);
      gptq_rows(m, f, {4, 32, true}, 128);
    });
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "calibrated_ref_tool: " << e.what() << "\n";
    return 1;
  }
}
