#include "compress/calibrated_operators.hpp"
#include "compress/rounding.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/errors.hpp"

namespace divprune {

namespace {

// In place: A (n, n) symmetric positive definite -> its lower Cholesky factor L (A = LLᵀ; upper part zeroed).
void cholesky_lower(std::vector<double>& a, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    double d = a[static_cast<size_t>(j * n + j)];
    for (int64_t k = 0; k < j; ++k) d -= a[static_cast<size_t>(j * n + k)] * a[static_cast<size_t>(j * n + k)];
    if (!(d > 0.0)) throw InputError("calibration: the damped Hessian is not positive definite (raise the damping)");
    const double ljj = std::sqrt(d);
    a[static_cast<size_t>(j * n + j)] = ljj;
    for (int64_t i = j + 1; i < n; ++i) {
      double s = a[static_cast<size_t>(i * n + j)];
      for (int64_t k = 0; k < j; ++k) s -= a[static_cast<size_t>(i * n + k)] * a[static_cast<size_t>(j * n + k)];
      a[static_cast<size_t>(i * n + j)] = s / ljj;
    }
    for (int64_t i = 0; i < j; ++i) a[static_cast<size_t>(i * n + j)] = 0.0;
  }
}

// Lower-triangular L -> L⁻¹ (lower), by forward substitution column by column.
std::vector<double> invert_lower(const std::vector<double>& l, int64_t n) {
  std::vector<double> inv(static_cast<size_t>(n * n), 0.0);
  for (int64_t c = 0; c < n; ++c) {
    inv[static_cast<size_t>(c * n + c)] = 1.0 / l[static_cast<size_t>(c * n + c)];
    for (int64_t i = c + 1; i < n; ++i) {
      double s = 0.0;
      for (int64_t k = c; k < i; ++k) s += l[static_cast<size_t>(i * n + k)] * inv[static_cast<size_t>(k * n + c)];
      inv[static_cast<size_t>(i * n + c)] = -s / l[static_cast<size_t>(i * n + i)];
    }
  }
  return inv;
}

// The selected (lowest score, ties to the lower index) `k` positions of scores[0..n): flags.
void select_lowest(const double* score, int64_t n, int64_t k, uint8_t* out) {
  std::fill(out, out + n, uint8_t{0});
  if (k <= 0) return;
  std::vector<int64_t> idx(static_cast<size_t>(n));
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return score[a] < score[b]; });
  for (int64_t i = 0; i < std::min(k, n); ++i) out[idx[static_cast<size_t>(i)]] = 1;
}

struct Grid {
  double scale = 1.0, zero = 0.0, maxq = 15.0;
  double quant(double x) const {
    const double q = std::clamp(std::nearbyint(x / scale) + zero, 0.0, maxq);
    return scale * (q - zero);
  }
};

Grid make_grid(const double* v, int64_t n, int bits, bool sym) {
  Grid g;
  g.maxq = std::ldexp(1.0, bits) - 1.0;
  double xmin = 0.0, xmax = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    xmin = std::min(xmin, v[i]);
    xmax = std::max(xmax, v[i]);
  }
  if (sym) {
    xmax = std::max(-xmin, xmax);
    xmin = -xmax;
  }
  if (xmax == xmin) {
    g.scale = 1.0;
    g.zero = sym ? (g.maxq + 1.0) / 2.0 : 0.0;
    return g;
  }
  // Symmetric: the largest |v| lands on ±(2^(b-1) - 1) exactly, not on a rounding tie (as 2·max/maxq would put
  // it, where a last-bit difference flips the rounding).
  g.scale = sym ? xmax / (std::ldexp(1.0, bits - 1) - 1.0) : (xmax - xmin) / g.maxq;
  g.zero = sym ? (g.maxq + 1.0) / 2.0 : std::nearbyint(-xmin / g.scale);
  return g;
}

