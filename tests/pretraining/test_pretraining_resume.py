"""Pretraining resumes exactly (issue 9): a `booster fit --config pretraining/debug` run killed after its step-2
checkpoint and resumed with ``--ckpt_path last`` ends with bit-for-bit the weights of an uninterrupted 4-step
run (same crops, same RNG state, same optimizer state); the staged ``train.py`` encoder loop likewise, also
when stopped by its STOP file."""
import lightning.pytorch as pl
import pytest
import torch

from booster.cli import main


class Killed(RuntimeError):
    pass


class KillAt(pl.Callback):
    """Stops the process's training by an exception right before step ``step`` (after that step's checkpoint)."""

    def __init__(self, step: int = 2):
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            raise Killed(f"killed at step {self.step}")


class Steps(pl.Callback):
    def __init__(self):
        self.seen = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen.append(trainer.global_step)


class Touch(pl.Callback):
    """Creates ``path`` at the end of step ``step`` (what `touch RUN/STOP` does from outside)."""

    def __init__(self, path, step):
        self.path, self.step = path, step

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == self.step:
            self.path.touch()


def fit(music_dir, root, *extra):
    return main(["fit", "--config", "pretraining/debug", "--data.folders", f"[{music_dir}]", "--data.synth", "null",
                 "--data.cache_dir", str(root.parent / "cache"), "--trainer.default_root_dir", str(root),
                 "--trainer.logger", "false", "--last_every", "2", *extra])


