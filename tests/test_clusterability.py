"""wmask.clusterability against independent references: networkx's normalised cut, a planted block structure,
the shuffle semantics and the percentile estimator of Filan et al.'s code."""
import networkx as nx
import numpy as np
import pytest
import torch

from wmask import clusterability as cl


def _random_mlp(sizes, rng, density=1.0):
    return [rng.normal(size=(o, i)) * (rng.random((o, i)) < density) for i, o in zip(sizes, sizes[1:])]


def test_ncut_equals_networkx_normalized_cut_on_weighted_graphs():
    rng = np.random.default_rng(0)
    for trial in range(5):
        w = _random_mlp([6, 5, 7, 3], rng, density=0.7)
        adj = cl.graph(cl.drop_isolated(w))
        g = nx.from_scipy_sparse_array(adj)
        labels = rng.integers(0, 2, adj.shape[0])
        s = {i for i in range(len(labels)) if labels[i] == 0}
        t = set(g) - s
        expected = nx.normalized_cut_size(g, s, t, weight="weight")
        assert cl.ncut(adj, labels, eps=0) == pytest.approx(expected, rel=1e-9)


def test_graph_is_symmetric_absolute_and_joins_adjacent_layers_only():
    w = [torch.tensor([[1.0, -2.0]]), torch.tensor([[-3.0], [0.0]])]   # 2 -> 1 -> 2
    adj = cl.graph(w).toarray()
    assert cl.layer_sizes(w) == [2, 1, 2] and np.allclose(adj, adj.T)
    assert adj[0, 2] == 1 and adj[1, 2] == 2 and adj[2, 3] == 3 and adj[2, 4] == 0 and adj[0, 1] == 0
    with pytest.raises(ValueError, match="expected nn.Linear weights"):
        cl.graph([np.ones((3, 2)), np.ones((2, 4))])


def test_a_planted_block_diagonal_network_is_recovered_as_its_blocks():
    rng = np.random.default_rng(1)
    a, b = _random_mlp([10, 12, 12, 4], rng), _random_mlp([10, 12, 12, 4], rng)
    w = [np.block([[x, np.zeros((x.shape[0], y.shape[1]))], [np.zeros((y.shape[0], x.shape[1])), y]])
         for x, y in zip(a, b)]
    adj = cl.graph(w)
    labels = cl.spectral_labels(adj, 2, seed=0)
    sizes = cl.layer_sizes(w)
    block = np.concatenate([np.repeat([0, 1], n // 2) for n in sizes])
    assert abs(np.corrcoef(labels, block)[0, 1]) == pytest.approx(1.0)
    assert cl.ncut(adj, labels) == pytest.approx(0.0, abs=1e-6)
    masks = [np.abs(x) > 0 for x in w]
    assert cl.within_cluster_fraction(masks, labels, sizes) == 1.0
    assert cl.random_within_fraction(masks, labels, sizes, n=20).mean() < 0.7


def test_shuffles_keep_each_layer_multiset_and_nonzero_keeps_topology():
    rng = np.random.default_rng(2)
    w = _random_mlp([8, 6, 5], rng, density=0.5)
    for method in cl.SHUFFLES:
        s = cl.shuffle(w, np.random.default_rng(3), method)
        for a, b in zip(w, s):
            assert np.array_equal(np.sort(a.ravel()), np.sort(b.ravel())) and not np.array_equal(a, b)
            if method == "layer_nonzero":
                assert np.array_equal(a != 0, b != 0)
    with pytest.raises(ValueError, match="unknown shuffle"):
        cl.shuffle(w, rng, "global")


def test_isolated_units_are_removed_but_outputs_never():
    w = [np.array([[1.0, 0.0, 2.0], [0.0, 0.0, 0.0]]), np.array([[1.0, 0.0], [0.0, 0.0]])]   # 3 -> 2 -> 2
    d = cl.drop_isolated(w)
    assert [a.shape for a in d] == [(1, 2), (2, 1)]     # input 1 and hidden 1 have no edge; output 1 stays


def test_percentile_estimator_and_reproducible_null():
    assert cl.percentile(0.5, np.ones(100)) == pytest.approx(1 / 101)
    assert cl.percentile(1.5, [1.0] + [2.0] * 99) == pytest.approx(2 / 101)
    assert cl.percentile(3.0, np.ones(100)) == pytest.approx(101 / 101)
    w = _random_mlp([8, 10, 10, 4], np.random.default_rng(4))
    one = cl.clusterability(w, k=3, n_shuffles=4, seed=5, n_init=4)
    two = cl.clusterability(w, k=3, n_shuffles=4, seed=5, n_init=4, workers=2)
    assert one["null"] == two["null"] and one["ncut"] == two["ncut"] and 0 <= one["ncut"] <= 3
    assert one["sd"] == pytest.approx(np.std(one["null"])) and one["percentile"] == cl.percentile(one["ncut"], one["null"])
