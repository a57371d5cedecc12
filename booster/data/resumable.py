"""Training that resumes exactly: a data loader that continues its data stream from a checkpoint and a
callback that restores the random number generators.

Lightning stores a data loader's ``state_dict()`` in checkpoints when the loader has ``state_dict`` /
``load_state_dict`` (otherwise it warns "dataloader is not resumable" and restarts the epoch's stream).
:class:`ResumableLoader` is a ``torch.utils.data.DataLoader`` with that interface: its state is the epoch
and the number of batches the training loop has consumed, and after ``load_state_dict`` its next epoch
starts at the following batch, skipping on the index level (no item is loaded to be thrown away). Its
order is ``0..n-1`` or, with ``shuffle``, a permutation seeded by ``(seed, epoch)``; its workers' seeds
come from a private generator, so iterating it never draws from the global RNG. Under DDP each rank takes
every world-size-th index (as DistributedSampler); set ``trainer.use_distributed_sampler=False`` so that
Lightning keeps this loader instead of rebuilding it with its own sampler.

Lightning does not fetch ahead from a loader that has a length (this one has), so the batches drawn
from it are the batches the training loop consumed. Lightning sets the epoch through the sampler's
``set_epoch`` (as for DistributedSampler); used alone, the loader counts epochs itself.

:class:`RngStateCallback` saves the Python, NumPy, torch and CUDA generator states in each checkpoint and
restores them right before the first training batch after a resume. Together these reproduce an
uninterrupted run bit for bit when items are a pure function of ``(seed, epoch, index)`` (as
:class:`booster.data.stems.RemixDataset`) rather than draws from the global RNG.
"""
from __future__ import annotations

import random

import numpy as np
import torch

STATE_VERSION = 1


