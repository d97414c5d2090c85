"""Structural modularity from the weights alone: Filan et al.'s spectral clusterability of an MLP's weight graph
(*Pruned Neural Networks are Surprisingly Modular*, arXiv 2003.04881; *Clusterability in Neural Networks*, arXiv
2103.03386), as pure functions on weight tensors. No task knowledge; the book's clusterability page says how the
pieces follow the official code (``dfilan/clusterability_in_neural_networks``) and where they deviate.

- **Graph**: every unit of every layer is a node (inputs and outputs included); an edge joins units of adjacent
  layers with weight ``|w|``; biases are not part of the graph. Weights are given as torch's ``nn.Linear.weight``
  (``[out, in]``), first layer first.
- **Isolated units**: units with no non-zero edge are removed before clustering (the output layer never is); other
  disconnected components stay, as in the official code.
- **Clustering**: scikit-learn's ``SpectralClustering`` on the precomputed adjacency (normalised Laplacian, ARPACK,
  k-means on the embedding with ``n_init`` 25, or 100 above 2,000 nodes), as the official code's "Clusterability"
  settings. Unlike it, every call takes an explicit seed, so results are reproducible.
- **n-cut**: ``sum over clusters c of cut(c) / vol(c)``, in ``[0, K]``; lower is more clusterable; values at
  different K are not comparable.
- **Null**: the same network with each weight matrix shuffled (``"layer"``: all entries, zeros included, so a pruned
  net's sparsity pattern becomes random; ``"layer_nonzero"``: the non-zero values among the non-zero positions, so the
  topology stays), isolated units removed before and after shuffling; one seed per shuffle from
  ``numpy.random.SeedSequence(seed).spawn(n)`` (the older official code's forked workers repeated their shuffles).
  ``percentile = (#{shuffled < ncut} + 1) / (n + 1)``; ``z = (ncut - mean) / sd`` with the population sd.
"""
from __future__ import annotations

import concurrent.futures
import multiprocessing
from typing import Sequence

import numpy as np

SHUFFLES = ("layer", "layer_nonzero")


def _arrays(weights) -> list[np.ndarray]:
    out = [np.abs(np.asarray(w.detach().cpu() if hasattr(w, "detach") else w, dtype=np.float64)) for w in weights]
    for i, (a, b) in enumerate(zip(out, out[1:])):
        if a.ndim != 2 or b.shape[1] != a.shape[0]:
            raise ValueError(f"weight {i + 1} has shape {b.shape}, but weight {i} gives {a.shape[0]} units: expected "
                             "nn.Linear weights [out, in], first layer first")
    return out


def layer_sizes(weights) -> list[int]:
    """Units per layer, input layer first: ``[in of W1, out of W1, ..., out of Wn]``."""
    return _sizes(_arrays(weights))


def _sizes(w: list[np.ndarray]) -> list[int]:
    return [w[0].shape[1]] + [a.shape[0] for a in w]


def graph(weights):
    """The weight graph: a symmetric ``scipy.sparse`` CSR adjacency over all units, layer by layer (input first),
    with ``|w|`` between adjacent layers."""
    from scipy import sparse
    w = _arrays(weights)
    sizes = _sizes(w)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    rows, cols, vals = [], [], []
    for i, a in enumerate(w):            # a: [out, in]; edge (input unit j of layer i, output unit o of layer i+1)
        o, j = np.nonzero(a)
        rows.append(offsets[i] + j)
        cols.append(offsets[i + 1] + o)
        vals.append(a[o, j])
    r, c, v = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    n = int(offsets[-1])
    up = sparse.coo_matrix((v, (r, c)), shape=(n, n))
    return (up + up.T).tocsr()


def connected_units(weights) -> list[np.ndarray]:
    """Per layer (input first), which units have a non-zero edge; output units always count as connected."""
    w = _arrays(weights)
    degree_in = [np.zeros(w[0].shape[1])] + [a.sum(1) for a in w]          # from the layer below
    degree_out = [a.sum(0) for a in w] + [np.zeros(w[-1].shape[0])]       # to the layer above
    keep = [(i + o) > 0 for i, o in zip(degree_in, degree_out)]
    keep[-1] = np.ones_like(keep[-1], dtype=bool)
    return keep


