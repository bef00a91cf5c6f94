#include "compress/operators.hpp"
#include "compress/rounding.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/errors.hpp"

namespace divprune {

ShardGeometry shard_geometry(Component c, const ModelConfig& config, const ShardLayout& layout) {
  const auto [full_rows, full_cols] = component_shape(c, config);
  ShardGeometry g;
  g.full_rows = full_rows;
  g.full_cols = full_cols;
  Range rows{0, full_rows}, cols{0, full_cols};
  switch (c) {
    case Component::Q: rows = layout.q_rows; break;
    case Component::K:
    case Component::V: rows = layout.kv_rows; break;
    case Component::O: cols = layout.q_rows; break;
    case Component::Gate:
    case Component::Up: rows = layout.ffn_rows; break;
    case Component::Down: cols = layout.ffn_rows; break;
  }
  g.row0 = rows.begin;
  g.rows = rows.size();
  g.col0 = cols.begin;
  g.cols = cols.size();
  return g;
}

namespace {

// Magnitude bits of w: for non-negative floats the IEEE bit pattern orders like the value, +0 and -0 are equal.
inline uint64_t magnitude_bits(float w) { return std::bit_cast<uint32_t>(w) & 0x7fffffffu; }

// A selection result: key is selected iff (key >> shift) <= prefix. `any` false selects nothing.
struct KeyThreshold {
  bool any = false;
  int shift = 0;
  uint64_t prefix = 0;
  bool selects(uint64_t key) const { return any && (key >> shift) <= prefix; }
};

// Distributed exact selection of the k smallest keys in every segment. Keys are unique inside a segment (they
// carry an index), each segment holds `per_segment` keys spread over the ranks of `comm`, and
// for_each(f) calls f(segment, key) for every local key. Radix select, most significant digit first: one
// histogram per active segment per digit, summed over ranks; a segment is done as soon as the remaining count
// fills its digit's bin exactly, which always happens by the last digit because keys are unique.
// With `keep_candidates` the keys of the chosen bins are copied after the first digit and later digits scan only
// them (good with wide digits, whose first bin holds few keys); without, every digit rescans the local keys
// (no extra memory: with 8-bit digits the first bin, sign and exponent bits, holds nearly every key).
template <class ForEach>
std::vector<KeyThreshold> select_smallest(int64_t segments, int64_t k, int64_t per_segment, const ForEach& for_each,
                                          Communicator& comm, int digit_bits, bool keep_candidates) {
  std::vector<KeyThreshold> out(static_cast<size_t>(segments));
  if (k <= 0) return out;
  if (k >= per_segment) {
    for (KeyThreshold& t : out) t = {true, 0, std::numeric_limits<uint64_t>::max()};
    return out;
  }
  const int64_t bins = int64_t{1} << digit_bits;
  const uint64_t mask = static_cast<uint64_t>(bins - 1);
  struct State {
    uint64_t prefix = 0;  // key >> shift of the bin chosen at the previous level
    int64_t need = 0;     // keys still to select inside that bin
  };
  std::vector<State> state(static_cast<size_t>(segments), State{0, k});
  std::vector<int64_t> active(static_cast<size_t>(segments));
  std::iota(active.begin(), active.end(), 0);
  std::vector<int64_t> slot(static_cast<size_t>(segments), -1);  // segment -> index in `active`, or -1
  std::vector<std::pair<int64_t, uint64_t>> candidates;          // (segment, key) inside the chosen bins
  std::vector<double> hist;
  for (int level = 0; level * digit_bits < 64 && !active.empty(); ++level) {
    const int shift = 64 - digit_bits * (level + 1);
    std::fill(slot.begin(), slot.end(), -1);
    for (size_t i = 0; i < active.size(); ++i) slot[static_cast<size_t>(active[i])] = static_cast<int64_t>(i);
    hist.assign(active.size() * static_cast<size_t>(bins), 0.0);
    if (level == 0) {
      for_each([&](int64_t seg, uint64_t key) { hist[static_cast<size_t>(slot[seg] * bins + static_cast<int64_t>(key >> shift))] += 1.0; });
    } else if (!keep_candidates) {
      const int above = shift + digit_bits;  // the bits chosen so far are key >> above
      for_each([&](int64_t seg, uint64_t key) {
        const int64_t at = slot[static_cast<size_t>(seg)];
        if (at >= 0 && (key >> above) == state[static_cast<size_t>(seg)].prefix)
          hist[static_cast<size_t>(at * bins + static_cast<int64_t>((key >> shift) & mask))] += 1.0;
      });
    } else {
      for (const auto& [seg, key] : candidates)
        hist[static_cast<size_t>(slot[seg] * bins + static_cast<int64_t>((key >> shift) & mask))] += 1.0;
    }
    comm.allreduce_sum(std::span<double>(hist));
    std::vector<int64_t> still;
    for (size_t i = 0; i < active.size(); ++i) {
      const int64_t seg = active[i];
      State& s = state[static_cast<size_t>(seg)];
      const double* h = hist.data() + i * static_cast<size_t>(bins);
      double below = 0.0;
      int64_t d = 0;
      while (below + h[d] < static_cast<double>(s.need)) below += h[d++];
      EXPECTS(d < bins, "radix select ran past the last bin (counts differ across ranks?)");
      s.need -= static_cast<int64_t>(below);
      const uint64_t prefix = (level == 0 ? 0 : s.prefix << digit_bits) | static_cast<uint64_t>(d);
      if (static_cast<double>(s.need) == h[d]) {
        out[static_cast<size_t>(seg)] = {true, shift, prefix};
        slot[static_cast<size_t>(seg)] = -1;
      } else {
        s.prefix = prefix;
        still.push_back(seg);
      }
    }
    // Keep the keys of the chosen bins of segments still searching.
    auto keep = [&](int64_t seg, uint64_t key) {
      return slot[static_cast<size_t>(seg)] >= 0 && (key >> shift) == state[static_cast<size_t>(seg)].prefix;
    };
    if (!keep_candidates) {
      // the next level rescans
    } else if (level == 0) {
      for_each([&](int64_t seg, uint64_t key) {
        if (keep(seg, key)) candidates.emplace_back(seg, key);
      });
    } else {
      std::erase_if(candidates, [&](const std::pair<int64_t, uint64_t>& c) { return !keep(c.first, c.second); });
    }
    active = std::move(still);
  }
  EXPECTS(active.empty(), "radix select did not converge (duplicate keys?)");
  return out;
}

// Ranks indices 0..n-1 by score ascending, ties to the lower index.
std::vector<int64_t> order_by_score(const std::vector<double>& score) {
  std::vector<int64_t> order(score.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return score[a] < score[b]; });
  return order;
}

double row_squares(const HostMatrix& m, int64_t r) {
  double s = 0.0;
  const float* p = m.data.data() + r * m.cols;
  for (int64_t j = 0; j < m.cols; ++j) s += static_cast<double>(p[j]) * p[j];
  return s;
}

double column_squares(const HostMatrix& m, int64_t c) {
  double s = 0.0;
  for (int64_t i = 0; i < m.rows; ++i) {
    const double v = m.data[static_cast<size_t>(i * m.cols + c)];
    s += v * v;
  }
  return s;
}

void check_shard(const HostMatrix& m, const ShardGeometry& g) {
  EXPECTS(m.rows == g.rows && m.cols == g.cols && static_cast<int64_t>(m.data.size()) == m.rows * m.cols,
          fmt::format("shard [{}, {}] does not match its geometry [{}, {}]", m.rows, m.cols, g.rows, g.cols));
}

}  // namespace