// One row through the lazy-block OBS loop. `row` is in processing order; target(t, row) returns q_t given the
// current row (called once per position, in order, after the block/group hooks of that position ran).
template <class Target>
void obs_row(std::vector<double>& row, const ObsFactor& f, int64_t block, const Target& target) {
  const int64_t d = f.dim;
  std::vector<double> err(static_cast<size_t>(block));
  for (int64_t b0 = 0; b0 < d; b0 += block) {
    const int64_t b1 = std::min(b0 + block, d);
    for (int64_t t = b0; t < b1; ++t) {
      const double* ut = f.u.data() + t * d;
      const double q = target(t, row, b0, b1);
      const double e = (row[static_cast<size_t>(t)] - q) / ut[t];
      err[static_cast<size_t>(t - b0)] = e;
      row[static_cast<size_t>(t)] = q;
      for (int64_t k = t + 1; k < b1; ++k) row[static_cast<size_t>(k)] -= e * ut[k];
    }
    // Lazy update of the columns after the block.
    for (int64_t t = b0; t < b1; ++t) {
      const double e = err[static_cast<size_t>(t - b0)];
      const double* ut = f.u.data() + t * d;
      for (int64_t k = b1; k < d; ++k) row[static_cast<size_t>(k)] -= e * ut[k];
    }
  }
}

void check_width(const HostMatrix& w, int64_t dim, const char* op) {
  EXPECTS(w.cols == dim && static_cast<int64_t>(w.data.size()) == w.rows * w.cols,
          fmt::format("{}: the matrix has {} columns, the calibration input {}", op, w.cols, dim));
}

}  // namespace

ObsFactor obs_factor(const InputStats& stats, double damp, bool act_order) {
  const int64_t d = stats.dim;
  ObsFactor f;
  f.dim = d;
  f.dead.assign(static_cast<size_t>(d), 0);
  std::vector<double> diag(static_cast<size_t>(d));
  for (int64_t j = 0; j < d; ++j) {
    diag[static_cast<size_t>(j)] = 2.0 * stats.sumsq(j);
    if (diag[static_cast<size_t>(j)] == 0.0) {
      f.dead[static_cast<size_t>(j)] = 1;
      diag[static_cast<size_t>(j)] = 1.0;
    }
  }
  f.order.resize(static_cast<size_t>(d));
  std::iota(f.order.begin(), f.order.end(), 0);
  if (act_order)
    std::stable_sort(f.order.begin(), f.order.end(), [&](int64_t a, int64_t b) { return diag[a] > diag[b]; });
  const double lambda = damp * std::accumulate(diag.begin(), diag.end(), 0.0) / static_cast<double>(d);
  // H in processing order, damped.
  std::vector<double> h(static_cast<size_t>(d * d));
  for (int64_t a = 0; a < d; ++a)
    for (int64_t b = 0; b < d; ++b) {
      const int64_t i = f.order[static_cast<size_t>(a)], j = f.order[static_cast<size_t>(b)];
      h[static_cast<size_t>(a * d + b)] =
          i == j ? diag[static_cast<size_t>(i)] + lambda
                 : (f.dead[static_cast<size_t>(i)] || f.dead[static_cast<size_t>(j)] ? 0.0
                                                                                     : 2.0 * stats.gram[static_cast<size_t>(i * d + j)]);
    }
  cholesky_lower(h, d);
  const std::vector<double> linv = invert_lower(h, d);
  // H⁻¹ = L⁻ᵀ L⁻¹.
  std::vector<double> hinv(static_cast<size_t>(d * d), 0.0);
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = 0; j <= i; ++j) {
      double s = 0.0;
      for (int64_t k = i; k < d; ++k) s += linv[static_cast<size_t>(k * d + i)] * linv[static_cast<size_t>(k * d + j)];
      hinv[static_cast<size_t>(i * d + j)] = s;
      hinv[static_cast<size_t>(j * d + i)] = s;
    }
  cholesky_lower(hinv, d);  // H⁻¹ = L₂L₂ᵀ: U = L₂ᵀ
  f.u.assign(static_cast<size_t>(d * d), 0.0);
  for (int64_t i = 0; i < d; ++i)
    for (int64_t j = i; j < d; ++j) f.u[static_cast<size_t>(i * d + j)] = hinv[static_cast<size_t>(j * d + i)];
  return f;
}

