import functools
import math
import pickle

import pytest
import torch

from ganref import data, nets, train
from ganref.methods import vanilla


def _state(seed=0, hidden=32, init_seed=None):
    torch.manual_seed(seed if init_seed is None else init_seed)
    G, D = nets.MLPGenerator(hidden=hidden, depth=2), nets.MLPDiscriminator(hidden=hidden, depth=2)
    cfg = vanilla.VanillaConfig()
    return train.State({"G": G, "D": D}, vanilla.make_optimizers(G, D, cfg), torch.Generator().manual_seed(seed)), cfg


def _params(state):
    return torch.cat([p.detach().flatten() for m in state.modules.values() for p in m.parameters()])


def test_resume_is_exact(tmp_path):
    batches = data.batch_sampler(data.ring8().sample, 32)
    s1, cfg = _state()
    step = lambda s, b: vanilla.vanilla_step(s, b, cfg)
    train.fit(step, s1, batches, 40, progress=False)

    s2, _ = _state()
    ckpt = tmp_path / "run.pt"
    train.fit(step, s2, batches, 20, checkpoint=ckpt, progress=False)
    s3, _ = _state(init_seed=123)  # a fresh process would start from other random weights
    train.fit(step, s3, batches, 40, checkpoint=ckpt, progress=False)
    assert s3.step == 40
    torch.testing.assert_close(_params(s1), _params(s3), rtol=0, atol=0)
    assert s1.history == s3.history
    # Adam's moments were restored too: one more identical step keeps them equal
    train.fit(step, s1, batches, 41, progress=False)
    train.fit(step, s3, batches, 41, progress=False)
    torch.testing.assert_close(_params(s1), _params(s3), rtol=0, atol=0)


def test_periodic_checkpoints_and_evaluation(tmp_path):
    s, cfg = _state()
    calls = []

    def eval_fn(state):
        calls.append(state.step)
        assert not state.modules["G"].training  # evaluated in eval mode
        return {"mean_x": state.modules["G"](torch.zeros(4, 2)).mean()}

    train.fit(lambda st, b: vanilla.vanilla_step(st, b, cfg), s, data.batch_sampler(data.ring8().sample, 16), 30,
              eval_fn=eval_fn, eval_every=10, checkpoint=tmp_path / "c.pt", checkpoint_every=10, progress=False)
    assert calls == [10, 20, 30] and [e[0] for e in s.evals] == [10, 20, 30]
    assert s.modules["G"].training
    ckpt = torch.load(tmp_path / "c.pt", weights_only=True)
    assert ckpt["step"] == 30 and ckpt["format"] == train.CHECKPOINT_FORMAT
    assert not list(tmp_path.glob("*.tmp"))


def test_non_finite_loss_stops_with_step_and_last_checkpoint(tmp_path):
    s, _ = _state()

    def step_fn(state, batch):
        return {"d_loss": torch.tensor(float("nan") if state.step == 6 else 1.0)}

    with pytest.raises(train.NonFiniteLossError, match=r"d_loss became nan at step 7; last good checkpoint: .*c\.pt \(step 5\)"):
        train.fit(step_fn, s, lambda g: None, 10, checkpoint=tmp_path / "c.pt", checkpoint_every=5, progress=False)
    s2, _ = _state()
    with pytest.raises(train.NonFiniteLossError, match="g_loss became inf at step 1; last good checkpoint: none written"):
        train.fit(lambda st, b: {"g_loss": math.inf}, s2, lambda g: None, 3, progress=False)


def test_checkpoint_from_another_model_is_refused(tmp_path):
    s, cfg = _state(hidden=32)
    train.fit(lambda st, b: vanilla.vanilla_step(st, b, cfg), s, data.batch_sampler(data.ring8().sample, 8), 2,
              checkpoint=tmp_path / "c.pt", progress=False)
    other, _ = _state(hidden=16)
    with pytest.raises(ValueError, match="was saved from another model: module 'G'"):
        train.load_checkpoint(other, tmp_path / "c.pt")
    just_d = train.State({"D": nets.MLPDiscriminator(hidden=32, depth=2)})
    with pytest.raises(ValueError, match="holds modules"):
        train.load_checkpoint(just_d, tmp_path / "c.pt")


