"""Ship an exported encoder as a registered checkpoint (how checkpoints/muq-mini is refreshed).

    python -m booster.recipes.pretraining.ship RUN/export checkpoints/muq-mini --id muq-mini \
        --manifest data/music/manifest.tsv --licence "..." --description "..."

Copies ``config.json`` + ``model.safetensors`` (the official layout; training-only parts stay in the run),
then writes/updates the registry entry in ``checkpoints/registry.json``: files, sha256, architecture,
licence, hours of training audio and steps (from the export's ``training.json``).
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from ...muq import MuQConfig
from ...muq.registry import sha256_file

FILES = ("config.json", "model.safetensors")


def ship(export_dir, target, *, id: str, registry, licence: str, description: str,
         manifest: str | None = None) -> dict:
    export_dir, target, registry = Path(export_dir), Path(target), Path(registry)
    target.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copyfile(export_dir / name, target / name)
    training = json.loads((export_dir / "training.json").read_text())
    config = MuQConfig.from_json(target / "config.json")
    hours = None
    if manifest:
        rows = Path(manifest).read_text().splitlines()[1:]
        hours = round(sum(float(r.split("\t")[2]) for r in rows if r.strip()) / 3600, 3)
    entry = {"id": id, "description": description, "files": list(FILES),
             "sha256": {name: sha256_file(target / name) for name in FILES},
             "architecture": config.architecture(), "licence": licence, "local": target.name,
             "training": {"steps": training.get("global_step"), "hours_of_audio": hours,
                          "hours_in_training_split": training.get("hours")}}
    reg = json.loads(registry.read_text())
    reg["checkpoints"] = [c for c in reg["checkpoints"] if c["id"] != id] + [entry]
    registry.write_text(json.dumps(reg, indent=2) + "\n")
    return entry


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m booster.recipes.pretraining.ship", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("export_dir")
    p.add_argument("target")
    p.add_argument("--id", required=True)
    p.add_argument("--registry", default="checkpoints/registry.json")
    p.add_argument("--licence", required=True)
    p.add_argument("--description", default="")
    p.add_argument("--manifest")
    a = p.parse_args(argv)
    entry = ship(a.export_dir, a.target, id=a.id, registry=a.registry, licence=a.licence,
                 description=a.description, manifest=a.manifest)
    print(json.dumps(entry, indent=2))


if __name__ == "__main__":
    main()
