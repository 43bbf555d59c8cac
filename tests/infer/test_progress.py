"""Progress bars: a few whole lines when the output is not a terminal (a log file), tqdm otherwise."""

import io
import sys
from pathlib import Path

import jax.numpy as jnp
import pytest

import scarlet_like as sl
from scarlet_like.infer.progress import LineProgress, progress_bar

sys.path.insert(0, str(Path(__file__).parents[1] / "core"))
from core_models import light_curve  # noqa: E402


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_log_file_gets_a_start_two_updates_and_an_end():
    log = io.StringIO()
    with progress_bar(1000, "fit", "step", file=log) as bar:
        assert isinstance(bar, LineProgress)
        for _ in range(100):
            bar.update(10)
            bar.set_postfix(loss="1.5")
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("fit:") and "0/1000" in lines[0]
    assert "340/1000" in lines[1] and "670/1000" in lines[2]
    assert "1000/1000" in lines[3] and "loss=1.5" in lines[3]


def test_a_run_that_ends_early_or_jumps_past_marks_writes_no_more_lines():
    log = io.StringIO()
    bar = progress_bar(100, "sample", "step", file=log)
    bar.update(80)  # past both marks at once: one line
    bar.set_description("warmup")
    bar.close()
    bar.close()
    lines = log.getvalue().splitlines()
    assert len(lines) == 3 and "80/100" in lines[1] and lines[2].startswith("warmup")


def test_a_terminal_gets_tqdm_and_disabled_bars_say_nothing():
    import tqdm

    terminal = Terminal()
    with progress_bar(10, "fit", "step", file=terminal) as bar:
        assert isinstance(bar, tqdm.tqdm)
        bar.update(10)
    assert "\r" in terminal.getvalue()
    log = io.StringIO()
    with progress_bar(10, "fit", "step", file=log, disable=True) as bar:
        bar.update(10)
    assert log.getvalue() == ""


@pytest.mark.filterwarnings("ignore::scarlet_like.FitWarning")
def test_fit_writes_lines_into_a_log(capsys):
    times = jnp.linspace(-10.0, 10.0, 41)
    data = light_curve(t0=-1.0, width=3.0, peak=0.3)(times)

    def log_likelihood(curve):
        return -0.5 * jnp.sum(((curve(times) - data) / 0.01) ** 2)

    sl.fit(light_curve(), log_likelihood, max_steps=300, progress=True)
    err = capsys.readouterr().err  # pytest's capture is not a terminal
    assert "\r" not in err
    lines = [line for line in err.splitlines() if line.startswith("fit:")]
    assert 2 <= len(lines) <= 4 and "/300" in lines[-1] and "loss=" in lines[-1]
