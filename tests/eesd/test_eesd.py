"""EESD on tiny models: the draft model is exact, training lowers the loss and saves a
layer tied to its model, and speculation with early-exit drafts equals plain generate()."""

from __future__ import annotations

import re

import pytest
import torch

from sufdec.drafters.control import ControlState
from sufdec.drafters.settings import DraftSettings
from sufdec.eesd import exit_model
from sufdec.eesd.drafter import EarlyExitDrafter
from sufdec.eesd.train import TrainSettings, train_exit_layer
from sufdec.engine import GenerationConfig, SpeculativeGenerator
from tests.engine.helpers import char_tokenizer, plain_greedy, random_prompts, tiny_model

KINDS = ["llama", "qwen2_sliding", "gemma3"]


@pytest.mark.parametrize("kind", KINDS)
def test_draft_model_is_the_target_cut_after_n_plus_one_layers(kind):
    """With the exit layer a copy of layer N itself, the draft model computes exactly the
    target's layer N+1 output, through the target's own norm and head (masks, rotary,
    sliding windows all from the stock model class)."""
    model = tiny_model(kind)
    draft = exit_model.build_draft_model(model, exit_model.new_exit_layer(model, 1, init_from=1), 1)
    ids = torch.randint(2, 256, (1, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        hs = model(ids, output_hidden_states=True).hidden_states  # [L + 1] x [1, T, H]
        last = len(hs) - 1 == 2  # transformers hands the last layer's output already normalised
        want = model.lm_head(hs[2] if last else model.model.norm(hs[2]))
        got = draft(ids).logits
    assert torch.allclose(want, got, atol=1e-5)
    # the draft model shares the target's modules: no weight was copied but the exit layer's
    shared = {id(p) for p in model.parameters()}
    own = [n for n, p in draft.named_parameters() if id(p) not in shared]
    assert own and all(n.startswith("model.layers.1.") for n in own)


def _sequences(model, n=12, length=40):
    return [plain_greedy(model, p, length) for p in random_prompts(n, seed=3)]


def test_training_lowers_the_loss_saves_and_refuses_another_model(tmp_path):
    model = tiny_model("gemma3", seed=1, sharpen=4.0)
    seqs = _sequences(model)
    settings = TrainSettings(layer=1, steps=40, lr=1e-3, batch=4, chunk=32, draft_vocab=0, checkpoint_every=0)
    first = train_exit_layer(model, seqs, TrainSettings(**{**settings.__dict__, "steps": 1}), tmp_path)
    info = train_exit_layer(model, seqs, settings, tmp_path)  # resumes from the 1-step checkpoint
    assert info.steps == 40 and info.final_loss < first.final_loss
    assert 0.0 <= info.held_out_acceptance <= 1.0 and info.data_sequences == len(seqs)
    draft, loaded = exit_model.load_exit_layer(model, exit_model.find_exit_layer(tmp_path))
    assert loaded.fingerprint == exit_model.model_fingerprint(model) and loaded.layer == 1
    other = tiny_model("gemma3", seed=2)
    with pytest.raises(exit_model.ExitLayerError, match="another model"):
        exit_model.load_exit_layer(other, exit_model.find_exit_layer(tmp_path))


def test_a_trained_exit_layer_agrees_with_the_target_more_than_an_untrained_one(tmp_path):
    model = tiny_model("gemma3", seed=1, sharpen=4.0)  # 3 layers: the exit copy of layer 2 is not exact
    seqs = _sequences(model, n=16, length=60)
    base = TrainSettings(layer=1, batch=4, chunk=32, draft_vocab=0, checkpoint_every=0, lr=1e-3)
    untrained = train_exit_layer(model, seqs, TrainSettings(**{**base.__dict__, "steps": 1, "lr": 0.0}), tmp_path / "a")
    trained = train_exit_layer(model, seqs, TrainSettings(**{**base.__dict__, "steps": 80}), tmp_path / "b")
    assert trained.held_out_acceptance > untrained.held_out_acceptance


def test_reduced_draft_vocabulary_maps_back_to_token_ids(tmp_path):
    model = tiny_model("llama", seed=1, sharpen=4.0)
    seqs = _sequences(model)
    info = train_exit_layer(
        model, seqs, TrainSettings(layer=1, steps=5, batch=4, chunk=32, draft_vocab=40, checkpoint_every=0), tmp_path
    )
    vocab = info.extra["draft_vocab"]
    assert len(vocab) == 40 and vocab == sorted(vocab)
    draft, _ = exit_model.load_exit_layer(model, exit_model.find_exit_layer(tmp_path))
    d = EarlyExitDrafter(draft, vocab, max_len=4, min_prob=0.0)
    d.begin(random_prompts(1, seed=9)[0])
    assert set(d.draft(8).token_ids) <= set(vocab)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_early_exit_speculation_equals_plain_generate(kind, attn):
    """Float32 greedy with early-exit chains is token-identical to plain generate(), with
    chains long enough that most are cut by rejections (min_prob 0: always 5 deep)."""
    model = tiny_model(kind, seed=4, attn=attn, sharpen=3.0)
    layer = 1
    draft_model = exit_model.build_draft_model(model, exit_model.new_exit_layer(model, layer), layer)
    # budget 2 < chain length 5: the engine verifies a prefix, and the bonus token may be
    # the next drafted one (the drafter must then still feed it again)
    # branch: a sibling wherever the runner-up has 5% of the top's probability (trees)
    for min_prob, budget, branch in ((0.0, 32, 0.0), (0.5, 32, 0.0), (0.0, 2, 0.0), (0.0, 32, 0.05), (0.0, 3, 0.05)):
        gen = SpeculativeGenerator(
            model,
            char_tokenizer(),
            drafter_factory=lambda: EarlyExitDrafter(draft_model, None, max_len=5, min_prob=min_prob, branch=branch),
            controls=ControlState.flat(),
        )
        cfg = GenerationConfig(
            max_new_tokens=30,
            eos_token_ids=(),
            draft=DraftSettings(spec="eesd", sizing="fixed", max_spec_tokens=budget),
        )
        accepted = 0
        for prompt in random_prompts(3, seed=11, lo=2, hi=12) + [[5]]:
            ref = plain_greedy(model, prompt, 30)
            res = gen.generate(prompt, cfg)
            assert res.token_ids == ref, (kind, attn, prompt, branch)
            accepted += sum(s.accepted_nodes for s in res.step_results)
        assert accepted > 0  # drafts were verified and some accepted, not skipped


def test_early_exit_trees_add_the_runner_up_where_the_top_two_are_close():
    model = tiny_model("llama", seed=4, sharpen=1.0)
    draft_model = exit_model.build_draft_model(model, exit_model.new_exit_layer(model, 1), 1)
    prompt = random_prompts(1, seed=11, lo=6, hi=7)[0]
    chain = EarlyExitDrafter(draft_model, None, max_len=4, min_prob=0.0)
    chain.begin(prompt)
    c = chain.draft(32)
    assert c.parents == [-1, 0, 1, 2]
    tree = EarlyExitDrafter(draft_model, None, max_len=4, min_prob=0.0, branch=0.0001)  # always close
    tree.begin(prompt)
    t = tree.draft(32)
    # each chain position gets its runner-up as a sibling: (sibling, top) pairs under one parent
    assert len(t) == 8 and [t.token_ids[i] for i in (1, 3, 5, 7)] == c.token_ids
    assert t.parents == [-1, -1, 1, 1, 3, 3, 5, 5]
    assert all(t.token_ids[i] != t.token_ids[i + 1] for i in (0, 2, 4, 6))
    small = EarlyExitDrafter(draft_model, None, max_len=4, min_prob=0.0, branch=0.0001)
    small.begin(prompt)
    assert len(small.draft(5)) == 5  # the budget caps the nodes: (sibling, top) x 2 + a top


def test_pack_marks_output_positions_only():
    from sufdec.eesd.train import pack

    ids, loss_mask = pack([([1, 2, 3, 4], 2), [5, 6]], chunk=4, eos=0)
    # flat: 1 2 3 4 <eos> 5 6 <eos>; position i predicts token i + 1
    assert ids.tolist() == [[1, 2, 3, 4], [0, 5, 6, 0]]
    assert loss_mask.tolist() == [[False, True, True, True], [False, True, True, False]]


def test_training_data_reads_token_ids_and_cuts_long_prompts(tmp_path):
    import json

    from sufdec.eesd.data import PROMPT_TAIL, sequences_from_jsonl

    path = tmp_path / "d.jsonl"
    long_prompt = list(range(1000, 1000 + PROMPT_TAIL + 50))
    path.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"prompt_token_ids": [7, 8], "token_ids": [9, 10, 11]},
                {"prompt_token_ids": long_prompt, "token_ids": [12, 13]},
                {"token_ids": [14, 15]},  # all of it output
                {"prompt_token_ids": [16], "token_ids": []},  # nothing to learn: skipped
            ]
        )
        + "\n"
    )
    seqs = sequences_from_jsonl(path, tokenizer=None, max_tokens=10_000)
    assert seqs[0] == ([7, 8, 9, 10, 11], 2)
    assert seqs[1] == (long_prompt[-PROMPT_TAIL:] + [12, 13], PROMPT_TAIL)
    assert seqs[2] == ([14, 15], 0)
    assert len(seqs) == 3


