"""Errors that point the right way under vmap, and Hugging Face models as they come (tiny models built from configs,
never downloaded): every config's cache off, tokenizer batches with all-ones or padded attention masks."""
import pytest
import torch
from torch import nn

import wmask
from wmask.masks import MaskSet, forward_with

KEPT = 100.0   # sigmoid(100) == 1: every sample keeps every weight


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2)).eval()


# -- user mistakes are named; loop advice only where loop mode runs ----------------------------------------------------
def test_wrong_number_of_sets_and_single_vs_stacked_masks_are_named():
    model = mlp()
    weights = {n: p.detach().expand(2, *p.shape) for n, p in model.named_parameters()}
    with pytest.raises(ValueError, match="positional input 0 has shape \\(3, 4, 3\\), but there are 2 weight/mask"):
        forward_with(model, weights, torch.randn(3, 4, 3))
    with pytest.raises(ValueError, match="'0.weight' must be stacked sets .* got one set, not stacked"):
        forward_with(model, dict(model.named_parameters()), torch.randn(1, 4, 3))
    masks = MaskSet(model, n_sets=2, impl="eager")
    with pytest.raises(ValueError, match="eval_forward needs masks stacked \\[n_sets, \\*shape\\] \\(n_sets=2\\)"):
        masks.eval_forward(torch.randn(2, 4, 3), masks.binary(0))            # one set given to a two-set MaskSet
    with pytest.raises(ValueError, match="n_sets=2"):
        masks.eval_forward(torch.randn(3, 4, 3))
    with pytest.raises(ValueError, match="set=i"):
        wmask.variants_forward(model, [None, masks.binary()])                # stacked masks as one variant


def test_a_model_mistake_is_raised_as_itself_not_as_a_vmap_problem():
    class Transposes(nn.Module):                                           # t() on a 3-D activation
        def __init__(self):
            super().__init__()
            self.l = nn.Linear(3, 2)

        def forward(self, x):
            return self.l(x).t()
    masks = MaskSet(Transposes(), n_sets=2, impl="eager")
    for call in (lambda: masks.eval_forward(torch.randn(2, 4, 5, 3)),
                 lambda: masks.sample_forward(torch.randn(2, 4, 5, 3), k=2)):
        with pytest.raises(RuntimeError, match="t\\(\\)") as info:
            call()
        assert not isinstance(info.value, wmask.VmapForwardError)
        assert "mode='loop' fails too" in " ".join(info.value.__notes__)
        assert "mode='loop'" not in str(info.value)


def test_a_missing_vmap_rule_gets_the_loop_advice_and_loop_mode_runs():
    class ReadsValues(nn.Module):                                          # .item(): no batching rule
        def __init__(self):
            super().__init__()
            self.l = nn.Linear(3, 2)

        def forward(self, x):
            y = self.l(x)
            return y * 2 if y.sum().item() > 0 else y
    x = torch.randn(2, 4, 3)
    with pytest.raises(wmask.VmapForwardError, match="on one set alone, without vmap, it runs.*mode='loop'"):
        MaskSet(ReadsValues(), n_sets=2, impl="eager").eval_forward(x)
    assert MaskSet(ReadsValues(), n_sets=2, impl="eager", mode="loop").eval_forward(x).shape == (2, 4, 2)


# -- Hugging Face models as they come ------------------------------------------------------------------------------
def tiny(kind: str):
    transformers = pytest.importorskip("transformers", reason="transformers is not installed (pip install transformers)")
    torch.manual_seed(0)
    if kind == "t5":
        return transformers.T5ForConditionalGeneration(transformers.T5Config(
            vocab_size=100, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2, decoder_start_token_id=0))
    if kind == "bart":
        return transformers.BartForConditionalGeneration(transformers.BartConfig(
            vocab_size=100, d_model=16, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
            decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=32))
    if kind == "bert":
        return transformers.BertModel(transformers.BertConfig(
            vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
            max_position_embeddings=32))
    return transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=100, n_positions=32, n_embd=16, n_layer=1,
                                                                n_head=2, bos_token_id=0, eos_token_id=0))


def reference(model, batch, i):
    with torch.no_grad():
        return model(**{k: v[i] for k, v in batch.items()})


def main(out):
    return out.last_hidden_state if hasattr(out, "last_hidden_state") and not hasattr(out, "logits") else out.logits