def conv_graph_weights(kernels, norm: int = 1) -> list[np.ndarray]:
    """A CNN's conv-to-conv weights as MLP-style ``[out, in]`` matrices, "filters as units" as the official code's
    ``extract_cnn_weights_filters_as_units`` and ``run_clustering`` do: the channel pair ``(o, i)`` gets
    ``numpy.linalg.norm(|K[o, i]|, norm)`` (on the 2-d ``[kh, kw]`` slice this is the **matrix** norm: for 1 the
    largest column sum, for 2 the spectral norm; not the entry-wise sum); the input-to-first-conv and conv-to-dense
    weights are dropped, so the graph holds the channels of every conv layer but the input. ``kernels``: torch conv
    weights ``[out, in, kh, kw]``, first layer first."""
    ks = [np.abs(np.asarray(k.detach().cpu() if hasattr(k, "detach") else k, dtype=np.float64)) for k in kernels]
    if any(k.ndim != 4 for k in ks):
        raise ValueError(f"conv kernels must be [out, in, kh, kw]; got shapes {[k.shape for k in ks]}")
    return [np.array([[np.linalg.norm(k[o, i], norm) for i in range(k.shape[1])] for o in range(k.shape[0])])
            for k in ks[1:]]


def drop_isolated(weights) -> list[np.ndarray]:
    """The weights with every unit that has no non-zero edge removed (rows/columns sliced), except output units."""
    w, keep = _arrays(weights), connected_units(weights)
    return [a[keep[i + 1]][:, keep[i]] for i, a in enumerate(w)]


def ncut(adj, labels, eps: float = 1e-8) -> float:
    """``sum_c cut(c) / (vol(c) + eps)`` over the clusters of ``labels`` (label -1: not in any cluster); ``cut(c)``:
    the weight of edges leaving c; ``vol(c)``: the summed weighted degree of c's nodes."""
    from scipy import sparse
    adj = sparse.csr_matrix(adj)
    labels = np.asarray(labels)
    degree = np.asarray(adj.sum(1)).ravel()
    total = 0.0
    for c in np.unique(labels[labels != -1]):
        inside = labels == c
        vol = degree[inside].sum()
        internal = adj[inside][:, inside].sum()
        total += (vol - internal) / (vol + eps)
    return float(total)


def spectral_labels(adj, k: int, seed: int = 0, n_init: int | None = None) -> np.ndarray:
    """Spectral clustering of the graph into ``k`` clusters (scikit-learn, precomputed affinity, ARPACK, k-means)."""
    import warnings

    from sklearn.cluster import SpectralClustering
    n = adj.shape[0]
    if not 2 <= k < n:
        raise ValueError(f"k={k} clusters needs 2 <= k < {n} (the graph's nodes)")
    n_init = n_init or (100 if n > 2000 else 25)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Graph is not fully connected")
        sc = SpectralClustering(n_clusters=k, affinity="precomputed", eigen_solver="arpack", assign_labels="kmeans",
                                n_init=n_init, random_state=seed)
        return sc.fit(adj).labels_


def shuffle(weights, rng: np.random.Generator, method: str = "layer") -> list[np.ndarray]:
    """Each weight matrix shuffled within itself: ``"layer"`` permutes all entries, ``"layer_nonzero"`` only the
    non-zero values among the non-zero positions."""
    if method not in SHUFFLES:
        raise ValueError(f"unknown shuffle {method!r}; expected one of {SHUFFLES}")
    out = []
    for a in weights:
        a = np.array(a, dtype=np.float64, order="C")   # C order: ravel() below is a view, not a copy
        flat = a.reshape(-1)
        if method == "layer":
            flat[:] = rng.permutation(flat)
        else:
            nz = np.flatnonzero(flat)
            flat[nz] = rng.permutation(flat[nz])
        out.append(a)
    return out


def _one(args) -> float:
    weights, k, method, seed_seq, n_init = args
    rng = np.random.default_rng(seed_seq)
    adj = graph(drop_isolated(shuffle(weights, rng, method)))
    return ncut(adj, spectral_labels(adj, k, int(rng.integers(2**31)), n_init))


def percentile(value: float, null: Sequence[float]) -> float:
    """``(#{null < value} + 1) / (n + 1)``: the left-tail estimator; ``1 / (n + 1)`` means below every null value."""
    null = np.asarray(null)
    return float((np.sum(null < value) + 1) / (len(null) + 1))


