"""Compiled (numba) path of :func:`jetlab.physics.substructure.jet_substructure`.

Same observables, same definitions (see :mod:`jetlab.physics.substructure`), computed in one
compiled call per jet instead of numpy + FastJet's Python bindings (the jet generator's
main cost; BENCHMARKS.md, issue 11). The FastJet pieces are re-implemented exactly as
FastJet 3.4 does them, so the two paths agree to rounding:

* sequential recombination (``_cluster``): FastJet's N2Plain algorithm — each jet keeps its
  geometric nearest neighbour (``Delta R^2 = drap^2 + dphi^2``, strictly below ``R^2``),
  ``d_iJ = NN_dist * min(f_i, f_NN)`` with momentum factor ``f = pT^2`` (kT) or 1 (C/A),
  ``d_iB = R^2 f_i``; E-scheme sums; rapidity and azimuth by ``PseudoJet::_set_rap_phi``.
  Pruning (Ellis, Vermilion, Walsh 2009) is FastJet's ``PruningRecombiner``: merge when
  ``Delta R^2 <= R_cut^2``, else drop the softer if ``pT_soft^2 < z_cut^2 pT_(a+b)^2``,
  ``R_cut = 0.5 * 2 m / pT`` of the jet, C/A at R = 1000;
* trimming: ``Filter(kT R = 0.2, SelectorPtFractionMin(0.03))`` = the kT R = 0.2 inclusive
  subjets with ``pT^2 >= 0.03^2 pT_jet^2``, summed;
* soft drop: the walk of :func:`jetlab.physics.substructure_fastjet._soft_drop_walk`;
* N-subjettiness axes: the kT (R = 1000) jets left after ``n - N`` merges
  (``exclusive_jets(N)``);
* energy correlators: one float64 pass over the triples ``i < j < k`` (innermost loop over
  ``i``, vectorised by LLVM), prefix sums over ``k`` give the mMDT-groomed set (its
  constituents are ordered first, as in the numpy path).

The compiled path needs every constituent to have ``pT > 0`` and at least two of them;
other jets take the numpy + FastJet path. The two are compared on real Pythia jets in
``tests/physics/test_substructure_fast.py``.

Speed (2-core development machine, one thread): ~0.1 ms per 30-particle jet, ~0.3 ms at
n = 100 (the numpy + FastJet path: 0.4 / 1.5 ms). Compiled code is cached on disk by numba
(``cache=True``), so a new worker process does not recompile. All compiled functions stay in
this one file on purpose: numba's cache checks only the source file of the function it
loads, so a kernel here calling a changed compiled function in another file would run the
stale cached code.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["fast_path_applies", "skip_numba_extensions", "substructure_values"]

_TWOPI = 2.0 * math.pi
_MAX_RAP = 1e5
_R_BIG2 = 1000.0 * 1000.0   # JetDefinition::max_allowable_R squared
_KT, _CA = 1, 0


def fast_path_applies(p4: np.ndarray) -> bool:
    """True when the compiled path handles ``p4`` (n >= 2 constituents, all with pT > 0)."""
    return len(p4) >= 2 and bool(np.all(p4[:, 0] * p4[:, 0] + p4[:, 1] * p4[:, 1] > 0))


def substructure_values(p4: np.ndarray) -> dict[str, float]:
    """The substructure sums of one jet (n >= 2, all pT > 0): groomed masses, the mMDT
    groomed constituent rows, N-subjettiness (full and groomed) and the correlator sums."""
    p4 = np.ascontiguousarray(p4, dtype=np.float64)
    masses, groomed_mask, taus, sums = kernel(p4)
    return {"masses": masses, "groomed": np.flatnonzero(groomed_mask), "taus": taus, "sums": sums}


def skip_numba_extensions() -> None:
    """Keep numba from loading the third-party extensions it finds installed, in a process
    that only runs these kernels (jetlab's own generator workers).

    Numba imports every ``numba_extensions`` entry point at the first call of any compiled
    function, even one loaded from its cache; vector's imports sympy (~1 s per worker start
    on the development machine). The kernels here use no extension types. No effect when
    numba has no such switch (a future version) or the extensions are loaded already.
    """
    from numba.core import entrypoints

    if hasattr(entrypoints, "_already_initialized"):
        entrypoints._already_initialized = True


njit = numba.njit(cache=True, nogil=True)
njit_fast = numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract", "nsz"})


@njit
def rap_phi(px, py, pz, e):
    """FastJet's PseudoJet::_set_rap_phi: (rapidity, phi in [0, 2 pi), kt2)."""
    kt2 = px * px + py * py
    phi = 0.0 if kt2 == 0.0 else math.atan2(py, px)
    if phi < 0.0:
        phi += _TWOPI
    if phi >= _TWOPI:
        phi -= _TWOPI
    if e == abs(pz) and kt2 == 0.0:
        rap = _MAX_RAP + abs(pz)
        if pz < 0.0:
            rap = -rap
    else:
        m2 = max(0.0, (e + pz) * (e - pz) - kt2)
        e_plus_pz = e + abs(pz)
        rap = 0.5 * math.log((kt2 + m2) / (e_plus_pz * e_plus_pz))
        if pz > 0.0:
            rap = -rap
    return rap, phi, kt2


