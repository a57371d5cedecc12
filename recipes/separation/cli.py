"""LightningCLI entry of the separation recipe (``booster fit|validate|test --config ...``).

``data.segment``, ``data.sources``, ``data.sample_rate`` and ``data.channels`` are linked into the model
(set them once, under ``data:``). ``--config NAME`` also accepts the name of a packaged config
(``demo``, ``htdemucs_baseline``, ``htdemucs_boosted``, ``openunmix_baseline``, ``openunmix_boosted``).
"""
from __future__ import annotations

from pathlib import Path

from booster.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent
SUBCOMMANDS = ("fit", "validate", "test")


def packaged_configs() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def resolve_configs(args: list[str]) -> list[str]:
    """Replace ``--config NAME`` by the packaged file when ``NAME`` is not an existing path."""
    out, i = [], 0
    while i < len(args):
        a = args[i]
        if a == "--config" and i + 1 < len(args):
            out += [a, _resolve(args[i + 1])]
            i += 2
            continue
        if a.startswith("--config="):
            a = "--config=" + _resolve(a.split("=", 1)[1])
        out.append(a)
        i += 1
    return out


def _resolve(value: str) -> str:
    if Path(value).exists():
        return value
    name = Path(value).stem
    if (CONFIG_DIR / f"{name}.yaml").is_file() and ("/" not in value or value.startswith("recipes/separation")):
        return str(CONFIG_DIR / f"{name}.yaml")
    raise ConfigError(f"config {value!r} does not exist; pass a YAML path or one of: "
                      f"{', '.join(packaged_configs())}")


def make_cli_class():
    from lightning.pytorch.cli import LightningCLI

    class SeparationCLI(LightningCLI):
        def add_arguments_to_parser(self, parser) -> None:
            for key in ("segment", "sources", "sample_rate", "channels"):
                parser.link_arguments(f"data.{key}", f"model.{key}")

    return SeparationCLI


def main(subcommand: str, args: list[str]) -> int:
    """Run ``subcommand`` (fit / validate / test) with LightningCLI arguments ``args``."""
    if subcommand not in SUBCOMMANDS:
        raise ConfigError(f"unknown sub-command {subcommand!r}")
    from .data import StemsDataModule
    from .module import SeparationModule

    import sys
    cli_class = make_cli_class()
    argv, sys.argv = sys.argv, sys.argv[:1]  # the arguments are passed explicitly (avoids LightningCLI's warning)
    try:
        cli_class(SeparationModule, StemsDataModule, args=[subcommand, *resolve_configs(list(args))],
                  save_config_kwargs={"overwrite": True}, seed_everything_default=0,
                  parser_kwargs={"prog": f"booster {subcommand}"})
    finally:
        sys.argv = argv
    return 0
