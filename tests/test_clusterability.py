"""wmask.experiments.clusterability against independent references: networkx's normalised cut, a planted block
structure,
the shuffle semantics and the percentile estimator of Filan et al.'s code."""
import networkx as nx
import numpy as np
import pytest
import torch

from wmask.experiments import clusterability as cl


def _random_mlp(sizes, rng, density=1.0):
    return [rng.normal(size=(o, i)) * (rng.random((o, i)) < density) for i, o in zip(sizes, sizes[1:])]


def test_the_null_of_a_pruned_network_shuffles_its_reduced_weights():
    rng = np.random.default_rng(7)
    w = _random_mlp([12, 10, 10, 3], rng, density=0.3)
    reduced = cl.drop_isolated(w)
    for method in cl.SHUFFLES:
        s = cl.shuffle(reduced, np.random.default_rng(0), method)
        assert all(not np.array_equal(a, b) for a, b in zip(reduced, s))
    r = cl.clusterability(w, k=2, n_shuffles=5, seed=0)
    assert np.std(r["null"]) > 0 and len(set(np.round(r["null"], 9))) > 1


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
    # the two blocks as two masks: they use disjoint clusters; random masks of their sizes use the same ones
    half = [np.zeros_like(m) for m in masks]
    mask_a = [h.copy() for h in half]
    for m, x, h in zip(mask_a, a, w):
        m[:x.shape[0], :x.shape[1]] = True
    mask_b = [np.abs(h) > 0 for h in w]
    for m, x in zip(mask_b, a):
        m[:x.shape[0], :x.shape[1]] = False
    assert cl.separation(mask_a, mask_b, labels, sizes, 2) == pytest.approx(1.0)
    assert cl.separation(mask_a, mask_a, labels, sizes, 2) == 0.0
    assert cl.random_separation(mask_a, mask_b, labels, sizes, 2, n=20).mean() < 0.3


def test_within_cluster_fraction_and_shares_against_a_loop():
    rng = np.random.default_rng(5)
    sizes = [5, 4, 3]
    masks = [rng.random((4, 5)) < 0.5, rng.random((3, 4)) < 0.5]
    labels = rng.integers(-1, 3, sum(sizes))
    offsets = np.cumsum([0] + sizes)
    same, kept, per = 0, 0, np.zeros(3)
    for layer, m in enumerate(masks):
        for o in range(m.shape[0]):
            for i in range(m.shape[1]):
                if m[o, i]:
                    lo, li = labels[offsets[layer + 1] + o], labels[offsets[layer] + i]
                    kept += 1
                    if lo == li and lo != -1:
                        same += 1
                        per[lo] += 1
    assert cl.within_cluster_fraction(masks, labels, sizes) == pytest.approx(same / kept)
    assert cl.cluster_shares(masks, labels, sizes, 3) == pytest.approx(per / per.sum())
    r = cl.random_like(masks, np.random.default_rng(0))
    assert [x.sum() for x in r] == [m.sum() for m in masks]


def test_shuffles_keep_each_layer_multiset_and_nonzero_keeps_topology():
    rng = np.random.default_rng(2)
    w = _random_mlp([8, 6, 5], rng, density=0.5)
    w = [np.asfortranarray(w[0]), w[1]]      # drop_isolated's slices can be Fortran-ordered: still shuffled
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


def test_mnist_mlp_pruning_follows_the_schedule_and_keeps_the_largest_weights():
    from wmask.experiments.tasks import mnist_mlp as M
    cfg = M.MLPConfig(hidden=(16, 16), epochs=1, prune_epochs=2, batch_size=32, prune_every=1)
    assert M.sparsity_at(0, 100, cfg) == pytest.approx(0.5) and M.sparsity_at(100, 100, cfg) == pytest.approx(0.9)
    assert M.sparsity_at(50, 100, cfg) == pytest.approx(0.9 - 0.4 * 0.5 ** 3)
    model = M.mlp(cfg.hidden, 0.0, seed=0)
    w = M.weights(model)
    bound = (6 / (784 + 16)) ** 0.5     # Glorot-uniform, as Keras and torch.nn.init.xavier_uniform_
    assert w[0].abs().max() <= bound and w[0].abs().max() > 0.95 * bound
    assert all(float(m.bias.detach().abs().sum()) == 0 for m in model if isinstance(m, torch.nn.Linear))
    masks = M.magnitude_masks(model, 0.75)
    for m, wt in zip(masks, w):
        assert int(m.sum()) == round(0.25 * wt.numel())
        assert wt.abs()[m].min() >= wt.abs()[~m].max()
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(256, 784, generator=g), torch.randint(0, 10, (256,), generator=g)
    kept = M.prune(model, x, y, cfg, seed=0, progress=False)
    assert M.sparsity(model) == pytest.approx([0.9] * 3, abs=0.01)     # the last update is a step short of the end
    assert all(bool((wt[~k] == 0).all()) for wt, k in zip(M.weights(model), kept))


def test_cnn_channels_as_units_use_the_matrix_norm_and_drop_the_input_layer():
    k1, k2 = np.ones((4, 3, 3, 3)), np.zeros((2, 4, 3, 3))
    k2[1, 2] = [[1, -2, 3], [4, 5, 6], [7, 8, -9]]             # the spec's example: largest column sum 18, not 45
    w = cl.conv_graph_weights([torch.tensor(k1), torch.tensor(k2)])
    assert len(w) == 1 and w[0].shape == (2, 4) and w[0][1, 2] == 18 and w[0].sum() == 18
    assert cl.conv_graph_weights([k1, k2], norm=2)[0][1, 2] == pytest.approx(np.linalg.norm(np.abs(k2[1, 2]), 2))
    with pytest.raises(ValueError, match=r"\[out, in, kh, kw\]"):
        cl.conv_graph_weights([np.ones((3, 3))])