@njit
def dist2(rap, phi, a, b):
    dphi = abs(phi[a] - phi[b])
    if dphi > math.pi:
        dphi = _TWOPI - dphi
    drap = rap[a] - rap[b]
    return dphi * dphi + drap * drap


@njit
def mass(mom, k):
    px, py, pz, e = mom[k, 0], mom[k, 1], mom[k, 2], mom[k, 3]
    return math.sqrt(max((e + pz) * (e - pz) - px * px - py * py, 0.0))


@njit
def nearest(srap, sphi, na, s, r2):
    """(slot, distance^2) of slot s's geometric nearest neighbour below r2 (-1 if none)."""
    best, best_d = -1, r2
    for t in range(na):
        if t != s:
            d = dist2(srap, sphi, s, t)
            if d < best_d:
                best, best_d = t, d
    return best, best_d


@njit
def cluster(p4, rows, algorithm, r2, rcut2, zcut2):
    """Cluster p4[rows]; returns (mom, rap, phi, kt2, parent1, parent2, n_nodes, beam_nodes, n_beam).

    Nodes 0..m-1 are the inputs (in ``rows`` order), later nodes the merges in order.
    ``rcut2 >= 0`` switches on the pruning recombiner. Live jets sit in dense slots
    0..na-1 (a removed slot is refilled from the last one).
    """
    m = len(rows)
    size = 2 * m
    mom = np.empty((size, 4))
    rap = np.empty(size)
    phi = np.empty(size)
    kt2 = np.empty(size)
    parent1 = np.full(size, -1, np.int64)
    parent2 = np.full(size, -1, np.int64)
    beam = np.empty(m, np.int64)
    node = np.arange(m)                      # slot -> node
    srap = np.empty(m)
    sphi = np.empty(m)
    sf = np.ones(m)                          # momentum factor
    for i in range(m):
        for c in range(4):
            mom[i, c] = p4[rows[i], c]
        rap[i], phi[i], kt2[i] = rap_phi(mom[i, 0], mom[i, 1], mom[i, 2], mom[i, 3])
        srap[i], sphi[i] = rap[i], phi[i]
        if algorithm == _KT:
            sf[i] = kt2[i]
    nn = np.full(m, -1, np.int64)
    nn_dist = np.full(m, r2)
    for s in range(m):
        for t in range(s + 1, m):
            d = dist2(srap, sphi, s, t)
            if d < nn_dist[s]:
                nn_dist[s], nn[s] = d, t
            if d < nn_dist[t]:
                nn_dist[t], nn[t] = d, s
    n_nodes = m
    n_beam = 0
    na = m
    while na > 0:
        a = 0
        best_d = math.inf
        for s in range(na):
            f = sf[s]
            if nn[s] >= 0 and sf[nn[s]] < f:
                f = sf[nn[s]]
            d = nn_dist[s] * f
            if d < best_d:
                a, best_d = s, d
        b = nn[a]
        if b < 0:                                   # merge with the beam: an inclusive jet
            beam[n_beam] = node[a]
            n_beam += 1
            gone = a
        else:
            ia, ib = node[a], node[b]
            k = n_nodes
            n_nodes += 1
            parent1[k], parent2[k] = ia, ib
            for c in range(4):
                mom[k, c] = mom[ia, c] + mom[ib, c]
            rap[k], phi[k], kt2[k] = rap_phi(mom[k, 0], mom[k, 1], mom[k, 2], mom[k, 3])
            if rcut2 >= 0.0 and dist2(rap, phi, ia, ib) > rcut2:   # pruning recombiner
                keep = -1
                if kt2[ia] < kt2[ib]:
                    if kt2[ia] < zcut2 * kt2[k]:
                        keep = ib
                elif kt2[ib] < zcut2 * kt2[k]:
                    keep = ia
                if keep >= 0:
                    for c in range(4):
                        mom[k, c] = mom[keep, c]
                    rap[k], phi[k], kt2[k] = rap[keep], phi[keep], kt2[keep]
            node[a] = k
            srap[a], sphi[a] = rap[k], phi[k]
            sf[a] = kt2[k] if algorithm == _KT else 1.0
            gone = b
        # remove slot `gone`: the last slot moves into it
        last = na - 1
        for s in range(na):
            if nn[s] == gone:
                nn[s] = -2                          # needs a new neighbour
            elif b >= 0 and nn[s] == a:
                nn[s] = -2
        if gone != last:
            node[gone], srap[gone], sphi[gone], sf[gone] = node[last], srap[last], sphi[last], sf[last]
            nn[gone], nn_dist[gone] = nn[last], nn_dist[last]
            for s in range(last):
                if nn[s] == last:
                    nn[s] = gone
        na = last
        if b >= 0:
            a_slot = a if a != last else gone
            nn[a_slot] = -2
            for s in range(na):
                if s != a_slot and nn[s] != -2:
                    d = dist2(srap, sphi, s, a_slot)
                    if d < nn_dist[s]:
                        nn_dist[s], nn[s] = d, a_slot
        for s in range(na):
            if nn[s] == -2:
                nn[s], nn_dist[s] = nearest(srap, sphi, na, s, r2)
    return mom, rap, phi, kt2, parent1, parent2, n_nodes, beam, n_beam