def test_a_pickled_object_is_not_unpickled(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"format": train.CHECKPOINT_FORMAT, "x": Evil()}))
    s, _ = _state()
    with pytest.raises(ValueError, match="could not be read as a ganref checkpoint"):
        train.load_checkpoint(s, path)


def test_missing_checkpoint(tmp_path):
    s, _ = _state()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        train.load_checkpoint(s, tmp_path / "none.pt")


@pytest.mark.parametrize("kwargs, match", [
    (dict(steps=-1), "steps must be an integer >= 0"),
    (dict(steps=2.5), "steps must be an integer >= 0"),
    (dict(steps=5, eval_every=-2), "eval_every must be"),
    (dict(steps=5, checkpoint_every=2), "checkpoint_every > 0 needs a checkpoint path"),
    (dict(steps=5, log_every=0), "log_every must be"),
])
def test_bad_arguments(kwargs, match):
    s, _ = _state()
    with pytest.raises(ValueError, match=match):
        train.fit(lambda st, b: {}, s, lambda g: None, **kwargs)


def test_zero_steps_is_a_no_op():
    s, _ = _state()
    before = _params(s).clone()
    train.fit(lambda st, b: {}, s, lambda g: None, 0, progress=False)
    assert s.step == 0 and torch.equal(before, _params(s))


# ----------------------------------------------------------------------------- issue 11, items 3-5


def _poison_after(state, step):
    """A gradient hook that turns G's update into NaN once the run has done ``step`` steps."""
    G = state.modules["G"]
    first = next(G.parameters())
    first.register_hook(lambda g: g * float("nan") if state.step >= step else g)


def test_a_nan_update_never_becomes_the_last_good_checkpoint(tmp_path):
    """Reproduction: the update of step 4 made G's weights NaN; the step-4 checkpoint held 32 NaN
    parameters and was named 'last good', overwriting the good step-2 state."""
    s, cfg = _state()
    _poison_after(s, 3)  # the 4th step's G update is NaN
    ckpt = tmp_path / "run.pt"
    batches = data.batch_sampler(data.ring8().sample, 16)
    with pytest.raises(train.NonFiniteError, match=r"became non-finite by step 4; the checkpoint was not written; "
                                                   r"last good checkpoint: .*run\.pt \(step 2\)"):
        train.fit(lambda st, b: vanilla.vanilla_step(st, b, cfg), s, batches, 10, checkpoint=ckpt,
                  checkpoint_every=2, progress=False)
    good, _ = _state()
    train.load_checkpoint(good, ckpt)  # the step-2 file is intact and finite
    assert good.step == 2 and torch.isfinite(_params(good)).all()


def test_a_checkpoint_with_nan_weights_or_a_negative_step_is_refused(tmp_path):
    s, cfg = _state()
    train.fit(lambda st, b: vanilla.vanilla_step(st, b, cfg), s, data.batch_sampler(data.ring8().sample, 8), 2,
              checkpoint=tmp_path / "c.pt", progress=False)
    ckpt = torch.load(tmp_path / "c.pt", weights_only=True)
    bad = dict(ckpt, modules={**ckpt["modules"], "G": {k: v * float("nan") for k, v in ckpt["modules"]["G"].items()}})
    torch.save(bad, tmp_path / "nan.pt")
    with pytest.raises(ValueError, match=r"holds non-finite values \(modules\.G\..*\): it is not a good checkpoint"):
        train.load_checkpoint(_state()[0], tmp_path / "nan.pt")
    torch.save(dict(ckpt, step=-3), tmp_path / "neg.pt")
    with pytest.raises(ValueError, match="holds step -3: a checkpoint's step must be an integer >= 0"):
        train.load_checkpoint(_state()[0], tmp_path / "neg.pt")