def clusterability(weights, k: int = 12, n_shuffles: int = 50, method: str = "layer", seed: int = 0,
                   workers: int = 1, n_init: int | None = None) -> dict:
    """n-cut of the network's clustering and its shuffle null: ``{"ncut", "labels", "sizes", "null", "mean", "sd",
    "percentile", "z", "k", "method", "n_shuffles"}``. ``labels`` are per unit of the network with isolated units
    removed, layer by layer (``sizes`` per layer). Shuffles run in ``workers`` processes; the result does not depend
    on ``workers``."""
    w = drop_isolated(weights)
    adj = graph(w)
    labels = spectral_labels(adj, k, seed, n_init)
    value = ncut(adj, labels)
    seeds = np.random.SeedSequence(seed).spawn(n_shuffles)
    jobs = [(w, k, method, s, n_init) for s in seeds]
    if workers > 1 and n_shuffles > 1:
        # spawn, not fork: a forked child of a process whose BLAS threads are running can deadlock in ARPACK
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            null = list(pool.map(_one, jobs))
    else:
        null = [_one(j) for j in jobs]
    null_arr = np.asarray(null)
    sd = float(null_arr.std()) if len(null) else float("nan")
    mean = float(null_arr.mean()) if len(null) else float("nan")
    every = np.concatenate(connected_units(weights))
    all_labels = np.full(len(every), -1)
    all_labels[every] = labels
    return {"ncut": value, "labels": labels, "sizes": layer_sizes(w), "all_labels": all_labels,
            "all_sizes": layer_sizes(weights), "null": null, "mean": mean, "sd": sd,
            "percentile": percentile(value, null) if len(null) else float("nan"),
            "z": (value - mean) / sd if len(null) and sd > 0 else float("nan"), "k": k, "method": method,
            "n_shuffles": n_shuffles}


def _bool(m) -> np.ndarray:
    return np.asarray(m.cpu() if hasattr(m, "cpu") else m, dtype=bool)


def _edge_clusters(masks, labels, sizes: Sequence[int]) -> np.ndarray:
    """For every kept weight (1 = kept) of ``masks`` (per layer, ``[out, in]``): the cluster both its units lie in,
    or -1 when they lie in different clusters (or a unit is in none)."""
    labels = np.asarray(labels)
    if sum(sizes) != len(labels):
        raise ValueError(f"{len(labels)} labels for layers of {list(sizes)} units")
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    out = []
    for i, m in enumerate(masks):
        lo, li = labels[offsets[i + 1]:offsets[i + 2]], labels[offsets[i]:offsets[i + 1]]
        o, j = np.nonzero(_bool(m))
        out.append(np.where((lo[o] == li[j]) & (lo[o] != -1), lo[o], -1))
    return np.concatenate(out)


def within_cluster_fraction(masks, labels, sizes: Sequence[int]) -> float:
    """The fraction of a mask's kept weights (``masks``: per layer, ``[out, in]`` booleans, 1 = kept) whose two units
    lie in the same cluster; ``labels`` per unit, layer by layer with ``sizes`` (-1: a unit in no cluster)."""
    edges = _edge_clusters(masks, labels, sizes)
    return float(np.mean(edges != -1)) if len(edges) else float("nan")


def cluster_shares(masks, labels, sizes: Sequence[int], k: int) -> np.ndarray:
    """How a mask's within-cluster kept weights divide among the ``k`` clusters (sums to 1; zeros when none)."""
    edges = _edge_clusters(masks, labels, sizes)
    counts = np.bincount(edges[edges != -1], minlength=k).astype(float)
    return counts / counts.sum() if counts.sum() else counts


def separation(a, b, labels, sizes: Sequence[int], k: int) -> float:
    """Total-variation distance between two masks' :func:`cluster_shares`: 0 when they use the clusters alike, 1
    when they use disjoint sets of clusters."""
    return float(0.5 * np.abs(cluster_shares(a, labels, sizes, k) - cluster_shares(b, labels, sizes, k)).sum())


def random_like(masks, rng: np.random.Generator) -> list[np.ndarray]:
    """A random mask keeping as many weights in each layer as ``masks``."""
    out = []
    for m in masks:
        m = _bool(m)
        flat = np.zeros(m.size, dtype=bool)
        flat[rng.choice(m.size, int(m.sum()), replace=False)] = True
        out.append(flat.reshape(m.shape))
    return out


def random_within_fraction(masks, labels, sizes: Sequence[int], n: int = 100, seed: int = 0) -> np.ndarray:
    """:func:`within_cluster_fraction` of ``n`` random masks keeping as many weights per layer as ``masks``: the
    baseline a mask's fraction is compared with."""
    rng = np.random.default_rng(seed)
    return np.asarray([within_cluster_fraction(random_like(masks, rng), labels, sizes) for _ in range(n)])


def random_separation(a, b, labels, sizes: Sequence[int], k: int, n: int = 100, seed: int = 0) -> np.ndarray:
    """:func:`separation` of ``n`` pairs of random masks of the sizes of ``a`` and ``b`` (per layer)."""
    rng = np.random.default_rng(seed)
    return np.asarray([separation(random_like(a, rng), random_like(b, rng), labels, sizes, k) for _ in range(n)])
