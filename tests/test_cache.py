"""JAX's persistent compilation cache, on by default: reused by a fresh process, never for another
model, and off or elsewhere when the user says so."""

import os
import subprocess
import sys

_FIT = """
import logging, sys
import numpy as np
import scarlet_like as sl

messages = []
class Keep(logging.Handler):
    def emit(self, record):
        messages.append(record.getMessage())
logging.getLogger("jax").addHandler(Keep())
logging.getLogger("jax").setLevel(logging.DEBUG)

if sys.argv[1] == "folder":  # where programs would be kept, without compiling any
    print(sl.compilation_cache_folder())
    raise SystemExit
constraint = sl.constraints.positive() if sys.argv[1] == "positive" else sl.constraints.interval(0.5, 5.0)
frame = sl.Frame((1, 15, 15))
with sl.Scene(frame) as truth:
    sl.Source(np.array([7.2, 6.9], np.float32), np.array([50.0], np.float32), sl.GaussianMorphology(2.0))
data = np.asarray(sl.Observation(np.zeros((1, 15, 15)), psf=sl.GaussianPSF(1.0)).render(truth))
observation = sl.Observation(data, weights=np.full(data.shape, 100.0), psf=sl.GaussianPSF(1.0))
with sl.Scene(frame) as start:
    sl.Source(
        sl.Parameter(np.array([7.0, 7.0], np.float32)),
        sl.Parameter(np.array([40.0], np.float32), constraint=sl.constraints.positive()),
        sl.GaussianMorphology(sl.Parameter(np.float32(1.5), constraint=constraint)),
    )
result = sl.fit(start, observation, max_steps=200, progress=False)
sigma = np.asarray(sl.resolve(result.model.sources[0].morphology.sigma), np.float32)
hits = sum("persistent compilation cache hit for 'jit__fit_segment'" in m.lower() for m in messages)
misses = sum("persistent compilation cache miss for 'jit__fit_segment'" in m.lower() for m in messages)
print(sl.compilation_cache_folder(), sigma.tobytes().hex(), float(sigma), hits, misses)
"""


def _output(cache, argument, environment):
    """What the script above prints in a fresh process with the cache setting `cache`."""
    env = {**os.environ, "SCARLET_LIKE_CACHE": str(cache), "JAX_PLATFORMS": "cpu", **environment}
    if "JAX_COMPILATION_CACHE_DIR" not in environment:
        env.pop("JAX_COMPILATION_CACHE_DIR", None)
    command = [sys.executable, "-c", _FIT, argument]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout


def _run(cache, constraint, **environment):
    folder, bits, sigma, hits, misses = _output(cache, constraint, environment).split()
    return folder, bits, float(sigma), int(hits), int(misses)


def test_a_fresh_process_reuses_programs_and_a_changed_model_gets_its_own(tmp_path):
    cache = tmp_path / "programs"
    first = _run(cache, "positive")
    assert first[0] == str(cache) and abs(first[2] - 2.0) < 1e-3
    assert first[3] == 0 and first[4] >= 1  # compiled, and written
    assert any(cache.iterdir())
    again = _run(cache, "positive")
    assert again[3] >= 1 and again[4] == 0  # read back, not compiled
    assert again[1] == first[1]  # the same program: the same fit, bit for bit
    # another constraint is another program: compiled anew, never the cached one, and fitted alike
    changed = _run(cache, "interval")
    assert changed[4] >= 1 and changed[3] == 0
    assert abs(changed[2] - 2.0) < 1e-3


def _folder(cache, **environment):
    return _output(cache, "folder", environment).strip()


def test_a_folder_the_user_gave_jax_is_kept_and_zero_turns_the_cache_off(tmp_path):
    theirs = tmp_path / "theirs"
    assert _folder(tmp_path / "ours", JAX_COMPILATION_CACHE_DIR=str(theirs)) == str(theirs)
    assert not (tmp_path / "ours").exists()
    assert _folder("0") == "None"
