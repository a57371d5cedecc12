"""Run the two pretraining stages and export (library functions + ``python -m`` entry point).

    python -m booster.recipes.pretraining.train tokenizer --data DIR... --run RUN
    python -m booster.recipes.pretraining.train encoder   --data DIR... --run RUN [--size mini | --init CKPT]
    python -m booster.recipes.pretraining.train export    --run RUN --out DIR

``RUN`` holds everything a run needs to resume: ``stat.json`` (mel statistics), ``tokenizer.*``,
``checkpoints/last.ckpt`` (Lightning, saved every few minutes) and ``export/`` (official layout,
refreshed at every checkpoint). Re-running ``encoder`` with the same ``RUN`` resumes exactly (same crops,
generator states and weights as an uninterrupted run), also after ``touch RUN/STOP``. A user error (a stage
run out of order, a missing or empty data folder, NaN audio, a bad option) is one line and exit status 1.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from datetime import timedelta
from pathlib import Path

import lightning as L
import torch

from ...data.resumable import RngStateCallback
from ...errors import BoosterError, ConfigError
from ...fsutil import atomic_path, check_checkpoint_file, check_finite_option, check_output_dir, write_text
from .data import audio_files, loaders
from .module import PretrainModule, TokenizerModule, export, mel_statistics


class TextLog(L.Callback):
    """Prints one line of metrics every ``every`` steps (for ``nohup ... > log.txt``)."""

    def __init__(self, every: int = 10):
        self.every, self.t0 = every, time.time()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if trainer.global_step % self.every == 0 and trainer.is_global_zero:
            m = {k: round(float(v), 4) for k, v in trainer.callback_metrics.items()}
            print(f"[{time.strftime('%H:%M:%S')}] step {trainer.global_step} "
                  f"{(time.time() - self.t0) / 60:.1f} min {json.dumps(m, sort_keys=True)}", flush=True)

    def on_validation_end(self, trainer, module):
        if trainer.is_global_zero:
            m = {k: round(float(v), 4) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
            print(f"[{time.strftime('%H:%M:%S')}] validation at step {trainer.global_step}: "
                  f"{json.dumps(m, sort_keys=True)}", flush=True)


class StopFile(L.Callback):
    """Ends training cleanly when the file ``path`` appears (``touch RUN/STOP``): the trainer's
    :class:`~booster.data.resumable.LastCheckpoint` writes ``last.ckpt`` at that step (mid-epoch, so re-running
    continues exactly), then training stops."""

    def __init__(self, path: Path):
        self.path, self.stopped = path, False

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        from ...data.resumable import LastCheckpoint
        if self.path.exists() and not self.stopped:
            print(f"{self.path} found: stopping at step {trainer.global_step}", flush=True)
            for cb in trainer.callbacks:
                if isinstance(cb, LastCheckpoint):
                    cb.save_now(trainer)   # collective call; rank 0 writes
            self.stopped = True
            trainer.should_stop = True


class PeriodicExport(L.Callback):
    """Exports the encoder in the official layout to ``directory`` whenever a checkpoint is saved."""

    def __init__(self, directory: Path, extra: dict):
        self.directory, self.extra = directory, extra

    def on_save_checkpoint(self, trainer, module, checkpoint):
        if trainer.is_global_zero:
            export(module, self.directory, extra=self.extra)


def _trainer(run: Path, max_steps: int, precision: str, accumulate: int, val_every: int,
             ckpt_minutes: float, max_minutes: float | None, callbacks=(), devices="auto", strategy="auto",
             **kwargs):
    from lightning.pytorch.loggers import CSVLogger

    from ...data.resumable import LastCheckpoint
    ckpt = LastCheckpoint(run / "checkpoints", every_n_train_steps=0, minutes=ckpt_minutes)
    return L.Trainer(**kwargs, max_steps=max_steps, precision=precision, accumulate_grad_batches=accumulate,
                     val_check_interval=val_every, check_val_every_n_epoch=None, gradient_clip_val=1.0,
                     max_time=None if max_minutes is None else timedelta(minutes=max_minutes),
                     callbacks=[ckpt, TextLog(), *callbacks], logger=CSVLogger(str(run), name="logs"),
                     enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                     log_every_n_steps=10,
                     devices=devices, strategy=strategy, accelerator="auto")


def run_tokenizer(data, run, *, seconds: float = 8.0, batch_size: int = 8, steps: int = 300,
                  levels: int = 8, codebook_size: int = 1024, code_dim: int = 16, lr: float = 2e-3,
                  stat_batches: int = 8, precision: str = "32-true", teacher: str | None = None,
                  teacher_layer: int | None = None, cache: str | None = None) -> Path:
    """Stage 1: mel statistics (``stat.json``) and the Mel-RVQ tokenizer (``tokenizer.*``) in ``run``.
    Refused once ``run`` holds an encoder checkpoint (its targets are this tokenizer's codes)."""
    run = Path(run)
    if (run / "checkpoints" / "last.ckpt").is_file():
        raise ConfigError(f"{str(run)!r} already holds an encoder trained on its tokenizer; a new tokenizer "
                          "would change its targets. Use another --run (or delete that run folder)")
    input_dim, source = 512, None
    if teacher is not None:
        from ...features import resolve_layers
        from ...muq import load_backbone
        source = load_backbone(teacher)
        resolve_layers(source, teacher_layer)   # one line for a layer the teacher does not have
        input_dim = source.hidden_size
    cache = cache or str(run.parent / "audio_cache")
    train, val, hours, val_hours = loaders(data, cache, seconds, batch_size, steps_per_epoch=steps)
    check_output_dir(run, "--run")   # after the data is read: a run refused for its data leaves no folder
    print(f"training audio: {hours:.2f} h; held back: {val_hours:.2f} h", flush=True)
    stat_path = run / "stat.json"
    if stat_path.is_file():
        stat = json.loads(stat_path.read_text())
    else:
        stat = mel_statistics(itertools.islice(train, stat_batches))   # at most one epoch (`steps` batches)
        write_text(stat_path, json.dumps(stat, indent=2))
    tok = {"input_dim": input_dim, "num_levels": levels, "codebook_size": codebook_size, "code_dim": code_dim,
           "source": "mel" if teacher is None else f"layer:{teacher_layer}", "teacher": teacher}
    module = TokenizerModule(tokenizer=tok, stat=stat, teacher=teacher, teacher_layer=teacher_layer, lr=lr,
                             teacher_model=source)   # loaded once, above
    trainer = _trainer(run / "tokenizer_run", steps, precision, 1, max(1, steps // 3), 60, None,
                       use_distributed_sampler=False)   # the ResumableLoader shards by rank itself
    trainer.fit(module, train, val)
    metrics = {k: round(float(v), 4) for k, v in trainer.callback_metrics.items()}
    module.rvq.save(run / "tokenizer")
    write_text(run / "tokenizer_metrics.json", json.dumps({"steps": steps, "hours": hours, **metrics}, indent=2))
    print(f"tokenizer written to {run / 'tokenizer.safetensors'}: {metrics}", flush=True)
    return run / "tokenizer.safetensors"


def run_encoder(data, run, *, size: str = "mini", init: str | None = None, seconds: float = 8.0,
                batch_size: int = 8, accumulate: int = 1, steps: int = 2000, lr: float = 5e-4,
                warmup_steps: int = 100, precision: str = "32-true", val_every: int = 200,
                ckpt_minutes: float = 5.0, max_minutes: float | None = None, cqt_weight: float = 0.0,
                mask_prob: float | None = None, mask_hop: float | None = None, teacher: str | None = None,
                teacher_layer: int | None = None, devices="auto", strategy="auto", seed: int = 0,
                cache: str | None = None, callbacks=()) -> Path:
    """Stage 2: masked token prediction; resumes from ``run/checkpoints/last.ckpt`` exactly (the same crops,
    generator states and weights as an uninterrupted run: :func:`~.data.crop_loader`, a
    ResumableLoader, RngStateCallback); exports to ``run/export`` (official layout) at every checkpoint and at
    the end. ``callbacks``: more Lightning callbacks."""
    run = Path(run)
    _check_stage1(run, need_stat=init is None)
    last = run / "checkpoints" / "last.ckpt"
    if last.is_file():
        check_checkpoint_file(last, "the run's checkpoint")
    cache = cache or str(run.parent / "audio_cache")
    L.seed_everything(seed, workers=True)
    stat = json.loads((run / "stat.json").read_text()) if init is None else None
    train, val, hours, val_hours = loaders(data, cache, seconds, batch_size, steps_per_epoch=steps * accumulate,
                                           seed=seed)
    print(f"training audio: {hours:.2f} h; held back: {val_hours:.2f} h", flush=True)
    module = PretrainModule(tokenizer=str(run / "tokenizer.safetensors"), size=size, stat=stat, init=init,
                            mask_prob=mask_prob, mask_hop=mask_hop, cqt_weight=cqt_weight, teacher=teacher,
                            teacher_layer=teacher_layer, lr=lr, warmup_steps=warmup_steps, max_steps=steps,
                            seed=seed)
    n_params = sum(p.numel() for p in module.encoder.parameters())
    print(f"encoder: {n_params / 1e6:.2f} M parameters, {module.encoder.config.architecture()}", flush=True)
    extra = {"hours": round(hours, 3), "seconds_per_crop": seconds, "batch_size": batch_size,
             "accumulate": accumulate}
    stop = StopFile(run / "STOP")
    trainer = _trainer(run, steps, precision, accumulate, val_every, ckpt_minutes, max_minutes,
                       [PeriodicExport(run / "export", extra), stop, RngStateCallback(), *callbacks],
                       devices, strategy,
                       use_distributed_sampler=False)   # the ResumableLoader shards by rank itself
    trainer.fit(module, train, val, ckpt_path=str(last) if last.is_file() else None)
    if trainer.is_global_zero and not stop.stopped:   # a STOP file wrote last.ckpt at its step already
        with atomic_path(last) as tmp:
            trainer.save_checkpoint(str(tmp))
        export(module, run / "export", extra=extra)
        print(f"exported to {run / 'export'}", flush=True)
    return run / "export"


def _check_stage1(run: Path, need_stat: bool) -> None:
    """Stage 2 needs stage 1's files in ``run``: one line saying which command makes them."""
    missing = [n for n in ["tokenizer.safetensors", "tokenizer.json"] + ["stat.json"] * need_stat
               if not (run / n).is_file()]
    if missing:
        raise ConfigError(f"{str(run)!r} has no {' or '.join(missing)}: run stage 1 first "
                          f"(python -m booster.recipes.pretraining.train tokenizer --data DIR... --run {run})")


def export_run(run, out) -> Path:
    """Export ``run/checkpoints/last.ckpt`` in the official layout to ``out``."""
    run = Path(run)
    last = run / "checkpoints" / "last.ckpt"
    if not last.is_file():
        raise ConfigError(f"{str(run)!r} has no encoder checkpoint ({last} does not exist): train one first "
                          f"(python -m booster.recipes.pretraining.train encoder --data DIR... --run {run})")
    check_checkpoint_file(last, "the run's checkpoint")
    _check_stage1(run, need_stat=False)
    if Path(out).exists():
        check_output_dir(out, "--out")
    ckpt = torch.load(str(last), map_location="cpu", weights_only=False)
    module = PretrainModule.load_from_checkpoint(str(last), map_location="cpu", weights_only=False,
                                                 tokenizer=str(run / "tokenizer.safetensors"))  # where it is now
    return export(module, check_output_dir(out, "--out"), step=ckpt.get("global_step"))


PROG = "python -m booster.recipes.pretraining.train"
PRECISIONS = ["32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true", "32", "16", "bf16", "64"]


class _Parser(argparse.ArgumentParser):
    """A bad option is one line and exit status 1, as every other user error."""

    def error(self, message):
        print(f"{PROG}: error: {message} (see --help)", file=sys.stderr)
        sys.exit(1)


def _check_options(a) -> None:
    if a.stage != "export":
        if not a.data:
            raise ConfigError(f"the {a.stage} stage needs --data DIR... (folders or files of audio)")
        audio_files(a.data)   # before anything is written
    for name in ["steps", "batch_size", "accumulate", "val_every", "levels", "codebook_size"]:
        if getattr(a, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(a, name)}")
    for name in ["seconds", "ckpt_minutes", "max_minutes", "lr"]:
        if getattr(a, name) is not None:
            check_finite_option(getattr(a, name), f"--{name.replace('_', '-')}", positive=True)
    check_finite_option(a.cqt_weight, "--cqt-weight", minimum=0)
    if (a.teacher is None) != (a.teacher_layer is None):
        raise ConfigError("--teacher DIR and --teacher-layer N go together (the teacher's hidden state N is what "
                          "the tokenizer is fitted to)")
    if a.warmup_steps < 0:
        raise ConfigError(f"--warmup-steps must be >= 0, got {a.warmup_steps}")


def main(argv=None) -> None:
    from .module import SIZES
    p = _Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", choices=["tokenizer", "encoder", "export"])
    p.add_argument("--data", nargs="+", default=[])
    p.add_argument("--run", required=True)
    p.add_argument("--out")
    p.add_argument("--size", default="mini", choices=[*SIZES, "large"])
    p.add_argument("--init")
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--accumulate", type=int, default=1)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--lr", type=float)
    p.add_argument("--warmup-steps", type=int, default=100)
    p.add_argument("--precision", default="32-true", choices=PRECISIONS)
    p.add_argument("--val-every", type=int, default=200)
    p.add_argument("--ckpt-minutes", type=float, default=5.0)
    p.add_argument("--max-minutes", type=float)
    p.add_argument("--cqt-weight", type=float, default=0.0)
    p.add_argument("--levels", type=int, default=8)
    p.add_argument("--codebook-size", type=int, default=1024)
    p.add_argument("--teacher")
    p.add_argument("--teacher-layer", type=int)
    p.add_argument("--threads", type=int)
    a = p.parse_args(argv)
    try:
        _check_options(a)
        if a.threads:
            torch.set_num_threads(a.threads)
        if a.stage == "tokenizer":
            run_tokenizer(a.data, a.run, seconds=a.seconds, batch_size=a.batch_size, steps=a.steps,
                          levels=a.levels, codebook_size=a.codebook_size, lr=a.lr or 2e-3, precision=a.precision,
                          teacher=a.teacher, teacher_layer=a.teacher_layer)
        elif a.stage == "encoder":
            run_encoder(a.data, a.run, size=a.size, init=a.init, seconds=a.seconds, batch_size=a.batch_size,
                        accumulate=a.accumulate, steps=a.steps, lr=a.lr or 5e-4, precision=a.precision,
                        warmup_steps=a.warmup_steps,
                        val_every=a.val_every, ckpt_minutes=a.ckpt_minutes, max_minutes=a.max_minutes,
                        cqt_weight=a.cqt_weight, teacher=a.teacher, teacher_layer=a.teacher_layer)
        else:
            export_run(a.run, a.out or str(Path(a.run) / "export"))
    except BoosterError as e:   # a user error: one line, exit status 1
        sys.exit(f"{PROG} {a.stage}: error: {e}")


if __name__ == "__main__":
    main()