void prune_magnitude(HostMatrix& m, const ShardGeometry& g, double sparsity, Communicator& comm) {
  check_shard(m, g);
  const int64_t n = g.full_rows * g.full_cols;
  EXPECTS(n <= (int64_t{1} << 32), "magnitude selection keys hold flat indices below 2^32");
  const int64_t k = round_count(sparsity * static_cast<double>(n));
  auto for_each = [&](auto&& f) {
    for (int64_t i = 0; i < m.rows; ++i) {
      const float* row = m.data.data() + i * m.cols;
      const uint64_t base = static_cast<uint64_t>((g.row0 + i) * g.full_cols + g.col0);
      for (int64_t j = 0; j < m.cols; ++j) f(int64_t{0}, (magnitude_bits(row[j]) << 32) | (base + static_cast<uint64_t>(j)));
    }
  };
  const KeyThreshold t = select_smallest(1, k, n, for_each, comm, 16, true)[0];
  if (!t.any) return;
  for (int64_t i = 0; i < m.rows; ++i) {
    float* row = m.data.data() + i * m.cols;
    const uint64_t base = static_cast<uint64_t>((g.row0 + i) * g.full_cols + g.col0);
    for (int64_t j = 0; j < m.cols; ++j)
      if (t.selects((magnitude_bits(row[j]) << 32) | (base + static_cast<uint64_t>(j)))) row[j] = 0.0f;
  }
}

