"""`booster study` input errors (issue 19, items 9 and 10): an -o that is a file or read-only, `--seeds=-1,2`
(a Lightning ValueError), an override that does not parse and a config a study cannot vary
(`--config pretraining/debug`) are one line with exit 1 and write nothing (they were tracebacks, or 65-91 lines
of usage with exit 2 after run.json and config.yaml were written into -o)."""
import lightning.pytorch  # noqa: F401  (imported first: its log handler keeps pytest's session stream)

from booster.cli import main
from cli_helpers import one_line_error


def study(out, *extra):
    return ["study", "--config", "separation/demo", "--fractions", "1.0", "--seeds", "1", "--budget-steps", "1",
            "-o", str(out), "--device", "cpu", *extra]


def one_line(capsys, *words):
    return one_line_error(capsys, "study", *words)


def test_bad_output_seeds_overrides_and_configs_are_one_line(tmp_path, read_only_dir, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    capsys.readouterr()
    assert main(study(a_file)) == 1
    one_line(capsys, "-o", "existing file")
    assert main(study(read_only_dir / "study")) == 1
    one_line(capsys, "-o", "study")
    out = tmp_path / "study"
    assert main(study(out, "--seeds=-1,2")) == 1
    one_line(capsys, "--seeds")
    assert main(study(out, "--trainer.max_stepz", "3")) == 1
    one_line(capsys, "--trainer.max_stepz")
    assert main(study(out, "--model.lr", "fast")) == 1
    one_line(capsys, "model.lr", "fast")
    assert main(["study", "--config", "pretraining/debug", "--budget-steps", "1", "-o", str(out)]) == 1
    one_line(capsys, "pretraining", "--config")
    assert not out.exists() and not (tmp_path / "runs").exists() and not (tmp_path / "data").exists()
    assert a_file.read_text() == "x" and not any(read_only_dir.iterdir())