def test_held_out_figures_count_chains_and_close_runners_up():
    from sufdec.eesd.train import Teacher, held_out_figures

    # 5 positions; the student's (top, runner-up) and their probabilities per position
    tops = [(1, 2, 0.6, 0.4), (2, 0, 0.9, 0.1), (0, 1, 0.5, 0.45), (1, 0, 0.8, 0.2), (2, 1, 0.7, 0.3)]
    target = torch.tensor([[1, 2, 1, 1, 2]])  # agrees at 0, 1, 3, 4; the runner-up is right at 2
    probs = torch.full((1, 5, 3), 1e-6)
    for t, (a, b, pa, pb) in enumerate(tops):
        probs[0, t, a], probs[0, t, b] = pa, pb

    class Fake:
        vocab = torch.arange(3)  # draft ids are token ids
        head = torch.zeros(1)

        def __call__(self, hidden):
            return probs.log()

    teacher = Teacher(
        hidden=torch.zeros(1, 5, 1), top_p=None, top_i=None, argmax=target, loss_mask=torch.ones(1, 5, dtype=torch.bool)
    )
    f = held_out_figures(Fake(), teacher, torch.tensor([0]))
    assert f["top1"] == 0.8 and f["top2"] == 1.0
    assert f["chain"][:3] == [0.8, 0.5, 0.0]  # pairs (0,1) and (3,4) of 4; no triple
    # close: positions 0 (0.4 >= 0.3) and 2 (0.45 >= 0.25); the runner-up right at 2 only
    assert f["close"] == 0.4 and f["close_second_right"] == 0.5