@njit
def leaves(parent1, parent2, start, m, out):
    """Mark in ``out`` the inputs (nodes < m) below node ``start``."""
    stack = [start]
    while len(stack) > 0:
        k = stack.pop()
        if k < m:
            out[k] = True
        else:
            stack.append(parent1[k])
            stack.append(parent2[k])


@njit
def soft_drop(mom, rap, phi, kt2, parent1, parent2, root, betas, z_cut, r0):
    """Groomed node per beta (the walk of substructure_fastjet._soft_drop_walk)."""
    result = np.full(len(betas), -1, np.int64)
    current = root
    while True:
        pending = 0
        for i in range(len(betas)):
            if result[i] < 0:
                pending += 1
        if pending == 0:
            return result
        if parent1[current] < 0:
            for i in range(len(betas)):
                if result[i] < 0:
                    result[i] = current
            return result
        harder, softer = parent1[current], parent2[current]
        pt_a, pt_b = math.sqrt(kt2[harder]), math.sqrt(kt2[softer])
        if pt_b > pt_a:
            harder, softer = softer, harder
            pt_a, pt_b = pt_b, pt_a
        if pt_a + pt_b > 0:
            z = pt_b / (pt_a + pt_b)
            delta_r = math.sqrt(dist2(rap, phi, harder, softer))
            for i in range(len(betas)):
                if result[i] >= 0:
                    continue
                beta = betas[i]
                if beta == 0:
                    threshold = z_cut
                elif delta_r > 0:
                    threshold = z_cut * (delta_r / r0) ** beta
                else:
                    threshold = 0.0 if beta > 0 else math.inf
                if z > threshold:
                    result[i] = current
        current = harder


