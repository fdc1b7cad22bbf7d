"""Energy correlation functions of a jet's constituents, the numpy reference: the pair and
triple sums behind C1, C2, D2, generalised D2, M2 and N2 (definitions and papers in the
docstring of :mod:`jetlab.physics.substructure`).

All 3-point sums come from one pass over the C(n, 3) triples, vectorised in float32 chunks;
:func:`energy_correlation` is the float64 oracle of the tests.

Tensor shapes: ``p4`` is (n, 4) = (px, py, pz, E) in GeV; ``pt``, ``rapidity``, ``phi`` (n,).
"""

from __future__ import annotations

import threading

import numpy as np

from jetlab.errors import JetlabError
from jetlab.physics.constituents import _as_p4, pairwise_delta_r, rapidity_phi
from jetlab.physics.kinematics import delta_phi

__all__ = ["energy_correlation", "energy_correlation_observables"]


# --------------------------------------------------------------------------- energy correlators

class _Enumeration:
    """Index tables of the pairs i < j and triples i < j < k of n particles.

    Pairs are numbered ``p(i, j) = j (j - 1) / 2 + i`` (row-major strict lower triangle:
    ``pair_rows[p] = j``, ``pair_cols[p] = i``); triples are enumerated in (k, j, i) order
    with ``triple_ij[t] = p(i, j)``, ``triple_ik[t] = p(i, k)``. Neither depends on n: the
    pairs (triples) among the first m particles are the first C(m, 2) (C(m, 3)) entries.
    Tables are cached and grown on demand up to :attr:`table_limit` particles (memory
    16 C(n, 3) bytes: 10 MB at n = 160, 19 MB at 192); beyond, the triple indices of each
    chunk are computed on the fly (a few extra passes, bounded memory).
    """

    table_limit = 192

    def __init__(self):
        self._lock = threading.Lock()
        self.capacity = 0
        self.tables = (np.zeros(0, np.intp),) * 4

    def pairs(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(pair_rows, pair_cols) of n particles."""
        if n > self.table_limit:
            rows, cols = np.tril_indices(n, -1)
            return rows.astype(np.intp), cols.astype(np.intp)
        rows, cols, _, _ = self._tables(n)
        return rows[: _comb2(n)], cols[: _comb2(n)]

    def triples(self, n: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        """(triple_ij, triple_ik) of the triples lo <= t < hi (all of them among n particles)."""
        if n <= self.table_limit:
            _, _, ij, ik = self._tables(n)
            return ij[lo:hi], ik[lo:hi]
        k = np.arange(n, dtype=np.intp)
        block_lengths = k * (k - 1) // 2                   # triples whose largest index is k
        block_starts = np.cumsum(block_lengths) - block_lengths
        first, last = np.searchsorted(block_starts, [lo, hi - 1], side="right") - 1
        blocks = np.arange(first, last + 1)
        block_end = block_starts[blocks] + block_lengths[blocks]
        covered = np.minimum(block_end, hi) - np.maximum(block_starts[blocks], lo)
        ij = np.arange(lo, hi, dtype=np.intp) - np.repeat(block_starts[blocks], covered)
        _, cols = np.tril_indices(n, -1)
        ik = np.repeat(block_lengths[blocks], covered) + cols[ij]
        return ij, ik

    def _tables(self, n: int) -> tuple[np.ndarray, ...]:
        if n > self.capacity:
            with self._lock:
                if n > self.capacity:
                    self._grow(min(self.table_limit, max(64, ((n + 31) // 32) * 32)))
        return self.tables

    def _grow(self, capacity: int) -> None:
        rows, cols = np.tril_indices(capacity, -1)
        k = np.arange(capacity, dtype=np.intp)
        block_lengths = k * (k - 1) // 2
        block_starts = np.cumsum(block_lengths) - block_lengths
        total = int(block_lengths.sum())
        ij = np.arange(total, dtype=np.intp) - np.repeat(block_starts, block_lengths)
        ik = np.repeat(block_lengths, block_lengths) + cols[ij]
        self.tables = (rows.astype(np.intp), cols.astype(np.intp), ij, ik)
        self.capacity = capacity


_ENUMERATION = _Enumeration()


class _Workspace(threading.local):
    """Per-thread float32 scratch arrays for the triple sums (avoids page faults per call)."""

    def __init__(self):
        self.arrays = np.zeros((0, 0), np.float32)

    def get(self, count: int, size: int) -> np.ndarray:
        if self.arrays.shape[0] < count or self.arrays.shape[1] < size:
            self.arrays = np.empty((count, max(size, int(1.25 * self.arrays.shape[1]))), np.float32)
        return self.arrays[:count, :size]


_WORKSPACE = _Workspace()


def _comb2(m: int) -> int:
    return m * (m - 1) // 2


def _comb3(m: int) -> int:
    return m * (m - 1) * (m - 2) // 6


def _condensed_delta_r(rapidity: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Delta R of the C(n, 2) pairs in :class:`_Enumeration` order (phi in [0, 2 pi))."""
    rows, cols = _ENUMERATION.pairs(len(rapidity))
    dy = rapidity[rows] - rapidity[cols]
    dphi = delta_phi(phi[rows], phi[cols])
    return np.sqrt(dy * dy + dphi * dphi)


_SUM_KEYS = ("e2_b0", "e2_b1", "e2_b2", "e3_b1", "e3_b2", "e3min_b1", "e3min_b2", "e3two_b1", "e3two_b2")


def _correlator_sums(pt: np.ndarray, delta_r: np.ndarray, prefixes: tuple[int, ...]) -> list[dict]:
    """Normalised ECFs of the particle sets ``{0, .., m-1}`` for each m in ``prefixes``.

    ``pt`` (n,); ``delta_r`` (C(n, 2),) pair angles in :class:`_Enumeration` order. Returns
    one dict per prefix with keys ``e2_b0 .. e3two_b2`` (``e3min`` = 1e3, ``e3two`` = 2e3),
    each normalised by that set's ``(sum pT)^N``.
    """
    n = len(pt)
    total = pt.sum()
    z = pt / total if total > 0 else np.zeros_like(pt)
    rows, cols = _ENUMERATION.pairs(n)
    zz = z[rows] * z[cols]
    zz_d = zz * delta_r
    cumulative = {"e2_b0": np.cumsum(zz), "e2_b1": np.cumsum(zz_d), "e2_b2": np.cumsum(zz_d * delta_r)}
    triple_sums = _triple_sums(z, zz, delta_r, cols, prefixes) if n >= 3 else None

    results = []
    for index, m in enumerate(prefixes):
        subtotal = pt[:m].sum()
        values = dict.fromkeys(_SUM_KEYS, 0.0)
        if subtotal > 0 and m >= 2:
            scale = total / subtotal
            for key, sums in cumulative.items():
                values[key] = float(sums[_comb2(m) - 1]) * scale**2
            if m >= 3:
                for key, value in triple_sums[index].items():
                    values[key] = value * scale**3
        results.append(values)
    return results


_TRIPLE_CHUNK = 1 << 15  # triples per pass: the float32 work arrays (4 x 128 kB) stay in cache


def _triple_sums(z, zz, delta_r, cols, prefixes) -> list[dict]:
    """e3, 1e3, 2e3 (beta = 1, 2) over the first m particles, for each m in ``prefixes``.

    Vectorised over the C(n, 3) triples in (k, j, i) order, in float32, in chunks of
    :data:`_TRIPLE_CHUNK`: per triple the angles ``a = R_ij``, ``b = R_ik`` (gathered
    through the index tables), ``c = R_jk`` (constant over the run i < j, so a ``repeat``
    of the pair angles), the weight ``z_i z_j z_k``; then ``abc``, the smallest angle and
    the product of the two smallest. Sums over the first m particles are sums over the
    first C(m, 3) triples; chunks are cut at those boundaries.
    """
    n = len(z)
    n_triples = _comb3(n)
    d32 = delta_r.astype(np.float32)
    zz32 = zz.astype(np.float32)
    angle_jk = np.repeat(d32, cols)
    k = np.arange(2, n)
    weight_k = np.repeat(z[2:].astype(np.float32), k * (k - 1) // 2)

    boundaries = sorted({_comb3(m) for m in prefixes} - {0})
    cuts = sorted(set(range(0, n_triples, _TRIPLE_CHUNK)) | set(boundaries) | {0, n_triples})
    keys = ("e3_b1", "e3_b2", "e3min_b1", "e3min_b2", "e3two_b1", "e3two_b2")
    segment_sums = np.zeros((len(boundaries), len(keys)))
    segment = 0
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        while boundaries[segment] < hi:
            segment += 1
        a, b, weight, scratch = _WORKSPACE.get(4, hi - lo)
        pair_ij, pair_ik = _ENUMERATION.triples(n, lo, hi)
        # all indices are in range; mode="wrap" is numpy's fastest take path
        np.take(d32, pair_ij, out=a, mode="wrap")
        np.take(d32, pair_ik, out=b, mode="wrap")
        np.take(zz32, pair_ij, out=weight, mode="wrap")
        weight *= weight_k[lo:hi]
        c = angle_jk[lo:hi]
        totals = segment_sums[segment]

        product = np.multiply(a, b, out=scratch)
        product *= c                            # R_ij R_ik R_jk
        totals[0] += np.dot(weight, product)
        product *= product
        totals[1] += np.dot(weight, product)

        smallest = scratch
        np.minimum(a, b, out=smallest)
        np.maximum(a, b, out=a)                 # a <- larger of (a, b)
        np.minimum(a, c, out=a)
        np.maximum(a, smallest, out=a)          # a <- middle angle
        np.minimum(smallest, c, out=smallest)   # smallest angle
        a *= smallest                           # a <- product of the two smallest
        for column, angle in ((2, smallest), (4, a)):
            totals[column] += np.dot(weight, angle)
            weighted = np.multiply(weight, angle, out=b)
            totals[column + 1] += np.dot(weighted, angle)

    cumulative = dict(zip(boundaries, np.cumsum(segment_sums, axis=0)))
    zeros = np.zeros(len(keys))
    return [dict(zip(keys, map(float, cumulative.get(_comb3(m), zeros)))) for m in prefixes]


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else 0.0


def _observables_from_sums(s: dict) -> dict[str, float]:
    s = {key: float(value) for key, value in s.items()}
    return {
        "c1_b0": s["e2_b0"],
        "c1_b1": s["e2_b1"],
        "c1_b2": s["e2_b2"],
        "c2_b1": _ratio(s["e3_b1"], s["e2_b1"] ** 2),
        "c2_b2": _ratio(s["e3_b2"], s["e2_b2"] ** 2),
        "d2_b1": _ratio(s["e3_b1"], s["e2_b1"] ** 3),
        "d2_b2": _ratio(s["e3_b2"], s["e2_b2"] ** 3),
        "d2_a1_b1": _ratio(s["e3_b1"], s["e2_b1"] ** 3),
        "d2_a1_b2": _ratio(s["e3_b1"], s["e2_b2"] ** 1.5),
        "m2_b1": _ratio(s["e3min_b1"], s["e2_b1"]),
        "m2_b2": _ratio(s["e3min_b2"], s["e2_b2"]),
        "n2_b1": _ratio(s["e3two_b1"], s["e2_b1"] ** 2),
        "n2_b2": _ratio(s["e3two_b2"], s["e2_b2"] ** 2),
    }


def energy_correlation(p4: np.ndarray, n_points: int, beta: float, angles: int = -1) -> float:
    """Normalised generalized ECF ``_v e_N^(beta)`` of (n, 4) constituents (fjcontrib ECFG), float64.

    ``sum_{i1<..<iN} z_i1 .. z_iN (product of the v smallest pairwise R)^beta`` with
    ``v = angles`` (-1: all N(N-1)/2 angles). N = 1 gives 1, N = 2: ``e2``, N = 3 with
    v = 1, 2, 3 (or -1): 1e3, 2e3, e3 (v = 3 via ``tr((Z A)^3) / 6``, ``A_ij = R_ij^beta``).
    0 if n < N or sum pT = 0.
    """
    p4 = _as_p4(p4)
    if n_points not in (1, 2, 3):
        raise JetlabError(f"energy_correlation supports 1, 2 or 3 points, not {n_points}")
    if n_points == 3 and angles not in (-1, 1, 2, 3):
        raise JetlabError(f"a 3-point correlator has 1, 2 or 3 angles, not {angles}")
    pt = np.hypot(p4[:, 0], p4[:, 1])
    if pt.sum() <= 0 or len(p4) < n_points:
        return 0.0
    if n_points == 1:
        return 1.0
    z = pt / pt.sum()
    rapidity, phi = rapidity_phi(p4)
    if n_points == 3 and angles in (-1, 3):
        angle_power = pairwise_delta_r(rapidity, phi) ** beta
        np.fill_diagonal(angle_power, 0.0)              # i = j terms must vanish (also for beta = 0)
        weighted = z[:, None] * angle_power
        return float(np.sum((weighted @ weighted) * weighted.T)) / 6.0
    rows, cols = _ENUMERATION.pairs(len(p4))
    d = _condensed_delta_r(rapidity, phi)
    if n_points == 2:
        return float(np.dot(z[rows] * z[cols], d**beta))
    pair_ij, pair_ik = _ENUMERATION.triples(len(p4), 0, _comb3(len(p4)))
    sorted_angles = np.sort(np.stack([d[pair_ij], d[pair_ik], np.repeat(d, cols)]), axis=0)
    k = np.arange(2, len(p4))
    weight = (z[rows] * z[cols])[pair_ij] * np.repeat(z[2:], k * (k - 1) // 2)
    angle = sorted_angles[0] if angles == 1 else sorted_angles[0] * sorted_angles[1]
    return float(np.dot(weight, angle**beta))


def energy_correlation_observables(p4: np.ndarray) -> dict[str, float]:
    """The 13 ECF ratios ``c1_b0 .. n2_b2`` of the module docstring for (n, 4) constituents."""
    p4 = _as_p4(p4)
    pt = np.hypot(p4[:, 0], p4[:, 1])
    delta_r = _condensed_delta_r(*rapidity_phi(p4))
    return _observables_from_sums(_correlator_sums(pt, delta_r, (len(p4),))[0])