def state(root):
    return torch.load(root / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


def test_killed_pretraining_resumes_bit_for_bit(music_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a, b = tmp_path / "a", tmp_path / "b"
    assert fit(music_dir, a) == 0
    kill = tmp_path / "kill.yaml"
    kill.write_text("trainer:\n  callbacks:\n    - class_path: test_pretraining_resume.KillAt\n"
                    "      init_args: {step: 2}\n")
    with pytest.raises(Killed):
        fit(music_dir, b, "--config", str(kill))
    half = state(b)
    assert half["global_step"] == 2
    assert fit(music_dir, b, "--ckpt_path", "last") == 0
    full, resumed = state(a), state(b)
    assert full["global_step"] == resumed["global_step"] == 4
    assert full["state_dict"].keys() == resumed["state_dict"].keys()
    assert [k for k, v in full["state_dict"].items() if not torch.equal(v, resumed["state_dict"][k])] == []
    assert any(not torch.equal(v, full["state_dict"][k]) for k, v in half["state_dict"].items())  # steps 3-4 moved
    sa, sb = full["optimizer_states"][0]["state"], resumed["optimizer_states"][0]["state"]
    assert all(torch.equal(sa[i]["exp_avg"], sb[i]["exp_avg"]) for i in sa)


def test_stream_crops_are_a_function_of_seed_epoch_index(music_dir, tmp_path):
    from booster.recipes.pretraining.data import CropDataset, build_cache, crop_loader

    entries = build_cache([music_dir], tmp_path / "cache", log=None)
    crops = lambda seed: CropDataset(entries, tmp_path / "cache", 0.5, 6, "train", 10, seed=seed)
    one = crop_loader(crops(0), 2, seed=0)
    epoch0, epoch1 = [b.clone() for b in one], [b.clone() for b in one]
    assert all(torch.equal(x, y) for x, y in zip(epoch0, crop_loader(crops(0), 2, seed=0)))   # no hidden state
    assert not any(torch.equal(x, y) for x, y in zip(epoch0, epoch1))                         # new crops per epoch
    assert not any(torch.equal(x, y) for x, y in zip(epoch0, crop_loader(crops(1), 2, seed=0)))  # per seed
    first = crop_loader(crops(0), 2, seed=0)
    it = iter(first)
    next(it)
    cont = crop_loader(crops(0), 2, seed=0)
    cont.load_state_dict(first.state_dict())          # a checkpoint taken after one batch
    assert [torch.equal(x, y) for x, y in zip(epoch0[1:], cont)] == [True, True]


def test_loaders_train_crops_are_the_resumable_stream(music_dir, tmp_path):
    """``loaders()`` hands out the crop stream itself (train.py builds its training set once): the same crops
    per seed, in worker processes too, and new ones in the next epoch."""
    from booster.data.resumable import ResumableLoader
    from booster.recipes.pretraining.data import loaders

    def batches(seed=0, workers=0, epochs=1):
        train = loaders([music_dir], tmp_path / "cache", 0.5, 2, steps_per_epoch=2, workers=workers, seed=seed)[0]
        assert isinstance(train, ResumableLoader) and len(train) == 2
        return [b.clone() for _ in range(epochs) for b in train]

    two = batches(epochs=2)
    assert [torch.equal(x, y) for x, y in zip(two, batches(workers=1, epochs=2))] == [True] * 4
    assert not any(torch.equal(x, y) for x, y in zip(two[:2], two[2:]))
    assert not any(torch.equal(x, y) for x, y in zip(two, batches(seed=1)))


def test_train_py_encoder_stage_resumes_bit_for_bit(music_dir, tmp_path):
    """The staged command (``python -m booster.recipes.pretraining.train encoder``) killed after a checkpoint
    and run again on the same folder continues exactly."""
    import shutil

    from booster.recipes.pretraining.train import run_encoder, run_tokenizer

    kw = dict(seconds=1.0, batch_size=2, cache=str(tmp_path / "cache"))
    a, b = tmp_path / "a", tmp_path / "b"
    run_tokenizer([music_dir], a, steps=3, levels=2, codebook_size=32, stat_batches=1, **kw)
    b.mkdir()
    for f in a.iterdir():
        if f.is_file():
            shutil.copy(f, b / f.name)   # the same stage-1 output in both runs
    enc = dict(size="debug", steps=4, val_every=2, warmup_steps=1, devices=1, **kw)
    run_encoder([music_dir], a, ckpt_minutes=60, **enc)
    with pytest.raises(Killed):   # a checkpoint at every step (tiny time interval), killed before step 3
        run_encoder([music_dir], b, ckpt_minutes=1e-9, callbacks=[KillAt(2)], **enc)
    assert state(b)["global_step"] == 2
    c = tmp_path / "c"   # a checkpoint of the version before exact resume: no data position, no RNG state
    shutil.copytree(b, c)
    old = state(c)
    del old["loops"]["fit_loop"]["state_dict"]["combined_loader"]
    old["callbacks"] = {k: v for k, v in old["callbacks"].items() if "Rng" not in k}
    torch.save(old, c / "checkpoints" / "last.ckpt")
    run_encoder([music_dir], b, ckpt_minutes=60, **enc)
    full, resumed = state(a), state(b)
    assert full["global_step"] == resumed["global_step"] == 4
    assert [k for k, v in full["state_dict"].items() if not torch.equal(v, resumed["state_dict"][k])] == []
    steps = Steps()
    run_encoder([music_dir], c, ckpt_minutes=60, callbacks=[steps], **enc)   # still resumes, not exactly
    assert steps.seen == [2, 3] and state(c)["global_step"] == 4
    d = tmp_path / "d"   # `touch RUN/STOP` at step 3 (after the check of step 2), then the same command again
    shutil.copytree(a, d, ignore=shutil.ignore_patterns("checkpoints", "export", "logs"))
    run_encoder([music_dir], d, ckpt_minutes=60, callbacks=[Touch(d / "STOP", 2)], **enc)
    assert state(d)["global_step"] == 3
    assert sorted(p.name for p in (d / "checkpoints").iterdir()) == ["last.ckpt"]   # no last-v1.ckpt at the end
    (d / "STOP").unlink()
    run_encoder([music_dir], d, ckpt_minutes=60, **enc)
    assert [k for k, v in full["state_dict"].items() if not torch.equal(v, state(d)["state_dict"][k])] == []