void prune_magnitude_rows(HostMatrix& m, const ShardGeometry& g, double sparsity, Communicator& comm) {
  check_shard(m, g);
  const int64_t k = round_count(sparsity * static_cast<double>(g.full_cols));
  auto key = [&](int64_t j, float w) { return (magnitude_bits(w) << 32) | static_cast<uint64_t>(g.col0 + j); };
  if (g.rows_whole()) {
    // Whole rows on this rank: an exact local selection per row.
    std::vector<uint64_t> keys(static_cast<size_t>(m.cols));
    if (k <= 0) return;
    for (int64_t i = 0; i < m.rows; ++i) {
      float* row = m.data.data() + i * m.cols;
      for (int64_t j = 0; j < m.cols; ++j) keys[static_cast<size_t>(j)] = key(j, row[j]);
      if (k >= m.cols) {
        std::fill(row, row + m.cols, 0.0f);
        continue;
      }
      std::nth_element(keys.begin(), keys.begin() + (k - 1), keys.end());
      const uint64_t kth = keys[static_cast<size_t>(k - 1)];
      for (int64_t j = 0; j < m.cols; ++j)
        if (key(j, row[j]) <= kth) row[j] = 0.0f;
    }
    return;
  }
  // Rows split across the ranks (row-parallel o/down): a distributed select per row.
  auto for_each = [&](auto&& f) {
    for (int64_t i = 0; i < m.rows; ++i) {
      const float* row = m.data.data() + i * m.cols;
      for (int64_t j = 0; j < m.cols; ++j) f(i, key(j, row[j]));
    }
  };
  const std::vector<KeyThreshold> t = select_smallest(m.rows, k, g.full_cols, for_each, comm, 8, false);
  for (int64_t i = 0; i < m.rows; ++i) {
    float* row = m.data.data() + i * m.cols;
    for (int64_t j = 0; j < m.cols; ++j)
      if (t[static_cast<size_t>(i)].selects(key(j, row[j]))) row[j] = 0.0f;
  }
}

void prune_two_four(HostMatrix& m, const ShardGeometry& g) {
  check_shard(m, g);
  if (g.full_cols % 4 != 0 || g.col0 % 4 != 0 || g.cols % 4 != 0)
    throw InputError(fmt::format("2:4 needs groups of 4 columns inside each shard: the matrix has {} columns, this "
                                 "shard holds columns [{}, {})", g.full_cols, g.col0, g.col0 + g.cols));
  for (int64_t i = 0; i < m.rows; ++i) {
    float* row = m.data.data() + i * m.cols;
    for (int64_t j = 0; j < m.cols; j += 4) {
      // Order the 4 entries by (|w|, column) and zero the first two.
      uint64_t keys[4];
      for (int e = 0; e < 4; ++e) keys[e] = (magnitude_bits(row[j + e]) << 2) | static_cast<uint64_t>(e);
      std::sort(keys, keys + 4);
      row[j + static_cast<int64_t>(keys[0] & 3)] = 0.0f;
      row[j + static_cast<int64_t>(keys[1] & 3)] = 0.0f;
    }
  }
}