@pytest.mark.parametrize("kind", ["t5", "bart"])
def test_encoder_decoders_in_their_default_state_run_batched_and_looped(kind):
    model = tiny(kind)
    configs = [m.config for m in model.modules() if getattr(m, "config", None) is not None]
    assert model.training and any(c.use_cache for c in configs)          # T5's decoder: its own copy, use_cache on
    before = [c.use_cache for c in configs]
    x, d = torch.randint(2, 100, (2, 3, 6)), torch.randint(2, 100, (2, 3, 5))
    batch = {"input_ids": x, "decoder_input_ids": d}
    for mode in ("vmap", "loop"):
        masks = MaskSet(model, n_sets=2, init=KEPT, impl="eager", mode=mode)
        out = masks.eval_forward(batch)
        model.eval()
        expected = torch.stack([reference(model, batch, i).logits for i in range(2)])
        model.train()
        torch.testing.assert_close(out.logits, expected, atol=1e-5, rtol=1e-5)
        masks.sample_forward(batch, k=3).logits.sum().backward()           # trains too
        assert all(l.grad is not None for l in masks.logits.values())
    assert [c.use_cache for c in configs] == before and model.training     # given back as they were


@pytest.mark.parametrize("kind", ["bert", "gpt2", "t5"])
def test_tokenizer_batches_all_ones_and_padded_attention_masks_run_batched(kind):
    model = tiny(kind).eval()
    x = torch.randint(2, 100, (2, 4, 6))
    pad = torch.ones_like(x)
    pad[..., -2:] = 0
    pad[1, 0, -4:] = 0
    extra = {"decoder_input_ids": torch.randint(2, 100, (2, 4, 5))} if kind == "t5" else {}
    masks = MaskSet(model, n_sets=2, init=KEPT, impl="eager")
    for attention in (torch.ones_like(x), pad):
        batch = {"input_ids": x, "attention_mask": attention, **extra}
        expected = torch.stack([main(reference(model, batch, i)) for i in range(2)])
        torch.testing.assert_close(main(masks.eval_forward(batch)), expected, atol=1e-5, rtol=1e-5)
        main(masks.sample_forward(batch, k=2)).sum().backward()
    unpadded = torch.stack([main(reference(model, {"input_ids": x, **extra}, i)) for i in range(2)])
    assert not torch.allclose(main(masks.eval_forward({"input_ids": x, "attention_mask": pad, **extra})), unpadded,
                              atol=1e-3)                                  # the padding did reach the model


def test_an_all_ones_attention_mask_is_left_out_and_a_padded_one_named_where_vmap_cannot_take_it(monkeypatch):
    from wmask import forward
    model = tiny("bert").eval()
    x = torch.randint(2, 100, (2, 4, 6))
    assert "attention_mask" not in forward.drop_full_attention_masks(model, {"input_ids": x,
                                                                            "attention_mask": torch.ones_like(x)})
    pad = torch.ones_like(x)
    pad[..., -2:] = 0
    assert "attention_mask" in forward.drop_full_attention_masks(model, {"input_ids": x, "attention_mask": pad})
    monkeypatch.setattr(forward, "batched_padding_masks", lambda: __import__("contextlib").nullcontext())
    with pytest.raises(wmask.VmapForwardError, match="padded attention_mask .* mode='loop'"):
        MaskSet(model, n_sets=2, impl="eager").eval_forward({"input_ids": x, "attention_mask": pad})
    out = MaskSet(model, n_sets=2, init=KEPT, impl="eager", mode="loop").eval_forward({"input_ids": x,
                                                                                     "attention_mask": pad})
    expected = torch.stack([reference(model, {"input_ids": x, "attention_mask": pad}, i).last_hidden_state
                            for i in range(2)])
    torch.testing.assert_close(out.last_hidden_state, expected, atol=1e-5, rtol=1e-5)


def test_fit_on_gpt2_from_tokenizer_style_batches_with_padding():
    import torch.nn.functional as F
    model = tiny("gpt2")

    def batches(lo):                                                       # what a tokenizer + collator give
        g = torch.Generator().manual_seed(lo)
        for _ in range(3):
            ids = torch.randint(lo, lo + 50, (8, 6), generator=g)
            attention = torch.ones_like(ids)
            attention[::2, -2:] = 0
            yield {"input_ids": ids, "attention_mask": attention, "labels": ids}
    seen = []

    def next_token(out, labels):
        seen.append(type(out).__name__)
        return F.cross_entropy(out.logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten())
    fit = wmask.fit(model, {"low": batches(0), "high": batches(50)}, loss=next_token, steps=20, k=2, lr=0.2,
                    impl="eager", progress=False)
    assert set(seen) == {"CausalLMOutputWithCrossAttentions"}             # one subtask's output at a time
    assert all(v < 1 for v in fit.kept().values()) and fit.history.names == ["low", "high"]
    assert model.training and model.config.use_cache                      # the model as it came
