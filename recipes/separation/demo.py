"""The separation demo on the embedded default (no downloads): baseline vs boosted, same budget.

:func:`run` generates a small synthetic multitrack set, trains a debug-size HTDemucs twice for the
same wall-clock budget (plain, then boosted with the tiny random ``MuQ.debug()``), evaluates both on
the test tracks with museval (full-track chunked inference, MuQ once per track, features cached),
separates one mixture into stems on disk and prints the comparison.
"""
from __future__ import annotations

import contextlib
import json
import logging
import time
import warnings
from datetime import timedelta
from pathlib import Path

NOTE_PRETRAINED = ("Note: the debug separators train for minutes on CPU; a difference above at this budget is "
                   "indicative at best. A real comparison needs a real training run (booster study for spread "
                   "over seeds).")
HONEST_NOTE = ("Note: the boosted model reads a debug-size MuQ with random weights, so its features carry no "
               "musical knowledge and the debug separators train for minutes on CPU. Any difference above is "
               "noise of initialisation and budget, not evidence of a gain; a real comparison needs the "
               "pretrained MuQ (backbone: OpenMuQ/MuQ-large-msd-iter) and a real training run.")


def run(out_dir, *, seconds_budget: float = 120.0, seed: int = 0, train_tracks: int = 6,
        test_tracks: int = 2, track_seconds: float = 8.0, eval_seconds: float | None = 4.0,
        segment: float = 1.0, batch_size: int = 4, host: str = "htdemucs", backbone: str = "debug",
        verbose: bool = True) -> dict:
    """Run the demo into ``out_dir``; returns a report (also written to ``out_dir/demo.json``).

    ``seconds_budget``: training wall time per separator. ``backbone``: what the boosted separator reads
    ("debug": the tiny random MuQ; or a registered name / directory / hub id, e.g. a pretrained MuQ). ``eval_seconds``: evaluate the first seconds
    of each test track (None: whole tracks; museval is slow on CPU).
    """
    say = print if verbose else (lambda *a, **k: None)
    import lightning.pytorch.callbacks  # noqa: F401  (create Lightning's loggers before quieting them)
    with _quiet_lightning():
        return _run(out_dir, say, seconds_budget, seed, train_tracks, test_tracks, track_seconds, eval_seconds,
                    segment, batch_size, host, backbone)


@contextlib.contextmanager
def _quiet_lightning():
    """Hide Lightning's start-up chatter (device lines, tips, known deprecation warnings)."""
    names = ["lightning.pytorch", "lightning.fabric", "lightning"]
    names += [n for n in logging.root.manager.loggerDict if n.startswith("lightning")]
    levels = {n: logging.getLogger(n).level for n in names}
    try:
        for n in names:
            logging.getLogger(n).setLevel(logging.WARNING)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module="lightning")
            warnings.filterwarnings("ignore", message=".*(LeafSpec|num_workers|does not have many workers).*")
            yield
    finally:
        for n, lv in levels.items():
            logging.getLogger(n).setLevel(lv)


def _run(out_dir, say, seconds_budget, seed, train_tracks, test_tracks, track_seconds, eval_seconds, segment,
         batch_size, host, backbone) -> dict:
    import lightning as L
    from lightning.pytorch.callbacks import Timer

    from booster.data.synth import generate_from_spec

    from .data import StemsDataModule
    from .evaluation import compare_reports, format_table
    from .module import SeparationModule

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = out / "data"
    t0 = time.perf_counter()
    rep = generate_from_spec(data, {"splits": {"train": train_tracks, "valid": 1, "test": test_tracks},
                                    "seconds": track_seconds, "seed": seed}, present=(data / "train").is_dir())
    if rep is not None:
        say(f"[separation 1/4] synthetic set: {train_tracks} train / {test_tracks} test tracks of "
            f"{track_seconds:g} s ({rep['renderer']}) in {time.perf_counter() - t0:.1f} s -> {data}")
    report: dict = {"budget_seconds": seconds_budget, "seed": seed, "host": host, "backbone": backbone, "runs": {}}
    modules = {}
    for name, boost in (("baseline", False), ("boosted", True)):
        L.seed_everything(seed, verbose=False)
        dm = StemsDataModule(str(data), segment=segment, valid_segment=2 * segment, batch_size=batch_size,
                             samples_per_epoch=10_000, seed=seed, test_seconds=eval_seconds)
        model = SeparationModule(host=host, sources=dm.sources, segment=segment, size="debug", boost=boost,
                                 backbone=backbone, backbone_seed=seed, lr=1e-3, run_name=name,
                                 feature_cache=str(out / "feature_cache"), eval_dir=str(out / name),
                                 print_report=False)
        trainer = L.Trainer(max_steps=10**9, callbacks=[Timer(duration=timedelta(seconds=seconds_budget))],
                            limit_val_batches=0, num_sanity_val_steps=0, logger=False,
                            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                            gradient_clip_val=5.0, accelerator="cpu", devices=1, default_root_dir=str(out / name))
        t = time.perf_counter()
        trainer.fit(model, dm)
        train_s = time.perf_counter() - t
        say(f"[separation 2/4] {name}: {trainer.global_step} steps in {train_s:.1f} s "
            f"({sum(p.numel() for p in model.parameters() if p.requires_grad):,} trainable parameters)")
        t = time.perf_counter()
        trainer.test(model, dm, verbose=False)
        result = json.loads((out / name / "results.json").read_text())
        report["runs"][name] = {"steps": trainer.global_step, "train_seconds": train_s,
                                "eval_seconds": time.perf_counter() - t, "summary": result["summary"],
                                "results": str(out / name / "results.json")}
        sep = model.separator()
        report["runs"][name]["separator"] = str(sep.save(out / f"{name}.safetensors"))
        modules[name] = model
    table, diff = compare_reports(json.loads((out / "baseline" / "results.json").read_text()),
                                  json.loads((out / "boosted" / "results.json").read_text()), "baseline", "boosted")
    report["difference"] = diff

    # separate one mixture to stems on disk with the boosted separator
    dm = StemsDataModule(str(data))
    dm.setup("test")
    track = dm.test_tracks[0]
    mixture = track.mixture_path or track.source_paths[0]
    t = time.perf_counter()
    stems = modules["boosted"].separator().separate_file(mixture, out / "stems", name=track.name)
    report["stems"] = {k: str(v) for k, v in stems.items()}
    say(f"[separation 3/4] separated {mixture} into {', '.join(stems)} in {time.perf_counter() - t:.1f} s "
        f"-> {Path(next(iter(stems.values()))).parent}")
    say("[separation 4/4] evaluation (museval BSSEval v4, median over 1 s frames then tracks; gSDR = global SDR)")
    for name in ("baseline", "boosted"):
        say(format_table(report["runs"][name]["summary"], title=f"{name} ({report['runs'][name]['steps']} steps)"))
        say()
    say(table)
    say()
    note = HONEST_NOTE if backbone == "debug" else NOTE_PRETRAINED
    say(note)
    report["note"] = note
    (out / "demo.json").write_text(json.dumps(report, indent=2) + "\n")
    say(f"written: separators {out / 'baseline.safetensors'} and {out / 'boosted.safetensors'}; "
        f"results {out / 'baseline' / 'results.md'} and {out / 'boosted' / 'results.md'}; report {out / 'demo.json'}")
    return report
