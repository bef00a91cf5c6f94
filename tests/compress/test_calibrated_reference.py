#!/usr/bin/env python3
"""The calibrated operators of divprune (src/compress/calibrated_operators.hpp) against an independent float64
numpy implementation written here from the papers:

  Wanda     (Sun et al. 2023)           score |W_ij| * ||X_j||_2, per output row, unstructured or N:M
  SparseGPT (Frantar & Alistarh 2023)   Algorithm 1: OBS with H = 2 X^T X + 1% mean-diagonal damping, U = chol(H^-1)
                                        upper, lazy blocks of 128 columns, adaptive per-row mask selection
  GPTQ      (Frantar et al. 2022)       Algorithm 1 with the same U, groups, sym/asym grid, act-order
  RTN                                   the same grid without error feedback

usage: test_calibrated_reference.py TOOL WORKDIR   (TOOL: the built calibrated_ref_tool)

Checks: wanda and N:M masks identical; sparsegpt / gptq / rtn matrices within 1e-5 of the largest |w| (the C++
result is rounded to float32) and the layer reconstruction error ||WX - W'X||^2 equal to 1e-6 relative.
"""
import os
import subprocess
import sys

import numpy as np

ROWS, COLS, TOKENS = 48, 256, 512
DAMP, BLOCK = 0.01, 128


def wanda(w, gram, sparsity=None, nm=None):
    norm = np.sqrt(np.diag(gram))
    score = np.abs(w) * norm[None, :]
    out = w.copy()
    for i in range(w.shape[0]):
        if nm:
            n, m = nm
            for g in range(0, w.shape[1], m):
                order = np.argsort(score[i, g:g + m], kind="stable")
                out[i, g + order[:m - n]] = 0.0
        else:
            k = int(round(sparsity * w.shape[1]))
            order = np.argsort(score[i], kind="stable")
            out[i, order[:k]] = 0.0
    return out


def obs_setup(gram, act_order=False):
    h = 2.0 * gram.copy()
    dead = np.diag(h) == 0.0
    h[dead, :] = 0.0
    h[:, dead] = 0.0
    h[dead, dead] = 1.0
    perm = np.argsort(-np.diag(h), kind="stable") if act_order else np.arange(h.shape[0])
    h = h[np.ix_(perm, perm)]
    h += DAMP * np.mean(np.diag(h)) * np.eye(h.shape[0])
    u = np.linalg.cholesky(np.linalg.inv(h)).T  # H^-1 = U^T U, U upper
    return u, dead, perm


def grid(v, bits, sym):
    """(scale, zero) per row of v (rows, group)."""
    maxq = 2.0 ** bits - 1
    xmin = np.minimum(v.min(axis=1), 0.0)
    xmax = np.maximum(v.max(axis=1), 0.0)
    if sym:
        xmax = np.maximum(-xmin, xmax)
        xmin = -xmax
    flat = xmax == xmin
    # symmetric: max|v| on the level 2^(b-1) - 1 exactly
    denom = (2.0 ** (bits - 1) - 1) if sym else maxq
    scale = np.where(flat, 1.0, (xmax if sym else xmax - xmin) / np.where(flat, 1.0, denom))
    if sym:
        zero = np.full_like(scale, (maxq + 1) / 2)
    else:
        zero = np.where(flat, 0.0, np.round(-xmin / scale))
    return scale, zero, maxq


def quant(x, scale, zero, maxq):
    return scale * (np.clip(np.round(x / scale) + zero, 0, maxq) - zero)


def obs(w, u, block, target):
    """Generic lazy-block OBS loop over all rows at once; target(t, w, b0, b1) -> q column."""
    w = w.copy()
    d = w.shape[1]
    for b0 in range(0, d, block):
        b1 = min(b0 + block, d)
        err = np.zeros((w.shape[0], b1 - b0))
        for t in range(b0, b1):
            q = target(t, w, b0, b1)
            e = (w[:, t] - q) / u[t, t]
            err[:, t - b0] = e
            w[:, t] = q
            w[:, t + 1:b1] -= np.outer(e, u[t, t + 1:b1])
        w[:, b1:] -= err @ u[b0:b1, b1:]
    return w


def sparsegpt(w, gram, sparsity=None, nm=None):
    u, dead, _ = obs_setup(gram)
    w = w.copy()
    w[:, dead] = 0.0
    pruned = np.zeros(w.shape, dtype=bool)

    def select(cur, a, b, k):
        score = cur[:, a:b] ** 2 / np.diag(u)[a:b][None, :] ** 2
        order = np.argsort(score, axis=1, kind="stable")[:, :k]
        pruned[:, a:b] = False
        np.put_along_axis(pruned[:, a:b], order, True, axis=1)

    def target(t, cur, b0, b1):
        if nm:
            n, m = nm
            if t % m == 0:
                select(cur, t, t + m, m - n)
        elif t == b0:
            select(cur, b0, b1, int(round(sparsity * (b1 - b0))))
        return np.where(pruned[:, t], 0.0, cur[:, t])

    return obs(w, u, BLOCK, target)