@njit
def taus(p4, rows, pt, y, ph, r0, out, column0):
    """tau_N^(beta) (N = 1..3, beta = 1, 2) of p4[rows] with exclusive kT axes, into out."""
    m = len(rows)
    total = 0.0
    for i in range(m):
        total += pt[rows[i]]
    if m < 2 or total <= 0:
        return
    mom, rap, phi, kt2, parent1, parent2, n_nodes, beam, n_beam = cluster(p4, rows, _KT, _R_BIG2, -1.0, 0.0)
    n_max = min(3, m - 1)
    alive = np.ones(n_nodes, np.bool_)
    axes = np.empty(3, np.int64)
    for n_axes in range(m - 1, 0, -1):          # after the merge creating node m + (m - 1 - n_axes)
        k = m + (m - 1 - n_axes)
        alive[parent1[k]] = False
        alive[parent2[k]] = False
        if n_axes > n_max:
            continue
        found = 0
        for a in range(k, -1, -1):
            if alive[a]:
                axes[found] = a
                found += 1
                if found == n_axes:
                    break
        s1 = 0.0
        s2 = 0.0
        for i in range(m):
            best = math.inf
            for q in range(n_axes):
                dphi = ph[rows[i]] - phi[axes[q]]
                dphi = dphi - _TWOPI * math.floor((dphi + math.pi) / _TWOPI)
                dy = y[rows[i]] - rap[axes[q]]
                d = dy * dy + dphi * dphi
                if d < best:
                    best = d
            s1 += pt[rows[i]] * math.sqrt(best)
            s2 += pt[rows[i]] * best
        out[column0 + n_axes - 1, 0] = s1 / (total * r0)
        out[column0 + n_axes - 1, 1] = s2 / (total * r0 * r0)


@njit_fast
def correlator_sums(pt, y, ph, order, prefixes, out):
    """Normalised e2 (b = 0, 1, 2), e3, 1e3, 2e3 (b = 1, 2) of the first m of ``order``."""
    n = len(order)
    dr = np.empty((n, n))
    for a in range(n):
        dr[a, a] = 0.0
        for b in range(a):
            dphi = abs(ph[order[a]] - ph[order[b]])
            if dphi > math.pi:
                dphi = _TWOPI - dphi
            dy = y[order[a]] - y[order[b]]
            dr[a, b] = dr[b, a] = math.sqrt(dy * dy + dphi * dphi)
    total = 0.0
    for a in range(n):
        total += pt[order[a]]
    z = np.empty(n)
    for a in range(n):
        z[a] = pt[order[a]] / total if total > 0 else 0.0
    per_k = np.zeros((n, 9))
    for k in range(1, n):
        rk = dr[k]
        for j in range(k):
            w = z[j] * z[k]
            d = rk[j]
            per_k[k, 0] += w
            per_k[k, 1] += w * d
            per_k[k, 2] += w * d * d
        for j in range(1, k):
            rj = dr[j]
            c = rk[j]
            s0 = s1 = s2 = s3 = s4 = s5 = 0.0
            for i in range(j):
                a = rj[i]
                b = rk[i]
                zi = z[i]
                ab = a * b
                s0 += zi * ab
                s1 += zi * ab * ab
                small = min(a, b)
                large = max(a, b)
                middle = max(min(large, c), small)
                smallest = min(small, c)
                two = smallest * middle
                s2 += zi * smallest
                s3 += zi * smallest * smallest
                s4 += zi * two
                s5 += zi * two * two
            w = z[j] * z[k]
            per_k[k, 3] += w * c * s0
            per_k[k, 4] += w * c * c * s1
            per_k[k, 5] += w * s2
            per_k[k, 6] += w * s3
            per_k[k, 7] += w * s4
            per_k[k, 8] += w * s5
    for p in range(len(prefixes)):
        m = prefixes[p]
        subtotal = 0.0
        for a in range(m):
            subtotal += pt[order[a]]
        for key in range(9):
            out[p, key] = 0.0
        if subtotal <= 0 or m < 2:
            continue
        scale = total / subtotal
        for k in range(m):
            for key in range(9):
                power = 2 if key < 3 else 3
                out[p, key] += per_k[k, key] * scale**power