def _damage(weights, meta, how):
    import json as _json

    from safetensors.torch import load_file, save_file

    if how == "truncated":
        weights.write_bytes(weights.read_bytes()[:200])
    elif how == "zeroed":
        weights.write_bytes(b"\0" * weights.stat().st_size)
    elif how == "garbage json":
        meta.write_text("{not json")
    elif how == "layer one":
        meta.write_text(_json.dumps({**_json.loads(meta.read_text()), "layer": "one"}))
    elif how == "vocab id":
        data = _json.loads(meta.read_text())
        data["extra"]["draft_vocab"] = [1, 2, 10**6]
        meta.write_text(_json.dumps(data))
    elif how in ("nan", "shape"):
        state = load_file(str(weights))
        name = next(iter(state))
        state[name] = state[name] * float("nan") if how == "nan" else state[name][:1]
        save_file(state, str(weights))


@pytest.mark.parametrize(
    "how, words",
    [
        ("truncated", "is damaged"),
        ("zeroed", "is damaged"),
        ("garbage json", "is damaged (JSONDecodeError"),
        ("layer one", "\"layer\" is 'one'"),
        ("vocab id", "token id 1000000, outside this model's vocabulary"),
        ("nan", "non-finite weights"),
        ("shape", "has shape"),
    ],
)
def test_a_damaged_exit_layer_is_named_not_a_traceback(tmp_path, how, words):
    """Issue 20 item 3: each used to end in SafetensorError, JSONDecodeError, TypeError or
    IndexError; each is now one ExitLayerError that names the file and says what to do."""
    model = tiny_model("llama", seed=1, sharpen=4.0)
    train_exit_layer(
        model,
        _sequences(model, n=6),
        TrainSettings(layer=1, steps=1, batch=4, chunk=32, draft_vocab=40, checkpoint_every=0),
        tmp_path,
    )
    weights = exit_model.find_exit_layer(tmp_path)
    _damage(weights, weights.with_suffix(".json"), how)
    with pytest.raises(exit_model.ExitLayerError, match=re.escape(words)) as err:
        exit_model.load_exit_layer(model, weights)
    assert "\n" not in str(err.value) and ("--fresh" in str(err.value) or "vocabulary" in str(err.value))
