"""Recipes are found through the ``booster.recipes`` entry points, the kit names none: a package of another
distribution registered there is a task like the shipped ones, and one that fails to import is a one-line
error naming it (never silently dropped)."""
import pytest

from booster.cli import main
from booster.errors import ConfigError
from booster.training.cli import packaged_configs, recipe, resolve_config, tasks


def register(root, task: str, init: str):
    """A distribution on ``sys.path`` (a dist-info with entry points) whose recipe package ``<task>_recipe``
    has ``init`` as its ``__init__.py`` and one config ``small.yaml``."""
    pkg = root / f"{task}_recipe"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(init)
    (pkg / "small.yaml").write_text("trainer: {max_steps: 1}\n")
    dist = root / f"{task}_recipe-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {task}-recipe\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[booster.recipes]\n{task} = {task}_recipe\n")
    return pkg


def test_the_shipped_recipes_come_from_entry_points():
    assert tasks() == ["mixing", "pretraining", "separation", "transcription"]


def test_a_recipe_of_another_package_is_a_task(tmp_path, monkeypatch):
    pkg = register(tmp_path, "extra", 'MODULE = "booster.recipes.separation.module:SeparationModule"\n'
                                      'DATA = "booster.recipes.separation.data:StemsDataModule"\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "extra" in tasks() and "extra/small" in packaged_configs()
    assert resolve_config("extra/small") == (str(pkg.resolve() / "small.yaml"), "extra")
    assert resolve_config("small")[1] == "extra"                     # bare name: only one task has it
    assert resolve_config(str(pkg / "small.yaml"))[1] == "extra"     # a YAML in a recipe's folder
    from booster.recipes.separation.module import SeparationModule
    assert recipe("extra")[0] is SeparationModule


def test_a_recipe_that_fails_to_import_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    register(tmp_path, "broken", "import no_such_package_for_booster_tests\nMODULE = DATA = 'x:y'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match="recipe 'broken' failed to import .*no_such_package_for_booster_tests"):
        recipe("broken")
    assert main(["fit", "--config", "broken/small"]) == 1
    err = capsys.readouterr().err
    assert "recipe 'broken' failed to import" in err and err.count("\n") == 1
    assert resolve_config("separation/demo")[1] == "separation"      # the other tasks still work


def test_unknown_task_lists_the_registered_ones(tmp_path):
    own = tmp_path / "mine.yaml"
    own.write_text("task: nosuchtask\n")
    with pytest.raises(ConfigError, match="unknown task 'nosuchtask'; tasks: mixing, pretraining, separation"):
        recipe(resolve_config(str(own))[1])