def gptq(w, gram, bits, group, sym, act_order=False):
    u, dead, perm = obs_setup(gram, act_order)
    w = w.copy()
    w[:, dead] = 0.0
    keep_zero = (w == 0.0)[:, perm]
    wp = w[:, perm]
    gs = group if group > 0 else w.shape[1]
    params = {}

    def target(t, cur, b0, b1):
        if t % gs == 0:
            params["g"] = grid(cur[:, t:t + gs], bits, sym)
        scale, zero, maxq = params["g"]
        return np.where(keep_zero[:, t], 0.0, quant(cur[:, t], scale, zero, maxq))

    out = obs(wp, u, BLOCK, target)
    res = np.empty_like(out)
    res[:, perm] = out
    return res


def rtn(w, bits, group, sym):
    gs = group if group > 0 else w.shape[1]
    out = w.copy()
    for g in range(0, w.shape[1], gs):
        scale, zero, maxq = grid(w[:, g:g + gs], bits, sym)
        out[:, g:g + gs] = quant(w[:, g:g + gs], scale[:, None], zero[:, None], maxq)
    return out


def main():
    tool, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    rng = np.random.default_rng(16)
    w = rng.standard_normal((ROWS, COLS)).astype(np.float32)
    # Correlated activations with uneven column scales (what makes calibration matter), one dead column.
    mix = rng.standard_normal((COLS, COLS)) * 0.3 + np.eye(COLS)
    x = (rng.standard_normal((TOKENS, COLS)) @ mix * rng.uniform(0.1, 3.0, COLS)).astype(np.float32)
    x[:, 7] = 0.0
    with open(os.path.join(work, "shape.txt"), "w") as f:
        f.write(f"{ROWS} {COLS} {TOKENS}\n")
    w.tofile(os.path.join(work, "w.f32"))
    x.tofile(os.path.join(work, "x.f32"))
    subprocess.run([tool, work], check=True)

    w64, x64 = w.astype(np.float64), x.astype(np.float64)
    gram = x64.T @ x64
    cases = {
        "wanda_s50": ("mask", wanda(w64, gram, 0.5)),
        "wanda_s30": ("mask", wanda(w64, gram, 0.3)),
        "wanda_2_4": ("mask", wanda(w64, gram, nm=(2, 4))),
        "wanda_4_8": ("mask", wanda(w64, gram, nm=(4, 8))),
        "sparsegpt_s50": ("obs", sparsegpt(w64, gram, 0.5)),
        "sparsegpt_2_4": ("obs", sparsegpt(w64, gram, nm=(2, 4))),
        "gptq_b4_g32_sym": ("obs", gptq(w64, gram, 4, 32, True)),
        "gptq_b3_gm1_asym": ("obs", gptq(w64, gram, 3, -1, False)),
        "gptq_b4_g64_asym_act": ("obs", gptq(w64, gram, 4, 64, False, act_order=True)),
        "gptq_b2_g128_sym": ("obs", gptq(w64, gram, 2, 128, True)),
        "rtn_b4_g32_sym": ("obs", rtn(w64, 4, 32, True)),
        "rtn_b3_gm1_asym": ("obs", rtn(w64, 3, -1, False)),
        "sparsegpt_s50_gptq_b4_g32_sym": ("obs", gptq(sparsegpt(w64, gram, 0.5), gram, 4, 32, True)),
    }
    failures = []
    scale = np.abs(w64).max()

    def recon(m):
        diff = (w64 - m) @ x64.T
        return float(np.sum(diff * diff))

    for name, (kind, ref) in cases.items():
        got = np.fromfile(os.path.join(work, name + ".f32"), dtype=np.float32).reshape(ROWS, COLS).astype(np.float64)
        same_mask = np.array_equal(got == 0.0, ref == 0.0)
        if kind == "mask":
            ok = same_mask and np.array_equal(got, ref)
            line = f"{name}: mask identical {same_mask}, zeros {int((got == 0).sum())}"
        else:
            max_diff = float(np.abs(got - ref).max())
            e_got, e_ref = recon(got), recon(ref)
            rel = abs(e_got - e_ref) / e_ref
            ok = max_diff <= 1e-5 * scale and rel <= 1e-6
            line = (f"{name}: max |W'-W'ref| {max_diff:.2e} (tol {1e-5 * scale:.2e}), zeros equal {same_mask}, "
                    f"||WX-W'X||^2 {e_got:.6e} vs ref {e_ref:.6e} (rel {rel:.1e})")
        print(("ok   " if ok else "FAIL ") + line)
        if not ok:
            failures.append(name)
    # The calibrated methods must beat their uncalibrated counterparts on the layer error (a sanity check of
    # the data, not of the code: the orders the papers report).
    mag = w64.copy()
    for i in range(ROWS):
        mag[i, np.argsort(np.abs(w64[i]), kind="stable")[:COLS // 2]] = 0.0
    e_mag, e_wanda, e_sgpt = recon(mag), recon(cases["wanda_s50"][1]), recon(cases["sparsegpt_s50"][1])
    e_rtn, e_gptq = recon(rtn(w64, 4, 32, True)), recon(cases["gptq_b4_g32_sym"][1])
    print(f"layer error at 50%: magnitude {e_mag:.4e}, wanda {e_wanda:.4e}, sparsegpt {e_sgpt:.4e}; "
          f"4-bit g32: rtn {e_rtn:.4e}, gptq {e_gptq:.4e}")
    if not (e_sgpt < e_wanda < e_mag and e_gptq < e_rtn):
        failures.append("ordering")
    if failures:
        print("FAILED:", ", ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