@njit
def kernel(p4):
    n = p4.shape[0]
    rows = np.arange(n)
    y = np.empty(n)
    ph = np.empty(n)
    pt = np.empty(n)
    for i in range(n):
        y[i], ph[i], pt2 = rap_phi(p4[i, 0], p4[i, 1], p4[i, 2], p4[i, 3])
        pt[i] = math.sqrt(pt2)
    mom, rap, phi, kt2, parent1, parent2, n_nodes, beam, n_beam = cluster(p4, rows, _CA, _R_BIG2, -1.0, 0.0)
    root = beam[0]
    for b in range(n_beam):
        if kt2[beam[b]] > kt2[root]:
            root = beam[b]
    masses = np.zeros(5)                 # mmdt, sdb2, sdm1, trim, prun
    groomed_nodes = soft_drop(mom, rap, phi, kt2, parent1, parent2, root, np.array([0.0, 2.0, -1.0]), 0.1, 0.8)
    for i in range(3):
        masses[i] = mass(mom, groomed_nodes[i])
    groomed = np.zeros(n, np.bool_)
    leaves(parent1, parent2, groomed_nodes[0], n, groomed)
    in_jet = np.zeros(n, np.bool_)
    leaves(parent1, parent2, root, n, in_jet)
    jet_rows = np.flatnonzero(in_jet)
    jet_pt2 = kt2[root]
    # trimming: kT R = 0.2 inclusive subjets with pT^2 >= 0.03^2 pT_jet^2, summed
    tm, t_rap, t_phi, tkt2, t_p1, t_p2, t_nodes, tbeam, tn = cluster(p4, jet_rows, _KT, 0.2 * 0.2, -1.0, 0.0)
    kept = np.zeros(4)
    for b in range(tn):
        if tkt2[tbeam[b]] >= (0.03 * 0.03) * jet_pt2:
            for c in range(4):
                kept[c] += tm[tbeam[b], c]
    masses[3] = math.sqrt(max((kept[3] + kept[2]) * (kept[3] - kept[2]) - kept[0] ** 2 - kept[1] ** 2, 0.0))
    # pruning: C/A with the pruning recombiner, R_cut = 0.5 * 2 m / pT of the jet
    m2 = (mom[root, 3] + mom[root, 2]) * (mom[root, 3] - mom[root, 2]) - kt2[root]
    jet_m = math.sqrt(m2) if m2 >= 0 else -math.sqrt(-m2)
    rcut = 0.5 * 2.0 * jet_m / math.sqrt(jet_pt2)
    pm, p_rap, p_phi, pkt2, p_p1, p_p2, p_nodes, pbeam, pn = cluster(p4, jet_rows, _CA, _R_BIG2, rcut * rcut, 0.1 * 0.1)
    hardest = pbeam[0]
    for b in range(pn):
        if pkt2[pbeam[b]] > pkt2[hardest]:
            hardest = pbeam[b]
    masses[4] = mass(pm, hardest)
    # N-subjettiness of all constituents and of the groomed ones
    tau = np.zeros((6, 2))
    taus(p4, rows, pt, y, ph, 0.8, tau, 0)
    groomed_rows = np.flatnonzero(groomed)
    if len(groomed_rows) == n:
        tau[3:] = tau[:3]
    else:
        taus(p4, groomed_rows, pt, y, ph, 0.8, tau, 3)
    # correlators: groomed constituents first, then the rest
    order = np.empty(n, np.int64)
    g = 0
    for i in range(n):
        if groomed[i]:
            order[g] = i
            g += 1
    r = g
    for i in range(n):
        if not groomed[i]:
            order[r] = i
            r += 1
    sums = np.zeros((2, 9))
    correlator_sums(pt, y, ph, order, np.array([n, g]), sums)
    return masses, groomed, tau, sums

