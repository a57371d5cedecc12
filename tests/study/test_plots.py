"""Training-curve and study plots from hand-made and Lightning-written metrics.csv files."""
import math

import numpy as np
import pytest

from booster.cli import main
from booster.errors import ConfigError
from booster.training import plots, stats

CSV = """epoch,step,train/loss,valid/nsdr,lr-AdamW
0,9,0.50,,0.001
0,19,0.40,,
0,19,,1.25,
1,29,0.35,nan,
1,39,0.30,,
1,39,,2.5,
"""


def _png_size(path):
    import matplotlib.image as mpimg
    img = mpimg.imread(str(path))
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert float(np.std(img[..., :3])) > 0.01  # not a blank canvas
    return img.shape


def _write(folder, text=CSV, version=None):
    d = folder if version is None else folder / "csv" / f"version_{version}"
    d.mkdir(parents=True, exist_ok=True)
    (d / "metrics.csv").write_text(text)
    return d / "metrics.csv"


def test_read_metrics_csv_drops_padding(tmp_path):
    series = plots.read_metrics_csv(_write(tmp_path / "run"))
    assert sorted(series) == ["lr-AdamW", "train/loss", "valid/nsdr"]
    x, v = series["train/loss"]
    np.testing.assert_array_equal(x, [9, 19, 29, 39])
    np.testing.assert_allclose(v, [0.5, 0.4, 0.35, 0.3])
    x, v = series["valid/nsdr"]  # the literal nan and the empty cells are gone
    np.testing.assert_array_equal(x, [19, 39])
    np.testing.assert_allclose(v, [1.25, 2.5])


def test_lightning_csv_logger_file_is_read(tmp_path):
    from lightning.pytorch.loggers import CSVLogger
    logger = CSVLogger(str(tmp_path), name="run")
    for step in range(5):
        logger.log_metrics({"train/loss": 1.0 / (step + 1)}, step=step)
    logger.log_metrics({"valid/loss": 0.7, "epoch": 0}, step=4)
    logger.save()
    groups = plots.find_metric_logs(tmp_path / "run")
    assert list(groups) == ["run"] and len(groups["run"]) == 1
    series = plots.load_run_curves(groups["run"])
    np.testing.assert_allclose(series["train/loss"][1], [1, 1 / 2, 1 / 3, 1 / 4, 1 / 5])
    np.testing.assert_array_equal(series["valid/loss"][0], [4])
    assert "epoch" not in series and "step" not in series


def test_versions_of_one_run_are_joined_and_runs_of_a_study_are_separate(tmp_path):
    _write(tmp_path / "run", "step,train/loss\n0,1.0\n1,0.9\n", version=0)
    _write(tmp_path / "run", "step,train/loss\n2,0.8\n", version=1)
    _write(tmp_path / "run", "step,train/loss\n3,0.7\n", version=10)  # natural order: 10 after 1
    groups = plots.find_metric_logs(tmp_path / "run")
    assert list(groups) == ["run"]
    x, v = plots.load_run_curves(groups["run"])["train/loss"]
    np.testing.assert_array_equal(x, [0, 1, 2, 3])
    study = tmp_path / "study"
    _write(study / "0.5" / "0" / "baseline")
    _write(study / "0.5" / "0" / "boosted")
    assert sorted(plots.find_metric_logs(study)) == ["study/0.5/0/baseline", "study/0.5/0/boosted"]
    _write(study / "0.5" / "0" / "boosted.old-20261204-0100")   # moved aside by a study rerun with --force
    assert sorted(plots.find_metric_logs(study)) == ["study/0.5/0/baseline", "study/0.5/0/boosted"]


def test_plot_runs_writes_png(tmp_path):
    _write(tmp_path / "a")
    _write(tmp_path / "b", CSV.replace("0.50", "0.60"))
    out, names = plots.plot_runs([tmp_path / "a", tmp_path / "b" / "metrics.csv"], tmp_path / "out" / "c.png")
    assert out.is_file() and names[0] == "train/loss" and set(names) == {"train/loss", "valid/nsdr", "lr-AdamW"}
    _png_size(out)
    out, names = plots.plot_runs([tmp_path / "a"], tmp_path / "v.png", metrics=["valid/*"])
    assert names == ["valid/nsdr"]
    with pytest.raises(ConfigError, match="no logged metric matches"):
        plots.plot_runs([tmp_path / "a"], tmp_path / "x.png", metrics=["nothing*"])


def test_plot_errors_are_one_line(tmp_path, capsys):
    empty = tmp_path / "empty_run"
    empty.mkdir()
    with pytest.raises(ConfigError, match="no metrics.csv under"):
        plots.plot_runs([empty], tmp_path / "x.png")
    _write(tmp_path / "header_only", "epoch,step,train/loss\n")
    with pytest.raises(ConfigError, match="no logged values"):
        plots.plot_runs([tmp_path / "header_only"], tmp_path / "x.png")
    assert main(["plot", str(empty), "-o", str(tmp_path / "x.png")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("booster plot: error: no metrics.csv under") and "\n" not in err
    assert not (tmp_path / "x.png").exists()
    assert main(["plot", str(tmp_path / "missing"), "-o", str(tmp_path / "x.png")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_plot_command(tmp_path, capsys):
    _write(tmp_path / "a")
    assert main(["plot", str(tmp_path / "a"), "-o", str(tmp_path / "curves.png")]) == 0
    assert "wrote" in capsys.readouterr().out
    _png_size(tmp_path / "curves.png")


def test_study_plot(tmp_path):
    runs = []
    for f, base, boost in ((0.1, [1.0, 1.4], [1.5, 2.1]), (0.25, [2.0, 2.2], [2.6, 2.5]), (1.0, [3.0, 3.1], [3.0, 3.3])):
        for seed in range(2):
            runs.append({"fraction": f, "seed": seed, "variant": "baseline", "metrics": {"SDR": base[seed]}})
            runs.append({"fraction": f, "seed": seed, "variant": "boosted", "metrics": {"SDR": boost[seed]}})
    runs.append({"fraction": 1.0, "seed": 2, "variant": "boosted", "metrics": {"SDR": math.nan}})
    rows = stats.study_table(runs, "SDR")
    out = plots.study_plot(rows, runs, "SDR", tmp_path / "study.png", title="demo")
    _png_size(out)