void wanda_rows(HostMatrix& w, const InputStats& stats, double sparsity, NmPattern nm) {
  check_width(w, stats.dim, "wanda");
  const int64_t d = w.cols;
  std::vector<double> norm(static_cast<size_t>(d)), score(static_cast<size_t>(d));
  for (int64_t j = 0; j < d; ++j) norm[static_cast<size_t>(j)] = std::sqrt(stats.sumsq(j));
  std::vector<uint8_t> pruned(static_cast<size_t>(d));
  const int64_t k = round_count(sparsity * static_cast<double>(d));
  for (int64_t i = 0; i < w.rows; ++i) {
    float* row = w.data.data() + i * d;
    for (int64_t j = 0; j < d; ++j) score[static_cast<size_t>(j)] = std::abs(static_cast<double>(row[j])) * norm[static_cast<size_t>(j)];
    if (nm.structured()) {
      for (int64_t j = 0; j < d; j += nm.m) select_lowest(score.data() + j, nm.m, nm.m - nm.n, pruned.data() + j);
    } else {
      select_lowest(score.data(), d, k, pruned.data());
    }
    for (int64_t j = 0; j < d; ++j)
      if (pruned[static_cast<size_t>(j)]) row[j] = 0.0f;
  }
}

void sparsegpt_rows(HostMatrix& w, const ObsFactor& f, double sparsity, NmPattern nm, int64_t block) {
  check_width(w, f.dim, "sparsegpt");
  EXPECTS(f.order.size() == static_cast<size_t>(f.dim) && std::is_sorted(f.order.begin(), f.order.end()),
          "sparsegpt processes the columns in their natural order");
  EXPECTS(!nm.structured() || block % nm.m == 0, "N:M groups must not straddle the lazy blocks");
  const int64_t d = f.dim;
  std::vector<double> row(static_cast<size_t>(d)), score(static_cast<size_t>(d));
  std::vector<uint8_t> pruned(static_cast<size_t>(d));
  auto score_range = [&](int64_t a, int64_t b) {
    for (int64_t t = a; t < b; ++t) {
      const double u = f.u[static_cast<size_t>(t * d + t)];
      score[static_cast<size_t>(t)] = row[static_cast<size_t>(t)] * row[static_cast<size_t>(t)] / (u * u);
    }
  };
  for (int64_t i = 0; i < w.rows; ++i) {
    float* wr = w.data.data() + i * d;
    for (int64_t j = 0; j < d; ++j) row[static_cast<size_t>(j)] = f.dead[static_cast<size_t>(j)] ? 0.0 : wr[j];
    obs_row(row, f, block, [&](int64_t t, const std::vector<double>&, int64_t b0, int64_t b1) {
      if (nm.structured()) {
        if (t % nm.m == 0) {
          score_range(t, t + nm.m);
          select_lowest(score.data() + t, nm.m, nm.m - nm.n, pruned.data() + t);
        }
      } else if (t == b0) {
        score_range(b0, b1);
        select_lowest(score.data() + b0, b1 - b0, round_count(sparsity * static_cast<double>(b1 - b0)),
                      pruned.data() + b0);
      }
      return pruned[static_cast<size_t>(t)] ? 0.0 : row[static_cast<size_t>(t)];
    });
    for (int64_t j = 0; j < d; ++j) wr[j] = static_cast<float>(row[static_cast<size_t>(j)]);
  }
}

void gptq_rows(HostMatrix& w, const ObsFactor& f, const GridSpec& spec, int64_t block) {
  check_width(w, f.dim, "gptq");
  const int64_t d = f.dim;
  const int64_t gs = spec.group_size > 0 ? spec.group_size : d;
  EXPECTS(d % gs == 0, "the group size divides the columns");
  std::vector<double> row(static_cast<size_t>(d));
  std::vector<uint8_t> keep_zero(static_cast<size_t>(d));
  for (int64_t i = 0; i < w.rows; ++i) {
    float* wr = w.data.data() + i * d;
    for (int64_t t = 0; t < d; ++t) {
      const int64_t j = f.order[static_cast<size_t>(t)];
      row[static_cast<size_t>(t)] = f.dead[static_cast<size_t>(j)] ? 0.0 : wr[j];
      keep_zero[static_cast<size_t>(t)] = wr[j] == 0.0f;  // pruned before: stays pruned
    }
    Grid grid;
    obs_row(row, f, block, [&](int64_t t, const std::vector<double>& r, int64_t, int64_t) {
      if (t % gs == 0) grid = make_grid(r.data() + t, gs, spec.bits, spec.sym);
      return keep_zero[static_cast<size_t>(t)] ? 0.0 : grid.quant(r[static_cast<size_t>(t)]);
    });
    for (int64_t t = 0; t < d; ++t) wr[f.order[static_cast<size_t>(t)]] = static_cast<float>(row[static_cast<size_t>(t)]);
  }
}

