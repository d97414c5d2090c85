"""Bring your own model: the models people use (a Hugging Face GPT-2 built from a config, tied embeddings, ViT-style
tables), keyword inputs, the user's flags left alone, and the inspection helpers (summary, plot, applied)."""
import contextlib
import warnings

import matplotlib
import pytest
import torch
from torch import nn

import wmask
from wmask.masks import MaskFilter, MaskSet, load_masks, materialize, save_masks
from wmask.train import MaskTrainConfig, train_masks

matplotlib.use("Agg")
KEPT = 100.0   # sigmoid(100) == 1: every sample keeps every weight


def tiny_gpt2(**kw):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=32, n_positions=16, n_embd=32, n_layer=2, n_head=2, bos_token_id=0,
                                  eos_token_id=0, **kw)
    return transformers.GPT2LMHeadModel(cfg)


# -- Hugging Face: the default config (use_cache=True, train mode) through vmap, keyword inputs ----------------------
def test_gpt2_with_its_default_config_runs_batched_and_is_left_as_it_was():
    model = tiny_gpt2()
    assert model.training and model.config.use_cache       # as from_pretrained / from_config hands it over
    masks = MaskSet(model, n_sets=2, init=KEPT, impl="eager")
    assert "lm_head.weight" not in masks.names and "transformer.wte.weight" not in masks.names  # tied embedding
    assert all(n.startswith("transformer.h.") for n in masks.names)
    x = torch.randint(0, 32, (2, 4, 8))
    sampled = masks.sample_forward({"input_ids": x}, k=2).logits
    evaluated = masks.eval_forward(x).logits
    assert model.training and model.config.use_cache       # both given back
    assert all(p.requires_grad for p in model.parameters())
    model.eval()
    expected = torch.stack([model(input_ids=x[i], use_cache=False).logits for i in range(2)])
    torch.testing.assert_close(sampled, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(evaluated, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", ["vmap", "loop"])
def test_variants_forward_returns_a_models_own_output_type(mode):
    """A Hugging Face model returns a ModelOutput: the unmasked-only call and the masked one stack its tensors."""
    model = tiny_gpt2().eval()
    x = torch.randint(0, 32, (3, 8))
    expected = model(input_ids=x, use_cache=False).logits
    plain = wmask.variants_forward(model, [None, None])(input_ids=x)
    masked = wmask.variants_forward(model, [None, wmask.full_masks(model)], mode=mode)(input_ids=x)
    for out in (plain, masked):
        assert out.logits.shape == (2, 3, 8, 32)
        torch.testing.assert_close(out.logits, expected.expand(2, -1, -1, -1), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", ["vmap", "loop"])
def test_gpt2_padding_mask_runs_batched_or_one_by_one_and_keyword_inputs_reach_the_model(mode):
    model = tiny_gpt2().eval()
    x = torch.randint(0, 32, (2, 4, 8))
    pad = torch.ones_like(x)
    pad[:, :, -3:] = 0
    pad[1, 0, -5:] = 0                                                                # padding differs per row
    batch = {"input_ids": x, "attention_mask": pad, "output_hidden_states": True}   # a non-tensor stays as given
    masks = MaskSet(model, n_sets=2, init=KEPT, mode=mode)
    out = masks.eval_forward(batch)
    assert len(out.hidden_states) == 3
    expected = torch.stack([model(input_ids=x[i], attention_mask=pad[i]).logits for i in range(2)])
    torch.testing.assert_close(out.logits, expected, atol=1e-5, rtol=1e-5)
    unpadded = model(input_ids=x[0]).logits
    assert not torch.allclose(out.logits[0], unpadded, atol=1e-3)      # the attention mask did reach the model


def test_masks_train_on_gpt2_keyed_by_its_own_names(tmp_path):
    model = tiny_gpt2().eval()
    masks = MaskSet(model, n_sets=1, seed=0)
    x = torch.randint(0, 32, (1, 8, 8))

    def loss(out, _):   # next-token loss of one set: a scalar (the one-set path)
        return nn.functional.cross_entropy(out.logits[0, :, :-1].reshape(-1, 32), x[0, :, 1:].reshape(-1))
    train_masks(masks, lambda step: ({"input_ids": x}, None), loss,
                MaskTrainConfig(steps=30, k=2, batch_size=8, lr=0.1, alpha=1.0), progress=False)
    assert masks.keep_fraction()[0] < 1.0
    masks.save(tmp_path / "gpt2.safetensors", 0)
    loaded = load_masks(tmp_path / "gpt2.safetensors", model)
    assert list(loaded) == masks.names
    with wmask.applied(model, loaded):
        real = model(input_ids=x[0]).logits
    torch.testing.assert_close(real, materialize(model, loaded)(input_ids=x[0]).logits)


# -- defaults: tables are not weights, tied output layers never depend on registration order -------------------------
class Tied(nn.Module):
    def __init__(self, output_first: bool):
        super().__init__()
        if output_first:
            self.out, self.emb = nn.Linear(8, 10, bias=False), nn.Embedding(10, 8)
        else:
            self.emb, self.out = nn.Embedding(10, 8), nn.Linear(8, 10, bias=False)
        self.out.weight = self.emb.weight
        self.h = nn.Linear(8, 8)
        self.pos_embed = nn.Parameter(torch.randn(1, 4, 8))
        self.cls_token = nn.Parameter(torch.randn(1, 1, 8))

    def forward(self, ids):
        return self.out(torch.relu(self.h(self.emb(ids) + self.pos_embed[0, : ids.shape[-1]] + self.cls_token[0])))


@pytest.mark.parametrize("output_first", [True, False])
def test_tables_and_tied_embeddings_are_not_masked_by_default(output_first):
    model = Tied(output_first)
    assert MaskFilter().select(model) == ["h.weight"]
    assert MaskFilter(include=("pos_embed",)).select(model) == ["pos_embed", "h.weight"]


def test_the_filter_travels_with_saved_masks(tmp_path):
    model = Tied(False)
    filt = MaskFilter(include=("pos_embed",), biases=True)
    masks = MaskSet(model, filter=filt)
    masks.save(tmp_path / "m.safetensors")
    loaded = load_masks(tmp_path / "m.safetensors", model)             # no filter= needed
    assert list(loaded) == ["pos_embed", "h.weight", "h.bias"]
    save_masks(tmp_path / "plain.safetensors", masks.binary(0))       # no filter stored: the default one checks
    with pytest.raises(ValueError, match="unknown names"):
        load_masks(tmp_path / "plain.safetensors", model)


# -- the user's flags -------------------------------------------------------------------------------------------------
def test_training_leaves_the_models_requires_grad_and_gradients_alone():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    model[2].bias.requires_grad_(False)                 # a user's own mix
    flags = [p.requires_grad for p in model.parameters()]
    masks = MaskSet(model, n_sets=2)
    masks.track_frozen_grads()                          # the unmasked parameters enter per sample too
    masks.sample_forward(torch.randn(2, 8, 6), k=2).sum().backward()
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    assert all(l.grad is not None for l in masks.logits.values())


def test_a_scalar_loss_trains_one_set_as_its_one_element_loss():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    x, y = torch.randn(1, 8, 6), torch.randint(0, 3, (1, 8))
    cfg = MaskTrainConfig(steps=5, k=2, batch_size=8)
    logits = []
    for scalar in (True, False):
        masks = MaskSet(model, seed=0)
        loss = (lambda o, t: nn.functional.cross_entropy(o[0], t[0])) if scalar else \
            (lambda o, t: nn.functional.cross_entropy(o[0], t[0]).reshape(1))
        train_masks(masks, lambda s: (x, y), loss, cfg, progress=False)
        logits.append(masks.logits)
    for n in logits[0]:
        assert torch.equal(logits[0][n], logits[1][n])
    with pytest.raises(ValueError, match="one loss per mask set"):
        train_masks(MaskSet(model, n_sets=2), lambda s: (x.expand(2, 8, 6), y.expand(2, 8)),
                    lambda o, t: o.sum(), cfg, progress=False)


# -- summary, plot, applied -------------------------------------------------------------------------------------------
def test_summary_counts_every_tensor_of_every_set():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    masks = MaskSet(model, n_sets=3)
    with torch.no_grad():
        for l in masks.logits.values():
            l.copy_(torch.randn_like(l))
    table = wmask.summary(masks)
    for i in range(3):
        for n in masks.names:
            row = table[(table["set"] == i) & (table["tensor"] == n)].iloc[0]
            brute = sum(bool(v > 0) for v in masks.logits[n][i].flatten())
            assert row["kept"] == brute and row["total"] == masks.logits[n][i].numel()
        everything = table[(table["set"] == i) & (table["tensor"] == "(all)")].iloc[0]
        assert everything["kept_fraction"] == pytest.approx(float(masks.keep_fraction()[i]))
    stacked = wmask.summary(masks.binary(), model)                  # a dict [M, *shape] with the model: same table
    assert stacked.equals(table)
    assert list(wmask.summary(masks.binary(1))["kept"]) == list(table[table["set"] == 1]["kept"])
    ax = wmask.plot_kept(masks, labels=["a", "b", "c"])
    assert len(ax.patches) == 3 * len(masks.names)
    with pytest.raises(ValueError, match="labels"):
        wmask.plot_kept(masks, labels=["a"])


def test_applied_masks_the_real_model_and_restores_it_exactly():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    mask = {n: torch.rand_like(p) > 0.5 for n, p in model.named_parameters() if p.dim() == 2}
    x = torch.randn(5, 6)
    expected = materialize(model, mask)(x)
    with pytest.raises(RuntimeError, match="inside"):
        with wmask.applied(model, mask) as masked:
            torch.testing.assert_close(masked(x), expected, rtol=0, atol=0)
            raise RuntimeError("inside")
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    with pytest.raises(TypeError, match="bool"):
        with wmask.applied(model, {n: m.float() for n, m in mask.items()}):
            pass
    with pytest.raises(ValueError, match="unknown names"):
        with wmask.applied(model, {"nope": torch.ones(1, dtype=torch.bool)}):
            pass


# -- the chapter's task -------------------------------------------------------------------------------------------
def test_the_chapters_problems_are_every_pair_with_its_answer():
    from wmask.experiments.tasks import own_model as om
    for op, f in enumerate((lambda a, b: (a + b) % 5, lambda a, b: (a - b) % 5)):
        tokens, answers = om.problems(5, op)
        assert len(answers) == 25 and len({tuple(t.tolist()) for t in tokens}) == 25
        for t, y in zip(tokens.tolist(), answers.tolist()):
            assert t[1] == 5 + op and t[3] == 7 and y == f(t[0], t[2])


def test_the_chapters_verdict_needs_a_trained_network_and_settled_masks():
    from wmask.experiments.tasks import own_model as om
    settled = {"mask +": {"converged": True, "reason": ""}, "mask -": {"converged": True, "reason": ""}}
    split = {"mask +": {"+": 0.99, "-": 0.1}, "mask -": {"+": 0.2, "-": 0.97}, "network": {"+": 1.0, "-": 1.0}}
    trained = {"config": {"target": 0.99}, "base_accuracy": {"+": 1.0, "-": 0.995}}
    assert om.verdict({**trained, "accuracy": split, "convergence": settled})[0] == "holds"
    shared = {**split, "mask +": {"+": 0.99, "-": 0.8}}
    assert om.verdict({**trained, "accuracy": shared, "convergence": settled})[0] == "does not hold"
    moving = {**settled, "mask -": {"converged": False, "reason": "kept fraction moved 3.0 points"}}
    status, why = om.verdict({**trained, "accuracy": split, "convergence": moving})
    assert status == "untestable" and "kept fraction moved" in why
    status, why = om.verdict({"config": {"target": 0.99}, "base_accuracy": {"+": 1.0, "-": 0.5},
                              "accuracy": split, "convergence": settled})
    assert status == "untestable" and "- 0.500 < 0.99" in why


# -- weights computed from other parameters: a named error that says how to fold them --------------------------------
@pytest.mark.parametrize("form", ["weight_norm", "spectral_norm", "old_weight_norm", "old_spectral_norm"])
def test_parametrized_weights_are_a_named_error_and_folding_them_works(form):
    from torch.nn.utils import parametrizations, parametrize
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    wrap = {"weight_norm": parametrizations.weight_norm, "spectral_norm": parametrizations.spectral_norm,
            "old_weight_norm": nn.utils.weight_norm, "old_spectral_norm": nn.utils.spectral_norm}[form]
    with pytest.warns(FutureWarning) if form == "old_weight_norm" else contextlib.nullcontext():
        model[0] = wrap(model[0])
    with pytest.raises(ValueError, match="module '0' computes its weight .* Fold it"):
        MaskSet(model)
    model.eval()
    x = torch.randn(4, 6)
    with torch.no_grad():
        expected = model(x)
    if form.startswith("old"):
        (nn.utils.remove_weight_norm if "weight" in form else nn.utils.remove_spectral_norm)(model[0])
    else:
        parametrize.remove_parametrizations(model[0], "weight")
    masks = MaskSet(model, init=KEPT)
    torch.testing.assert_close(masks.eval_forward(x[None])[0], expected)
    assert "0.weight" in masks.names


def test_bert_runs_with_and_without_a_padding_mask_batched_and_one_by_one():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = transformers.BertModel(transformers.BertConfig(vocab_size=32, hidden_size=32, num_hidden_layers=1,
                                                           num_attention_heads=2, intermediate_size=64,
                                                           max_position_embeddings=16))
    assert "embeddings.word_embeddings.weight" not in MaskFilter().select(model)
    x = torch.randint(0, 32, (2, 3, 8))
    pad = torch.ones_like(x)
    pad[..., -2:] = 0
    masks = MaskSet(model, n_sets=2, init=KEPT)
    model.eval()
    with torch.no_grad():
        plain = torch.stack([model(input_ids=x[i]).last_hidden_state for i in range(2)])
        padded = torch.stack([model(input_ids=x[i], attention_mask=pad[i]).last_hidden_state for i in range(2)])
    torch.testing.assert_close(masks.eval_forward({"input_ids": x}).last_hidden_state, plain, atol=1e-5, rtol=1e-5)
    looped = MaskSet(model, n_sets=2, init=KEPT, mode="loop").eval_forward({"input_ids": x, "attention_mask": pad})
    torch.testing.assert_close(looped.last_hidden_state, padded, atol=1e-5, rtol=1e-5)
    batched = masks.eval_forward({"input_ids": x, "attention_mask": pad})             # padded, under vmap
    torch.testing.assert_close(batched.last_hidden_state, padded, atol=1e-5, rtol=1e-5)


def test_a_short_run_that_removes_nothing_says_why():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    x, y = torch.randn(1, 8, 6), torch.randint(0, 3, (1, 8))
    loss = lambda o, t: nn.functional.cross_entropy(o[0], t[0])   # noqa: E731
    with pytest.warns(UserWarning, match="removed no weight in 20 steps"):
        train_masks(MaskSet(model), lambda s: (x, y), loss, MaskTrainConfig(steps=20, k=2, batch_size=8),
                    progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train_masks(MaskSet(model, init=0.05), lambda s: (x, y), loss,
                    MaskTrainConfig(steps=20, k=2, batch_size=8, alpha=10.0), progress=False)
