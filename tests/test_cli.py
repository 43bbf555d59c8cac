import subprocess
import sys

import pytest

import scarlet_like as sl
from scarlet_like.__main__ import main


def test_version_flag():
    out = subprocess.run(
        [sys.executable, "-m", "scarlet_like", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == f"scarlet_like {sl.__version__}"


def test_demo_fits_the_real_blend(capsys):
    from scarlet_like.demo import run

    result = run(steps=400, progress=False, output=None)
    # the fit must improve a lot on the starting point, on real data
    assert result["chi2_end"] < 2.0 < 100 < result["chi2_start"]
    out = capsys.readouterr().out
    assert "HSC" in out and "chi^2 per pixel" in out and "sources[" not in out


def test_main_without_command_prints_help(capsys):
    assert main([]) == 0
    assert "demo" in capsys.readouterr().out


def test_demo_refuses_an_unwritable_output_before_fitting(tmp_path, monkeypatch):
    from scarlet_like import demo

    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    fitted = []
    monkeypatch.setattr(demo.sl, "fit", lambda *args, **kwargs: fitted.append(1))
    with pytest.raises(OSError, match="a_file"):
        demo.run(steps=1, progress=False, output=blocker / "inside", report=False)
    assert not fitted  # the check came before any fitting


def test_demo_creates_a_missing_output_folder(tmp_path):
    from scarlet_like.demo import prepare_output

    folder = prepare_output(tmp_path / "new" / "nested")
    assert folder.is_dir()