void quantize_int8_rows(HostMatrix& m, const ShardGeometry& g, Communicator& comm) {
  check_shard(m, g);
  std::vector<float> maxabs(static_cast<size_t>(m.rows), 0.0f);
  for (int64_t i = 0; i < m.rows; ++i) {
    const float* row = m.data.data() + i * m.cols;
    float mx = 0.0f;
    for (int64_t j = 0; j < m.cols; ++j) mx = std::max(mx, std::abs(row[j]));
    maxabs[static_cast<size_t>(i)] = mx;
  }
  if (!g.rows_whole()) comm.allreduce_max(maxabs);  // row-parallel: each rank holds a piece of every row
  for (int64_t i = 0; i < m.rows; ++i) {
    const float scale = maxabs[static_cast<size_t>(i)] / 127.0f;
    if (!(scale > 0.0f)) continue;  // an all-zero row stays zero
    float* row = m.data.data() + i * m.cols;
    for (int64_t j = 0; j < m.cols; ++j) {
      // nearbyint rounds half to even under the default rounding mode.
      const float q = std::clamp(std::nearbyint(row[j] / scale), -127.0f, 127.0f);
      row[j] = q * scale;
    }
  }
}

std::vector<int64_t> rank_kv_heads(const HostLayer& layer, const ModelConfig& config, const ShardLayout& layout,
                                   Communicator& comm) {
  const int64_t D = config.head_dim, group = config.num_heads / config.num_kv_heads;
  std::vector<double> score(static_cast<size_t>(config.num_kv_heads), 0.0);
  const HostMatrix& q = layer.linear.q;
  const HostMatrix& k = layer.linear.k;
  const HostMatrix& v = layer.linear.v;
  const HostMatrix& o = layer.linear.o;
  const int64_t first = layout.kv_rows.begin / D;  // global index of the first local KV head
  for (int64_t h = 0; h < layout.kv_heads; ++h) {
    double s = 0.0;
    for (int64_t r = h * group * D; r < (h + 1) * group * D; ++r) s += row_squares(q, r) + column_squares(o, r);
    for (int64_t r = h * D; r < (h + 1) * D; ++r) s += row_squares(k, r) + row_squares(v, r);
    score[static_cast<size_t>(first + h)] = s;
  }
  comm.allreduce_sum(std::span<double>(score));  // each head is non-zero on exactly one rank: exact
  return order_by_score(score);
}

std::vector<int64_t> rank_channels(const HostLayer& layer, const ModelConfig& config, const ShardLayout& layout,
                                   Communicator& comm) {
  std::vector<double> score(static_cast<size_t>(config.intermediate_size), 0.0);
  const HostMatrix& gate = layer.linear.gate;
  const HostMatrix& up = layer.linear.up;
  const HostMatrix& down = layer.linear.down;
  for (int64_t f = 0; f < layout.ffn_rows.size(); ++f)
    score[static_cast<size_t>(layout.ffn_rows.begin + f)] = row_squares(gate, f) + row_squares(up, f) + column_squares(down, f);
  comm.allreduce_sum(std::span<double>(score));
  return order_by_score(score);
}

void zero_kv_heads(HostMatrix& m, Component c, std::span<const int64_t> kv_heads, const ModelConfig& config,
                   const ShardLayout& layout) {
  const int64_t D = config.head_dim, group = config.num_heads / config.num_kv_heads;
  const bool kv = c == Component::K || c == Component::V;
  const Range local = kv ? layout.kv_rows : layout.q_rows;
  const int64_t width = (kv ? 1 : group) * D;  // rows (q, k, v) or columns (o) per KV head
  for (int64_t h : kv_heads) {
    const int64_t begin = std::max(h * width, local.begin), end = std::min((h + 1) * width, local.end);
    for (int64_t x = begin; x < end; ++x) {
      const int64_t lx = x - local.begin;
      if (c == Component::O) {
        for (int64_t i = 0; i < m.rows; ++i) m.data[static_cast<size_t>(i * m.cols + lx)] = 0.0f;
      } else {
        std::fill_n(m.data.begin() + lx * m.cols, m.cols, 0.0f);
      }
    }
  }
}

void zero_channels(HostMatrix& m, Component c, std::span<const int64_t> channels, const ShardLayout& layout) {
  const Range local = layout.ffn_rows;
  for (int64_t f : channels) {
    if (f < local.begin || f >= local.end) continue;
    const int64_t lf = f - local.begin;
    if (c == Component::Down) {
      for (int64_t i = 0; i < m.rows; ++i) m.data[static_cast<size_t>(i * m.cols + lf)] = 0.0f;
    } else {
      std::fill_n(m.data.begin() + lf * m.cols, m.cols, 0.0f);
    }
  }
}

}  // namespace divprune
