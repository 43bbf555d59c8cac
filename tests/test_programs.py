"""The fit's programs stored between processes (`scarlet_like/_programs.py`): read back without tracing,
bit for bit the programs `eqx.filter_jit` compiles, and never given to a call that would compute
something else."""

import os
import subprocess
import sys
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as nd
import pytest

import scarlet_like as sl
from scarlet_like import _programs
from scarlet_like.core.tree import canonical_tokens

# A fit and a short NUTS run in a fresh process: prints the fitted entries' bits, how often the fit
# loop was traced, the draws' bits and how often the sampler was traced.
_FIT = """
import sys
import jax
import numpy as np
import numpyro.distributions as nd
import scarlet_like as sl

from scarlet_like.infer import fit_loop

# Python runs a fit loop's step only while tracing it
traced = []
for method in ("init", "advance"):
    def counted(self, *args, _method=getattr(fit_loop.FitLoop, method), _name=method, **kwargs):
        traced.append(_name)
        return _method(self, *args, **kwargs)
    setattr(fit_loop.FitLoop, method, counted)
frame = sl.Frame((2, 15, 15))
with sl.Scene(frame) as truth:
    sl.Source(np.array([7.2, 6.9], np.float32), np.array([50.0, 30.0], np.float32), sl.GaussianMorphology(2))
psf = sl.GaussianPSF(np.array([1.0, 1.2], np.float32))
data = np.asarray(sl.Observation(np.zeros((2, 15, 15)), psf=psf).render(truth))
observation = sl.Observation(data, weights=np.full(data.shape, 100.0), psf=psf)
positive = sl.constraints.positive()
prior = nd.Normal(np.array([7.0, 7.0]), 1.0).to_event(1)
with sl.Scene(frame) as start:
    sl.Source(
        sl.Parameter(np.array([7.0, 7.0], np.float32), prior=prior),
        sl.Parameter(np.array([40.0, 40.0], np.float32), constraint=positive),
        sl.GaussianMorphology(sl.Parameter(np.float32(float(sys.argv[1])), constraint=positive)),
    )
sampling = sys.modules["scarlet_like.infer.sample"]
def counted_chains(*args, _run=sampling._run_chains, **kwargs):
    traced.append("chains")
    return _run(*args, **kwargs)
sampling._run_chains = counted_chains
result = sl.fit(start, observation, max_steps=60, progress=True)
key = jax.random.key(1)
posterior = sl.sample(result.model, observation, num_warmup=20, num_samples=5, key=key, progress=False)
draws = np.asarray(posterior.samples).tobytes().hex()
fit = np.asarray(result.x).tobytes().hex()
print(fit, traced.count("advance"), traced.count("init"), draws, traced.count("chains"))
"""