@pytest.mark.parametrize("change, expected", [
    ("lr", r"config\.cfg\.lr: 0\.0002 in the checkpoint, 0\.001 now"),
    ("seed", r"seed: 0 in the checkpoint, 5 now"),
    ("data", r"data: sampler .* of 8 Gaussians.* in the checkpoint, sampler .* of 25 Gaussians.* now"),
])
def test_resume_refuses_a_changed_run_and_lists_the_differences(tmp_path, change, expected):
    """Reproduction: a new lr, seed and data set were silently ignored on resume."""
    ckpt = tmp_path / "run.pt"
    s, cfg = _state()
    train.fit(functools.partial(vanilla.vanilla_step, cfg=cfg), s, data.batch_sampler(data.ring8().sample, 8), 4,
              checkpoint=ckpt, progress=False)
    s2, cfg2 = _state(seed=5 if change == "seed" else 0)
    cfg2 = vanilla.VanillaConfig(lr=1e-3) if change == "lr" else cfg2
    mix = data.grid25() if change == "data" else data.ring8()
    with pytest.raises(ValueError, match="made by another run; refusing to resume. Differences: " + expected):
        train.fit(functools.partial(vanilla.vanilla_step, cfg=cfg2), s2, data.batch_sampler(mix.sample, 8), 8,
                  checkpoint=ckpt, progress=False)


def test_a_lambda_step_is_described_by_the_config_it_closes_over():
    s, cfg = _state()
    info = train.describe_run(lambda st, b: vanilla.vanilla_step(st, b, cfg), s, data.batch_sampler(data.ring8().sample, 8))
    assert info["config"]["cfg"]["type"] == "VanillaConfig" and info["config"]["cfg"]["lr"] == "0.0002"
    assert info["seed"] == 0 and "8 Gaussians" in info["data"]


def test_a_checkpoint_ahead_of_steps_is_an_error(tmp_path):
    s, cfg = _state()
    step = functools.partial(vanilla.vanilla_step, cfg=cfg)
    batches = data.batch_sampler(data.ring8().sample, 8)
    train.fit(step, s, batches, 6, checkpoint=tmp_path / "c.pt", progress=False)
    with pytest.raises(ValueError, match="is at step 6, past steps=4"):
        train.fit(step, _state()[0], batches, 4, checkpoint=tmp_path / "c.pt", progress=False)


def test_resume_false_never_names_a_foreign_checkpoint_last_good(tmp_path):
    s, cfg = _state()
    train.fit(functools.partial(vanilla.vanilla_step, cfg=cfg), s, data.batch_sampler(data.ring8().sample, 8), 3,
              checkpoint=tmp_path / "c.pt", progress=False)

    def nan_step(state, batch):
        return {"d_loss": torch.tensor(float("nan"))}

    with pytest.raises(train.NonFiniteError, match="last good checkpoint: none written"):
        train.fit(nan_step, _state()[0], lambda g: None, 5, checkpoint=tmp_path / "c.pt", resume=False, progress=False)


def _noisy_eval(state):
    """An evaluation that draws noise from the run's generator (it gets its own during callbacks)."""
    z = state.randn(64, 2)
    return {"g_mean": state.modules["G"](z).mean()}


def test_evaluation_never_changes_the_training_stream(tmp_path):
    """Reproduction: an eval drawing from the run's generator, and an extra eval at the stop step,
    made 30 steps differ from 15 + resume + 15 (params by 2e-3; evals at [10, 15, 20, 30] vs [10, 20, 30])."""
    batches = data.batch_sampler(data.ring8().sample, 16)
    s1, cfg = _state()
    step = functools.partial(vanilla.vanilla_step, cfg=cfg)
    train.fit(step, s1, batches, 30, eval_fn=_noisy_eval, eval_every=10, progress=False)
    s_plain, _ = _state()
    train.fit(step, s_plain, batches, 30, progress=False)
    torch.testing.assert_close(_params(s1), _params(s_plain), rtol=0, atol=0)  # evals change nothing

    ckpt = tmp_path / "r.pt"
    s2, _ = _state()
    train.fit(step, s2, batches, 15, eval_fn=_noisy_eval, eval_every=10, checkpoint=ckpt, progress=False)
    s3, _ = _state(init_seed=99)
    train.fit(step, s3, batches, 30, eval_fn=_noisy_eval, eval_every=10, checkpoint=ckpt, progress=False)
    torch.testing.assert_close(_params(s1), _params(s3), rtol=0, atol=0)
    assert [e[0] for e in s1.evals] == [e[0] for e in s3.evals] == [10, 20, 30]
    assert s1.evals == s3.evals


