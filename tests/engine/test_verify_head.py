"""The verification forward computes the LM head itself (the faster of two measured ways)
only where that is the model's own function, and gives the model's logits either way."""

from __future__ import annotations

import pytest
import torch

from sufdec.engine.head import VerifyForward, verify_forward_for
from sufdec.engine.kv import cache_kwargs, new_cache
from tests.engine.helpers import tiny_model


def logits_both_ways(model, forward, ids):
    pos = torch.arange(ids.shape[1])[None]
    with torch.inference_mode():
        own = model(input_ids=ids, use_cache=True, **cache_kwargs(model, new_cache(model))).logits[0]
        mine = forward(ids, pos, None, new_cache(model))
    return own, mine


@pytest.mark.parametrize("kind", ["llama", "qwen2", "gemma3"])
def test_head_computed_here_matches_the_model_both_ways(kind):
    model = tiny_model(kind, seed=2)
    forward = verify_forward_for(model)
    assert forward.base is not None  # a plain linear head: computed here
    ids = torch.tensor([[3, 7, 11, 5, 9]])
    for transposed in (True, False):  # weight @ rows^T, and linear
        forward.transposed = {8: transposed}
        own, mine = logits_both_ways(model, forward, ids)
        torch.testing.assert_close(mine, own, rtol=1e-5, atol=1e-5)
    assert verify_forward_for(model) is forward  # made once per model


def test_a_soft_capped_head_keeps_the_models_own_forward():
    model = tiny_model("gemma3", seed=2)
    model.config.final_logit_softcapping = 0.5  # logits = 0.5 * tanh(logits / 0.5)
    forward = VerifyForward(model)
    assert forward.base is None
    own, mine = logits_both_ways(model, forward, torch.tensor([[3, 7, 11]]))
    assert float(own.abs().max()) <= 0.5  # the cap is applied ...
    torch.testing.assert_close(mine, own)  # ... by the model's own forward
