import math
import pickle

import pytest
import torch

from ganref import data, nets, train, vanilla


def _state(seed=0, hidden=32):
    torch.manual_seed(seed)
    G, D = nets.MLPGenerator(hidden=hidden, depth=2), nets.MLPDiscriminator(hidden=hidden, depth=2)
    cfg = vanilla.VanillaConfig()
    return train.State({"G": G, "D": D}, vanilla.make_optimizers(G, D, cfg), torch.Generator().manual_seed(seed)), cfg


def _params(state):
    return torch.cat([p.detach().flatten() for m in state.modules.values() for p in m.parameters()])


def test_resume_is_exact(tmp_path):
    batches = data.batch_sampler(data.ring8().sample, 32)
    s1, cfg = _state()
    step = lambda s, b: vanilla.train_step(s, b, cfg)
    train.fit(step, s1, batches, 40, progress=False)

    s2, _ = _state()
    ckpt = tmp_path / "run.pt"
    train.fit(step, s2, batches, 20, checkpoint=ckpt, progress=False)
    s3, _ = _state(seed=123)  # a fresh process would start from other random weights
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

    train.fit(lambda st, b: vanilla.train_step(st, b, cfg), s, data.batch_sampler(data.ring8().sample, 16), 30,
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
    train.fit(lambda st, b: vanilla.train_step(st, b, cfg), s, data.batch_sampler(data.ring8().sample, 8), 2,
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