def test_callbacks_keep_any_object_and_resume_exactly(tmp_path):
    batches = data.batch_sampler(data.ring8().sample, 16)
    z = torch.randn(5, 2, generator=torch.Generator().manual_seed(3))
    snap = train.Every(4, lambda st: {"x": st.modules["G"](z), "noise": st.randn(2)}, "snap")
    s1, cfg = _state()
    step = functools.partial(vanilla.vanilla_step, cfg=cfg)
    train.fit(step, s1, batches, 12, callbacks=[snap], progress=False)
    assert [k for k, _ in s1.records["snap"]] == [4, 8, 12]
    assert s1.records["snap"][0][1]["x"].shape == (5, 2)

    s2, _ = _state()
    train.fit(step, s2, batches, 6, callbacks=[snap], checkpoint=tmp_path / "c.pt", progress=False)
    s3, _ = _state(init_seed=7)
    train.fit(step, s3, batches, 12, callbacks=[snap], checkpoint=tmp_path / "c.pt", progress=False)
    assert [k for k, _ in s3.records["snap"]] == [4, 8, 12]
    for (_, a), (_, b) in zip(s1.records["snap"], s3.records["snap"]):
        torch.testing.assert_close(a["x"], b["x"], rtol=0, atol=0)
        torch.testing.assert_close(a["noise"], b["noise"], rtol=0, atol=0)
    assert s3.elapsed > 0


def test_a_callback_result_that_a_checkpoint_cannot_hold_is_named(tmp_path):
    s, cfg = _state()
    bad = train.Every(2, lambda st: object(), "figure")
    with pytest.raises(ValueError, match="callback 'figure'.s result\\[0\\] is a object, which a checkpoint cannot hold"):
        train.fit(functools.partial(vanilla.vanilla_step, cfg=cfg), s, data.batch_sampler(data.ring8().sample, 8), 2,
                  callbacks=[bad], checkpoint=tmp_path / "c.pt", progress=False)
    s2, _ = _state()  # without a checkpoint any object is fine
    train.fit(functools.partial(vanilla.vanilla_step, cfg=cfg), s2, data.batch_sampler(data.ring8().sample, 8), 2,
              callbacks=[bad], progress=False)
    assert len(s2.records["figure"]) == 1


@pytest.mark.parametrize("kwargs, match", [
    (dict(callbacks=[lambda s: 1]), "callbacks must be train.Every"),
    (dict(callbacks=[train.Every(1, lambda s: 1, "a"), train.Every(2, lambda s: 2, "a")]), "callback names must be unique"),
    (dict(eval_fn=3, eval_every=1), "eval_fn must be callable"),
])
def test_bad_callbacks(kwargs, match):
    s, _ = _state()
    with pytest.raises(ValueError, match=match):
        train.fit(lambda st, b: {}, s, lambda g: None, 2, progress=False, **kwargs)


@pytest.mark.parametrize("args, match", [
    ((0, lambda s: 1, "x"), "every must be an integer >= 1"),
    ((1, 3, "x"), "fn must be callable"),
    ((1, lambda s: 1, ""), "name must be a non-empty string"),
])
def test_bad_every(args, match):
    with pytest.raises(ValueError, match=match):
        train.Every(*args)


def test_ema_in_fit_matches_its_closed_form():
    """EMA with decay d over n updates: d^n theta_0 + (1 - d) sum_k d^(n-k) theta_k, checked on G's weights."""
    s, cfg = _state()
    G = s.modules["G"]
    d = 0.9
    s.ema["G"] = train.EMA(G, d)
    expected = [p.detach().double().clone() for p in G.parameters()]  # theta_0
    step = functools.partial(vanilla.vanilla_step, cfg=cfg)
    batches = data.batch_sampler(data.ring8().sample, 8)
    for k in range(1, 6):
        train.fit(step, s, batches, k, progress=False)
        expected = [d * e + (1 - d) * p.detach().double() for e, p in zip(expected, G.parameters())]
    got = [p.detach().double() for p in s.ema["G"].module.parameters()]
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)  # float32 lerp vs float64 recursion
    assert int(s.ema["G"].updates) == 5


def test_state_refuses_an_ema_of_an_unknown_module():
    G = nets.MLPGenerator(hidden=8, depth=1)
    with pytest.raises(ValueError, match=r"ema averages modules \['H'\]"):
        train.State({"G": G}, ema={"H": train.EMA(G)})