def _fit_in_a_fresh_process(cache, start="1.5", seed="0"):
    env = {**os.environ, "SCARLET_LIKE_CACHE": str(cache), "JAX_PLATFORMS": "cpu", "PYTHONHASHSEED": seed}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    command = [sys.executable, "-c", _FIT, start]
    bits, segments, inits, draws, samplers = subprocess.run(
        command, env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    return bits, int(segments), int(inits), draws, int(samplers)


@pytest.mark.slow
def test_a_fresh_process_runs_the_stored_fit_and_sampler_without_tracing_them_and_gets_the_same_bits(
    tmp_path,
):
    without = _fit_in_a_fresh_process("0")  # no cache at all: eqx.filter_jit as before
    first = _fit_in_a_fresh_process(tmp_path / "cache", seed="1")
    assert first[1] >= 1 and first[2] == 1  # traced, to export
    assert len(list((tmp_path / "cache" / "programs").iterdir())) >= 2
    # another process, another string hashing (numpyro's field order follows it): read back
    again = _fit_in_a_fresh_process(tmp_path / "cache", seed="2")
    assert again[1] == 0 and again[2] == 0
    assert first[0] == again[0] == without[0]
    # the sampler's program too (`sl.sample` after the fit), with the same draws
    assert first[4] == 1 and again[4] == 0
    assert first[3] == again[3] == without[3]
    # other start values, the same structure: the same programs
    moved = _fit_in_a_fresh_process(tmp_path / "cache", start="2.5", seed="3")
    assert moved[1] == 0 and moved[0] != first[0]


def _key_of(function, *args):
    dynamic, static = eqx.partition(args, eqx.is_array)
    leaves, layout = jax.tree_util.tree_flatten(dynamic)
    return _programs._key(function, static, layout, leaves)


def _scene(sigma_constraint):
    with sl.Scene(sl.Frame((1, 9, 9))) as scene:
        sl.Source(
            sl.Parameter(
                np.array([4.0, 4.0], np.float32), prior=nd.Normal(np.array([4.0, 4.0]), 1.0).to_event(1)
            ),
            np.array([10.0], np.float32),
            sl.GaussianMorphology(sl.Parameter(np.float32(1.5), constraint=sigma_constraint)),
        )
    return scene


def _total(scene):
    return jnp.sum(scene.sources[0].spectrum.value)


def test_the_key_follows_the_structure_and_static_values_never_the_array_values():
    # scenes built apart have identities of their own; sl.fit compiles for the canonical ones
    def canonical(scene):
        return canonical_tokens(scene)[0]

    scene = canonical(_scene(sl.constraints.positive()))
    base = _key_of(_total, scene)
    assert _key_of(_total, canonical(_scene(sl.constraints.positive()))) == base
    # array values are the program's inputs: the same key
    assert _key_of(_total, _with_spectrum(scene, np.array([3.0], np.float32))) == base
    # a static value (a constraint's bounds), another shape, another dtype: another key
    five, six = (canonical(_scene(sl.constraints.interval(0.5, upper))) for upper in (5.0, 6.0))
    assert len({base, _key_of(_total, five), _key_of(_total, six)}) == 3
    assert _key_of(_total, _with_spectrum(scene, np.ones(2, np.float32))) != base
    assert _key_of(_total, _with_spectrum(scene, np.ones(1, np.int32))) != base
    # (a float64 array is a float32 input without x64, as `jit` takes it: the same program)
    assert _key_of(_total, _with_spectrum(scene, np.ones(1, np.float64))) == base


def _with_spectrum(scene, spectrum):
    return eqx.tree_at(lambda s: s.sources[0].spectrum.value, scene, spectrum)


def _made(source):
    namespace = {"jnp": jnp, "SCALE": 2.0}
    exec(compile(source, "<made>", "exec"), namespace)  # noqa: S102 - two versions of a user's function
    return namespace["total"]


def test_a_changed_function_or_a_global_it_reads_changes_the_key():
    scene = _scene(sl.constraints.positive())
    one = _made("def total(scene):\n    return jnp.sum(scene.sources[0].spectrum.value) * SCALE\n")
    same = _made("def total(scene):\n    return jnp.sum(scene.sources[0].spectrum.value) * SCALE\n")
    other = _made("def total(scene):\n    return jnp.sum(scene.sources[0].spectrum.value) + SCALE\n")
    assert _key_of(one, scene) == _key_of(same, scene)
    assert _key_of(other, scene) != _key_of(one, scene)
    same.__globals__["SCALE"] = 3.0
    assert _key_of(same, scene) != _key_of(one, scene)
    # a closure's value, a default argument
    assert _key_of(_closing_over(2.0), scene) != _key_of(_closing_over(3.0), scene)


def _closing_over(factor):
    def total(scene):
        return jnp.sum(scene.sources[0].spectrum.value) * factor

    return total


class _Opaque:
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


def test_what_cannot_be_fingerprinted_is_compiled_as_usual_and_nothing_is_stored(tmp_path, monkeypatch):
    monkeypatch.setattr(_programs, "compilation_cache_folder", lambda: tmp_path)
    with pytest.raises(_programs._Unknown):
        _key_of(_total, _scene(sl.constraints.positive()), _Opaque(1))

    def shifted(scene, opaque):
        return jnp.sum(scene.sources[0].spectrum.value) + 1.0

    stored = _programs.stored_jit(shifted)
    assert float(stored(_scene(sl.constraints.positive()), _Opaque(1))) == 11.0
    assert not (tmp_path / "programs").exists()
    assert float(stored(_scene(sl.constraints.positive()), 1)) == 11.0
    assert len(list((tmp_path / "programs").iterdir())) == 1


class _Step(NamedTuple):
    spectrum: jax.Array
    total: jax.Array


def _step(scene, factor):
    spectrum = scene.sources[0].spectrum.value * factor
    return _Step(spectrum, jnp.sum(spectrum))


def test_a_stored_program_gives_the_jitted_results_and_a_damaged_file_is_exported_again(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(_programs, "compilation_cache_folder", lambda: tmp_path)
    scene = _scene(sl.constraints.positive())
    expected = eqx.filter_jit(_step)(scene, 2.0)
    first = _programs.stored_jit(_step)(scene, 2.0)
    assert isinstance(first, _Step) and eqx.tree_equal(first, expected)
    assert first.spectrum.dtype == np.float32
    (path,) = (tmp_path / "programs").iterdir()
    # a fresh wrapper (as in a new process) reads the file back
    assert eqx.tree_equal(_programs.stored_jit(_step)(scene, 2.0), expected)
    path.write_bytes(b"damaged")
    assert _programs._read(tmp_path, path.stem, "_step") is None
    assert eqx.tree_equal(_programs.stored_jit(_step)(scene, 2.0), expected)
    assert _programs._read(tmp_path, path.stem, "_step") is not None  # written again, whole


def test_an_output_that_does_not_survive_pickling_is_used_but_not_stored(tmp_path, monkeypatch):
    # Equinox's modules hold sentinels in their layout that are other objects once unpickled
    monkeypatch.setattr(_programs, "compilation_cache_folder", lambda: tmp_path)

    def doubled(scene):
        return eqx.tree_at(lambda s: s.sources[0].spectrum.value, scene, scene.sources[0].spectrum.value * 2)

    scene = _scene(sl.constraints.positive())
    assert eqx.tree_equal(_programs.stored_jit(doubled)(scene), eqx.filter_jit(doubled)(scene))
    assert not (tmp_path / "programs").exists()


def test_inside_a_transformation_the_call_is_traced_as_part_of_it(tmp_path, monkeypatch):
    monkeypatch.setattr(_programs, "compilation_cache_folder", lambda: tmp_path)
    stored = _programs.stored_jit(lambda x: jnp.sin(x) * 2.0)
    assert np.allclose(jax.grad(stored)(0.3), 2.0 * np.cos(0.3))
    assert np.allclose(jax.vmap(stored)(jnp.arange(3.0)), 2.0 * np.sin(np.arange(3.0)))
    assert not (tmp_path / "programs").exists()


def test_a_stored_program_called_inside_another_program_with_no_traced_argument_becomes_part_of_it(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(_programs, "compilation_cache_folder", lambda: tmp_path)
    scene = _scene(sl.constraints.positive())

    def light(scene):
        return jnp.sum(jnp.exp(scene.sources[0].spectrum.value * 0.3))

    expected = jax.jit(light)(scene)
    stored = _programs.stored_jit(light)
    np.testing.assert_allclose(stored(scene), expected, rtol=1e-6)
    # the scene is a constant of the outer program: the stored one is called with concrete arrays
    np.testing.assert_allclose(jax.jit(lambda: stored(scene))(), expected, rtol=1e-6)


def test_shapes_are_stored_and_read_back_without_tracing(tmp_path, monkeypatch):
    monkeypatch.setattr(_programs, "compilation_cache_folder", lambda: tmp_path)
    scene = canonical_tokens(_scene(sl.constraints.positive()))[0]
    expected = eqx.filter_eval_shape(_step, scene, 2.0)
    assert eqx.tree_equal(_programs.stored_eval_shape(_step, scene, 2.0), expected)
    assert len(list((tmp_path / "programs").glob("*.shapes"))) == 1

    def never(*args):
        raise AssertionError("traced again")

    monkeypatch.setattr(_programs.eqx, "filter_eval_shape", never)
    assert eqx.tree_equal(_programs.stored_eval_shape(_step, scene, 2.0), expected)
    # another structure is traced
    with pytest.raises(AssertionError, match="traced again"):
        _programs.stored_eval_shape(_step, scene, 3)


def test_results_are_committed_to_a_device_only_when_jit_would_commit_them(tmp_path, monkeypatch):
    # JAX commits every result of a program calling an exported one; `jit` commits its results only
    # when an argument was committed, and compiles a committed argument as another program
    monkeypatch.setattr(_programs, "compilation_cache_folder", lambda: tmp_path)

    def step(x, key):
        return x * 2.0, jax.random.split(key)

    stored = _programs.stored_jit(step)
    for x in (jnp.ones(3), jax.device_put(jnp.ones(3), jax.devices()[0])):
        expected = jax.tree_util.tree_leaves(jax.jit(step)(x, jax.random.key(0)))
        results = jax.tree_util.tree_leaves(stored(x, jax.random.key(0)))
        assert list((tmp_path / "programs").iterdir())  # the stored path was taken
        assert [r.committed for r in results] == [e.committed for e in expected] == [x.committed] * 2
        assert all(eqx.tree_equal(r, e) for r, e in zip(results, expected, strict=True))


def _stacked(groups):
    return [jnp.stack(group) for group in groups]


def test_weakly_typed_results_stay_weakly_typed_when_read_back(tmp_path, monkeypatch):
    # a serialized program forgets its results' weak types: Python numbers stacked came back float32
    monkeypatch.setattr(_programs, "compilation_cache_folder", lambda: tmp_path)
    groups = [[jnp.asarray(1.0), jnp.asarray(2.0)], [jnp.ones(2), jnp.zeros(2)]]
    expected = [result.weak_type for result in jax.jit(_stacked)(groups)]
    assert expected == [True, False]
    assert [result.weak_type for result in _programs.stored_jit(_stacked)(groups)] == expected
    assert len(list((tmp_path / "programs").iterdir())) == 1
    # a fresh wrapper (as in a new process) reads the file back
    assert [result.weak_type for result in _programs.stored_jit(_stacked)(groups)] == expected