void rtn_rows(HostMatrix& w, const GridSpec& spec) {
  const int64_t d = w.cols;
  const int64_t gs = spec.group_size > 0 ? spec.group_size : d;
  EXPECTS(d % gs == 0, "the group size divides the columns");
  std::vector<double> v(static_cast<size_t>(gs));
  for (int64_t i = 0; i < w.rows; ++i) {
    float* wr = w.data.data() + i * d;
    for (int64_t g0 = 0; g0 < d; g0 += gs) {
      for (int64_t j = 0; j < gs; ++j) v[static_cast<size_t>(j)] = wr[g0 + j];
      const Grid grid = make_grid(v.data(), gs, spec.bits, spec.sym);
      for (int64_t j = 0; j < gs; ++j) wr[g0 + j] = static_cast<float>(grid.quant(v[static_cast<size_t>(j)]));
    }
  }
}

namespace {

// Runs `op` on whole rows: directly on a column-parallel shard, on the all-gathered full matrix of a row-parallel
// one (every rank computes the same full matrix and keeps its columns).
template <class Op>
void on_whole_rows(HostMatrix& m, const ShardGeometry& g, Communicator& comm, const Op& op) {
  if (g.rows_whole()) {
    op(m);
    return;
  }
  const int tp = comm.size();
  EXPECTS(g.cols * tp == g.full_cols && g.col0 == comm.rank() * g.cols, "row-parallel shards are equal blocks");
  std::vector<float> gathered(static_cast<size_t>(m.rows * g.full_cols));
  comm.allgather(m.data, gathered);
  HostMatrix full{m.rows, g.full_cols, std::vector<float>(static_cast<size_t>(m.rows * g.full_cols))};
  for (int r = 0; r < tp; ++r)
    for (int64_t i = 0; i < m.rows; ++i)
      std::copy_n(gathered.begin() + (r * m.rows + i) * g.cols, g.cols, full.data.begin() + i * g.full_cols + r * g.cols);
  op(full);
  for (int64_t i = 0; i < m.rows; ++i)
    std::copy_n(full.data.begin() + i * g.full_cols + g.col0, g.cols, m.data.begin() + i * g.cols);
}

constexpr double kDamp = 0.01;
constexpr int64_t kBlock = 128;

}  // namespace

const ObsFactor& ObsCache::get(const InputStats& stats, bool act_order) {
  const auto key = std::make_pair(&stats, act_order);
  auto it = factors_.find(key);
  if (it == factors_.end()) it = factors_.emplace(key, obs_factor(stats, kDamp, act_order)).first;
  return it->second;
}

void apply_calibrated_prune(HostMatrix& m, const ShardGeometry& g, const PruneSpec& p, const InputStats& stats,
                            ObsCache& cache, Communicator& comm) {
  if (!is_calibrated(p.method) || p.sparsity == 0.0) return;
  const NmPattern nm{p.pattern_n, p.pattern_m};
  if (p.method == PruneMethod::Wanda) {
    on_whole_rows(m, g, comm, [&](HostMatrix& w) { wanda_rows(w, stats, p.sparsity, nm); });
  } else {
    const ObsFactor& f = cache.get(stats, false);
    on_whole_rows(m, g, comm, [&](HostMatrix& w) { sparsegpt_rows(w, f, p.sparsity, nm, kBlock); });
  }
}

void apply_calibrated_quant(HostMatrix& m, const ShardGeometry& g, const ComponentPlan& cp, const InputStats& stats,
                            ObsCache& cache, Communicator& comm) {
  const QuantParams& q = cp.quant_params;
  const GridSpec grid{q.bits, q.group_size, q.sym};
  if (cp.quant == QuantMethod::Rtn) {
    on_whole_rows(m, g, comm, [&](HostMatrix& w) { rtn_rows(w, grid); });
  } else if (cp.quant == QuantMethod::Gptq) {
    const ObsFactor& f = cache.get(stats, q.act_order);
    on_whole_rows(m, g, comm, [&](HostMatrix& w) { gptq_rows(w, f, grid, kBlock); });
  }
}

}  // namespace divprune
