#include "train/train_checkpoint.hpp"

#include <fmt/format.h>

#include <cstdio>
#include <cstring>
#include <fstream>

#include "core/errors.hpp"

namespace divprune::train {

namespace {

constexpr char kMagic[8] = {'D', 'P', 'T', 'R', 'A', 'I', 'N', '1'};

template <class T>
void put(std::ofstream& out, const T& value) {
  out.write(reinterpret_cast<const char*>(&value), sizeof(T));
}
void put_floats(std::ofstream& out, const std::vector<float>& values) {
  out.write(reinterpret_cast<const char*>(values.data()), static_cast<std::streamsize>(values.size() * sizeof(float)));
}

struct Reader {
  std::ifstream in;
  std::filesystem::path path;
  void raw(void* out, size_t bytes) {
    in.read(static_cast<char*>(out), static_cast<std::streamsize>(bytes));
    if (!in)
      throw InputError(fmt::format("{}: training checkpoint truncated (delete it to start the training over)",
                                   path.string()));
  }
  template <class T>
  T get() {
    T value;
    raw(&value, sizeof(T));
    return value;
  }
  std::vector<float> floats(uint64_t n) {
    std::vector<float> v(n);
    raw(v.data(), n * sizeof(float));
    return v;
  }
};

}  // namespace

void write_train_checkpoint(const std::filesystem::path& path, const std::string& key, const TrainCheckpoint& c) {
  const TrainerState& s = c.resume.state;
  const std::filesystem::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw IoError(fmt::format("{}: cannot write the training checkpoint", tmp.string()));
    out.write(kMagic, sizeof kMagic);
    put(out, static_cast<uint64_t>(key.size()));
    out.write(key.data(), static_cast<std::streamsize>(key.size()));
    put(out, s.step);
    put(out, static_cast<uint64_t>(s.params.size()));
    put_floats(out, s.params);
    put_floats(out, s.m);
    put_floats(out, s.v);
    put(out, static_cast<uint64_t>(c.resume.curve.size()));
    for (const StepStats& e : c.resume.curve) {
      put(out, e.step);
      put(out, e.loss);
      put(out, e.grad_norm);
      put(out, e.lr);
      put(out, e.tokens);
    }
    put(out, c.seconds);
    out.close();
    if (!out) throw IoError(fmt::format("{}: writing the training checkpoint failed", tmp.string()));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw IoError(fmt::format("{}: cannot rename the training checkpoint to {}: {}", tmp.string(), path.string(),
                                    ec.message()));
}

std::optional<TrainCheckpoint> read_train_checkpoint(const std::filesystem::path& path, const std::string& key) {
  if (!std::filesystem::exists(path)) return std::nullopt;
  Reader r{std::ifstream(path, std::ios::binary), path};
  if (!r.in) throw InputError(fmt::format("{}: cannot read the training checkpoint", path.string()));
  char magic[8];
  r.raw(magic, sizeof magic);
  if (std::memcmp(magic, kMagic, sizeof magic) != 0)
    throw InputError(fmt::format("{}: not a divprune training checkpoint", path.string()));
  const uint64_t key_size = r.get<uint64_t>();
  if (key_size > 4096) throw InputError(fmt::format("{}: not a divprune training checkpoint", path.string()));
  std::string found(key_size, '\0');
  r.raw(found.data(), key_size);
  if (found != key)
    throw InputError(fmt::format("{}: a training checkpoint of another run (key {}, expected {}); delete it",
                                 path.string(), found, key));
  TrainCheckpoint c;
  TrainerState& s = c.resume.state;
  s.step = r.get<int64_t>();
  const uint64_t n = r.get<uint64_t>();
  s.params = r.floats(n);
  s.m = r.floats(n);
  s.v = r.floats(n);
  const uint64_t curve = r.get<uint64_t>();
  if (curve != static_cast<uint64_t>(s.step))
    throw InputError(fmt::format("{}: training checkpoint with {} curve entries for {} steps", path.string(), curve, s.step));
  for (uint64_t i = 0; i < curve; ++i) {
    StepStats e;
    e.step = r.get<int64_t>();
    e.loss = r.get<double>();
    e.grad_norm = r.get<double>();
    e.lr = r.get<double>();
    e.tokens = r.get<int64_t>();
    c.resume.curve.push_back(e);
  }
  c.seconds = r.get<double>();
  return c;
}

}  // namespace divprune::train