def world() -> tuple[int, int]:
    """(rank, world size) of torch.distributed when it runs (DDP), else (0, 1)."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _OffsetSampler(torch.utils.data.Sampler):
    """This rank's indices of one epoch (in order or a seeded permutation, padded by wrapping to a
    multiple of the world size as DistributedSampler does), starting after ``skip`` of them."""

    def __init__(self, n: int, shuffle: bool, seed: int):
        self.n, self.shuffle, self.seed = int(n), bool(shuffle), int(seed)
        self.epoch, self.skip, self.explicit = 0, 0, False

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.explicit = int(epoch), True

    def per_rank(self) -> int:
        return -(-self.n // world()[1])

    def order(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            idx = torch.randperm(self.n, generator=g).tolist()
        else:
            idx = list(range(self.n))
        rank, size = world()
        idx = (idx * (1 + size))[: self.per_rank() * size]
        return idx[rank::size]

    def __iter__(self):
        return iter(self.order()[self.skip:])

    def __len__(self) -> int:
        return self.per_rank() - self.skip


class ResumableLoader(torch.utils.data.DataLoader):
    """``ResumableLoader(dataset, batch_size, shuffle=False, seed=0, drop_last=False, **kw)``:
    a DataLoader (``kw``: ``num_workers``, ``collate_fn``, ``pin_memory``, ...) whose position in the data
    stream is saved in checkpoints and restored on resume (see the module docstring)."""

    def __init__(self, dataset, batch_size: int = 1, *, shuffle: bool = False, seed: int = 0,
                 drop_last: bool = False, **kwargs):
        for key in ("sampler", "batch_sampler", "generator"):
            if key in kwargs:
                raise TypeError(f"ResumableLoader chooses its own {key}")
        sampler = _OffsetSampler(len(dataset), shuffle, seed)
        super().__init__(dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last,
                         generator=torch.Generator().manual_seed(int(seed)), **kwargs)
        self._order = sampler
        self._drawn = 0           # batches handed out in the current epoch (including skipped ones)
        self._exhausted = False
        self._pending: dict | None = None

    @property
    def batches_per_epoch(self) -> int:
        n, b = self._order.per_rank(), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def __len__(self) -> int:
        return self.batches_per_epoch

    def __iter__(self):
        state, self._pending = self._pending, None
        o = self._order
        if state is not None and not o.explicit:  # nobody set the epoch: continue the saved one
            o.epoch = state["epoch"] + (1 if state["consumed"] >= state["batches"] else 0)
        elif state is None and not o.explicit and (self._drawn or self._exhausted):
            o.epoch += 1
        o.explicit = False
        resume = state is not None and state["epoch"] == o.epoch and state["consumed"] < state["batches"]
        skip = state["consumed"] if resume else 0
        o.skip = skip * self.batch_size
        self.generator.manual_seed(o.seed * 1_000_003 + o.epoch)
        self._drawn, self._exhausted = skip, False
        for batch in super().__iter__():
            self._drawn += 1
            yield batch
        self._exhausted = True

    def state_dict(self) -> dict:
        return {"version": STATE_VERSION, "epoch": self._order.epoch, "consumed": self._drawn,
                "batches": self.batches_per_epoch, "batch_size": self.batch_size, "seed": self._order.seed,
                "shuffle": self._order.shuffle, "items": len(self.dataset)}

    def load_state_dict(self, state: dict) -> None:
        from ..errors import CheckpointError

        if state.get("version") != STATE_VERSION:
            raise CheckpointError(f"data loader state version {state.get('version')!r} is not {STATE_VERSION}")
        mine = {"batch_size": self.batch_size, "seed": self._order.seed, "shuffle": self._order.shuffle,
                "items": len(self.dataset)}
        diff = [f"{k} {state.get(k)!r} -> {v!r}" for k, v in mine.items() if state.get(k) != v]
        if diff:
            raise CheckpointError("the checkpoint's data stream cannot be continued exactly: "
                                  + "; ".join(diff) + ". Resume with the settings it was trained with")
        self._pending = dict(state)


def rng_states() -> dict:
    """The state of every generator a training step may draw from (Python, NumPy, torch CPU, CUDA)."""
    out = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_states(states: dict) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _to_safe(states: dict) -> dict:
    """Generator states as tensors, ints and strings only (loadable with ``torch.load(weights_only=True)``)."""
    version, internal, gauss = states["python"]
    kind, keys, pos, has_gauss, cached = states["numpy"]
    out = {"python": [version, torch.tensor(internal, dtype=torch.int64), gauss],
           "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
           "torch": states["torch"]}
    if "cuda" in states:
        out["cuda"] = list(states["cuda"])
    return out


def _from_safe(safe: dict) -> dict:
    version, internal, gauss = safe["python"]
    kind, keys, pos, has_gauss, cached = safe["numpy"]
    out = {"python": (version, tuple(int(v) for v in internal.tolist()), gauss),
           "numpy": (kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached), "torch": safe["torch"]}
    if "cuda" in safe:
        out["cuda"] = safe["cuda"]
    return out


def _callback_base():
    import lightning.pytorch as pl
    return pl.Callback


class RngStateCallback(_callback_base()):
    """Saves :func:`rng_states` in checkpoints; restores them before the first training batch after a
    resume (so whatever Lightning draws while restoring, e.g. a sanity check, does not shift them).

    Validation leaves the training stream untouched: the states taken at the end of each training step are
    put back when a validation ends. A checkpoint written at a step that also validates holds the states
    from before that validation (or, written at validation end, the ones put back), so the uninterrupted
    run must continue from them too; validation draws (masks, noise, and the base seed a ``DataLoader``
    without ``generator=`` takes from torch's RNG when Lightning creates its iterator, before any
    validation hook) would otherwise shift the uninterrupted run only."""

    def __init__(self):
        self._restore: dict | None = None
        self._after_step: dict | None = None

    def state_dict(self) -> dict:
        return {"version": STATE_VERSION, "states": _to_safe(rng_states())}

    def load_state_dict(self, state_dict: dict) -> None:
        self._restore = _from_safe(state_dict["states"]) if state_dict.get("states") else None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._restore is not None:
            set_rng_states(self._restore)
            self._restore = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._after_step = rng_states()   # before Lightning creates a validation iterator

    def on_validation_end(self, trainer, pl_module) -> None:
        if self._after_step is not None and not trainer.sanity_checking:
            set_rng_states(self._after_step)
            self._after_step = None


def _model_checkpoint_base():
    from lightning.pytorch.callbacks import ModelCheckpoint
    return ModelCheckpoint


class AtomicModelCheckpoint(_model_checkpoint_base()):
    """Lightning's ModelCheckpoint, writing each file atomically (:func:`booster.fsutil.atomic_path`):
    a run killed while saving leaves the previous checkpoint intact and no partial ``.ckpt``."""

    def _save_checkpoint(self, trainer, filepath: str) -> None:
        from pathlib import Path

        from ..fsutil import atomic_path

        if trainer.is_global_zero:
            with atomic_path(Path(filepath)) as tmp:
                trainer.save_checkpoint(str(tmp), self.save_weights_only)  # rank 0 writes
        else:
            trainer.save_checkpoint(filepath, self.save_weights_only)  # collective call; writes nothing
        trainer.strategy.barrier()
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        if trainer.is_global_zero:
            from weakref import proxy
            for logger in trainer.loggers:
                logger.after_save_checkpoint(proxy(self))


class LastCheckpoint(AtomicModelCheckpoint):
    """``last.ckpt`` every ``every_n_train_steps`` steps and every ``minutes`` of training (wall clock, when
    given), whichever comes first, whatever any monitored metric does (a ModelCheckpoint with ``monitor``
    saves nothing until its metric exists), and at the end of the step that reaches ``max_steps`` (so the file
    holds the final weights and resumes exactly, e.g. to train further); a run that ends otherwise (max_epochs,
    max_time, early stopping) is saved when training ends unless that step was saved already. A run that is
    interrupted (Ctrl-C, kill) keeps its last scheduled file. ``every_n_train_steps=0``: on the time schedule only. Add it next to the monitored checkpoint callback, with the same ``dirpath`` so
    ``--ckpt_path last`` finds it."""

    def __init__(self, dirpath=None, every_n_train_steps: int = 50, minutes: float | None = None):
        from datetime import timedelta

        steps = int(every_n_train_steps or 0)
        interval = None if minutes is None else timedelta(minutes=float(minutes))
        if steps < 1 and interval is None:
            raise ValueError("LastCheckpoint needs every_n_train_steps >= 1 or minutes")
        super().__init__(dirpath=dirpath, monitor=None, save_top_k=0, save_last=True,
                         every_n_train_steps=steps or None, train_time_interval=None if steps else interval,
                         enable_version_counter=False)
        # both schedules: Lightning's step-end check saves when either is due (its __init__ refuses the pair)
        self._train_time_interval = interval

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        if 0 < trainer.max_steps <= trainer.global_step and self._last_global_step_saved != trainer.global_step:
            self.save_now(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        super().on_train_end(trainer, pl_module)
        if not trainer.interrupted and trainer.global_step > 0 and self._last_global_step_saved != trainer.global_step:
            self.save_now(trainer)

    def save_now(self, trainer) -> None:
        """Write ``last.ckpt`` at this step, as a schedule does (e.g. at a step's end before a requested stop,
        so a resumed run continues mid-epoch exactly); the end of training then leaves it alone."""
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
