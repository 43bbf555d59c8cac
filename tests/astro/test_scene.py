"""Building scenes and observations: the context manager, sources, and every bad input named."""

import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import scarlet_like as sl


def observation(shape=(2, 20, 24), **kwargs):
    kwargs.setdefault("psf", sl.GaussianPSF(1.2))
    kwargs.setdefault("channels", ("g", "r")[: shape[0]])
    return sl.Observation(np.zeros(shape), **kwargs)


def galaxy(center=(10.0, 12.0), spectrum=(1.0, 2.0)):
    return sl.Source(center, jnp.asarray(spectrum), sl.GaussianMorphology(1.5))


def test_sources_join_the_scene_being_built():
    frame = sl.Frame.from_observations(observation())
    with sl.Scene(frame) as scene:
        first = galaxy()
        sl.PointSource((5.0, 5.0), jnp.array([3.0, 4.0]))
    assert len(scene) == 2 and scene.sources[0] is first
    # a built scene does not change: more sources make a new scene, the old one is left as it was
    with pytest.raises(sl.SceneError, match=r"already built.*sl.Scene\(scene.frame, sources=scene.sources\)"):
        with scene:
            galaxy((14.0, 10.0))
    with sl.Scene(frame, sources=scene.sources) as bigger:
        galaxy((14.0, 10.0))
    assert len(scene) == 2
    scene = bigger
    assert len(scene) == 3 and scene.sources[0] is first
    image = scene()
    assert image.shape == (2, 20, 24)
    np.testing.assert_allclose(image.sum(axis=(1, 2)), [1.0 + 3.0 + 1.0, 2.0 + 4.0 + 2.0], rtol=1e-3)
    # an explicit list of existing sources works too
    subset = sl.Scene(frame, sources=scene.sources[:2])
    assert len(subset) == 2


def test_nested_scenes_and_threads_are_independent():
    frame = sl.Frame.from_observations(observation())
    with sl.Scene(frame) as outer:
        galaxy()
        with sl.Scene(frame) as inner:
            galaxy()
            galaxy()
        galaxy()
    assert (len(outer), len(inner)) == (2, 2)
    errors = []

    def other_thread():
        try:
            galaxy()
        except sl.SceneError as error:
            errors.append(error)

    with sl.Scene(frame):
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
    assert len(errors) == 1  # the scene being built here is not active in another thread


def test_source_outside_any_scene():
    with pytest.raises(sl.SceneError, match="outside any Scene"):
        galaxy()


def test_plain_values_become_fixed_parameters():
    frame = sl.Frame.from_observations(observation())
    with sl.Scene(frame) as scene:
        sl.Source(
            sl.Parameter(jnp.array([10.0, 12.0])),
            sl.Parameter(jnp.array([1.0, 2.0]), constraint=sl.constraints.positive()),
            sl.GaussianMorphology(sigma=2.0, ellipticity=(0.1, 0.0)),
        )
    assert list(sl.get_values(scene)) == ["sources[0].center", "sources[0].spectrum"]


def test_bad_sources_are_named(unchecked):
    frame = sl.Frame.from_observations(observation())
    with sl.Scene(frame) as scene:
        galaxy()
        with pytest.raises(
            sl.SceneError, match=r"sources\[1\] \(Source\): spectrum has shape \(3,\).*2 channels"
        ):
            galaxy(spectrum=(1.0, 2.0, 3.0))
        with pytest.raises(
            sl.SceneError, match=r"sources\[1\] \(Source\): centred at .*\(40.0, 3.0\).*outside"
        ):
            galaxy(center=(40.0, 3.0))
        with unchecked(), pytest.raises(sl.SceneError, match="morphology must be"):
            sl.Source((1.0, 1.0), jnp.ones(2), morphology=None)
        with pytest.raises(
            sl.SceneError, match=r"sources\[1\] \(Source\): box=64 is larger than .* box=None"
        ):
            sl.Source((10.0, 12.0), jnp.ones(2), sl.GaussianMorphology(1.5), box=64)
        image = np.ones((5, 5), np.float32)
        for values, problem in [
            (image - 2.0, "has 25 negative values"),
            (np.zeros((5, 5), np.float32), "sums to zero"),
        ]:
            with pytest.raises(sl.SceneError, match=rf"sources\[1\] \(Source\): morphology.image {problem}"):
                sl.Source((5.0, 5.0), jnp.ones(2), sl.ImageMorphology(values))
        with pytest.raises(
            sl.SceneError, match=r"sources\[1\] .*components\[1\].morphology.image has 25 negative"
        ):
            sl.MultiComponentSource(
                (5.0, 5.0),
                [
                    sl.Component(jnp.ones(2), sl.GaussianMorphology(1.0)),
                    sl.Component(jnp.ones(2), sl.ImageMorphology(-image)),
                ],
            )
    assert len(scene) == 1


def test_bad_initial_values_are_named_by_their_path_in_the_scene():
    import numpyro.distributions as nd

    frame = sl.Frame.from_observations(observation())
    positive = sl.constraints.positive()

    def sersic(r_half):
        return sl.SersicMorphology(n=2.0, r_half=sl.Parameter(r_half, constraint=positive))

    with sl.Scene(frame) as scene:
        sl.Source((10.0, 12.0), jnp.ones(2), sersic(2.0))
        sl.Source((5.0, 5.0), jnp.ones(2), sersic(3.0))
        # the morphology is built before its source: the error waits for the source's place
        with pytest.raises(
            sl.ParameterError,
            match=r"^sources\[2\]\.morphology\.r_half: initial value -1 is outside the support of "
            r"positive\(\) \(start it inside",
        ):
            sl.Source((8.0, 8.0), jnp.ones(2), sersic(-1.0))
        with pytest.raises(sl.ParameterError, match=r"^sources\[2\]\.center: prior .* \(3,\).* \(2,\)"):
            center = jnp.array([8.0, 8.0])
            sl.Source(
                sl.Parameter(center, prior=nd.Normal(jnp.zeros(3), 1.0).to_event(1)), jnp.ones(2), sersic(2.0)
            )
        with pytest.raises(sl.ParameterError, match=r"^sources\[2\]\.spectrum: initial value is not finite"):
            sl.Source((8.0, 8.0), sl.Parameter(jnp.array([1.0, jnp.nan]), constraint=positive), sersic(2.0))
    assert len(scene) == 2
    # outside a scene, the morphology names what it knows
    with pytest.raises(sl.ParameterError, match=r"^SersicMorphology\.r_half: initial value -1"):
        sersic(-1.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"weights": np.ones((2, 20, 23))}, r"weights of shape \(2, 20, 23\) does not match"),
        ({"mask": np.zeros((3, 20, 24))}, r"mask of shape \(3, 20, 24\) does not match"),
        ({"weights": -np.ones((2, 20, 24))}, "non-negative"),
        ({"channels": ("g", "r", "i")}, r"3 channel names .* 2 channels"),
        ({"psf": sl.GaussianPSF([1.0, 1.2, 1.4])}, "PSF has 3 channels but the data have 2"),
        ({"margin": -4}, "margin must be a non-negative integer"),
    ],
)
def test_bad_observations_are_named(kwargs, message):
    with pytest.raises(sl.ObservationError, match=f"'hsc'.*{message}"):
        observation(name="hsc", **kwargs)


def test_non_finite_data_must_be_masked():
    data = np.zeros((2, 20, 24))
    data[1, 3, 4] = np.nan
    with pytest.raises(sl.ObservationError, match=r"1 pixel\(s\) with NaN.*channel 1"):
        sl.Observation(data, psf=sl.GaussianPSF(1.0))
    mask = np.zeros(data.shape, bool)
    mask[1, 3, 4] = True
    masked = sl.Observation(data, mask=mask, psf=sl.GaussianPSF(1.0))
    assert bool(masked.mask[1, 3, 4]) and np.isfinite(np.asarray(masked.data)).all()
    weights = np.ones(data.shape)
    weights[1, 3, 4] = 0.0
    assert bool(sl.Observation(data, weights=weights).mask[1, 3, 4])


def test_psfs_must_be_normalisable():
    with pytest.raises(sl.PSFError, match=r"channel\(s\) \[1\] sum to \[0.0\]"):
        sl.ArrayPSF(np.stack([np.ones((5, 5)), np.zeros((5, 5))]))
    with pytest.raises(sl.PSFError, match="NaN"):
        sl.ArrayPSF(np.full((1, 5, 5), np.nan))
    with pytest.raises(sl.PSFError, match="positive"):
        sl.GaussianPSF(0.0)
    psf = sl.ArrayPSF(2 * np.ones((1, 5, 5)))
    np.testing.assert_allclose(np.asarray(psf.images).sum(), 1.0, rtol=1e-6)


def test_channels_tie_observations_to_the_frame():
    frame = sl.Frame((2, 20, 24), channels=("g", "r"))
    with sl.Scene(frame) as scene:
        galaxy()
    other = observation(shape=(1, 20, 24), channels=("z",))
    with pytest.raises(sl.FrameError, match=r"channel\(s\) \['z'\] are not in the model frame"):
        other.render(scene)
    # an observation of a subset of the frame's channels sees those channels
    red = observation(shape=(1, 20, 24), channels=("r",))
    np.testing.assert_allclose(red.render(scene).sum(), 2.0, rtol=1e-3)


def test_frame_from_several_observations():
    g = observation(shape=(1, 20, 24), channels=("g",))
    r = observation(shape=(1, 20, 24), channels=("r",))
    frame = sl.Frame.from_observations([g, r])
    assert frame.channels == ("g", "r") and frame.shape == (2, 20, 24)
    # several observations of one channel (epochs): the frame has it once
    later = observation(shape=(2, 20, 24), channels=("r", "g"), psf=sl.GaussianPSF(2.0), name="later")
    frame = sl.Frame.from_observations([g, r, later])
    assert frame.channels == ("g", "r") and frame.shape == (2, 20, 24)
    with pytest.raises(sl.FrameError, match=r"observation 'later' is given twice \(at positions 0 and 2\)"):
        sl.Frame.from_observations([later, g, later])
    with pytest.raises(sl.FrameError, match="different pixel grids"):
        sl.Frame.from_observations([g, observation(shape=(1, 10, 10), channels=("r",))])


def test_image_morphology_renders_like_the_profile_it_samples():
    """A pixelated Gaussian stamp is a Gaussian convolved with one pixel: variance + 1/12 per axis."""
    sigma = 2.5
    rows = np.arange(21) - 10.0
    stamp = np.exp(-0.5 * (rows[:, None] ** 2 + rows[None, :] ** 2) / sigma**2)
    psf = sl.GaussianPSF(1.5)
    observation = sl.Observation(np.zeros((1, 40, 40)), psf=psf)
    frame = sl.Frame((1, 40, 40))
    with sl.Scene(frame) as pixelated:
        sl.Source(
            jnp.array([19.3, 20.6]),
            jnp.array([50.0]),
            sl.ImageMorphology(sl.Parameter(5 * stamp + 1e-6, constraint=sl.constraints.positive())),
        )
    with sl.Scene(frame) as smooth:
        sl.Source(
            jnp.array([19.3, 20.6]), jnp.array([50.0]), sl.GaussianMorphology(np.sqrt(sigma**2 + 1 / 12))
        )
    image, expected = observation.render(pixelated), observation.render(smooth)
    np.testing.assert_allclose(float(image.sum()), 50.0, rtol=1e-4)  # normalised to unit flux
    np.testing.assert_allclose(image, expected, atol=2e-3 * float(expected.max()))
    assert sl.entry_names(pixelated)[0] == "sources[0].morphology.image[0, 0]"


def sersic_scene(count, seed=0):
    """`count` free Sersic sources and a star on a 2-band 40x40 frame, with noisy data of the same."""
    rng = np.random.default_rng(seed)
    obs = sl.Observation(
        rng.normal(0.0, 0.1, (2, 40, 40)).astype(np.float32),
        weights=np.full((2, 40, 40), 100.0, np.float32),
        psf=sl.GaussianPSF(np.array([1.2, 1.4], np.float32)),
        channels=("g", "r"),
    )
    positive = sl.constraints.positive()
    with sl.Scene(sl.Frame.from_observations(obs)) as scene:
        for _ in range(count):
            morphology = sl.SersicMorphology(
                sl.Parameter(rng.uniform(1.0, 4.0), constraint=sl.constraints.interval(0.5, 6.0)),
                sl.Parameter(rng.uniform(1.5, 3.0), constraint=positive),
                sl.Parameter(rng.uniform(-0.2, 0.2, 2), constraint=sl.constraints.unit_disk()),
            )
            sl.Source(
                sl.Parameter(rng.uniform(5.0, 35.0, 2)),
                sl.Parameter(rng.uniform(1.0, 5.0, 2), constraint=positive),
                morphology,
            )
        sl.PointSource(sl.Parameter(np.array([20.0, 20.0])), sl.Parameter(np.ones(2), constraint=positive))
    return scene, obs


def test_like_sources_are_computed_stacked_with_the_same_result():
    scene, obs = sersic_scene(6)
    density = sl.LogDensity(scene, obs, jacobian=False)
    layout = density.unravel(density.x0).sources
    assert [len(part) if isinstance(part, sl.Plate) else 1 for part in layout.parts] == [6, 1]
    # the stacked computation gives the log-likelihood of the scene as written
    np.testing.assert_allclose(density.log_likelihood(density.x0), obs.log_likelihood(scene), rtol=1e-5)
    assert "sources[4].morphology.r_half" in density.names and "sources[6].center[1]" in density.names
    back = density.model(density.x0)
    assert isinstance(back.sources, list) and isinstance(back.sources[6], sl.PointSource)


def sources_per_chunk(observation):
    """How many sources (without boxes) the renderer draws per chunk on `observation`'s grid: its
    `CHUNK_BYTES` over one source's Fourier image (`render._accumulate`)."""
    from scarlet_like.astro.render import CHUNK_BYTES

    grid = observation.grid
    return max(1, CHUNK_BYTES // (8 * len(grid.aliases) * grid.padded[0] * grid.kx.shape[1]))


def gradient_lines(count):
    scene, obs = sersic_scene(count)
    density = sl.LogDensity(scene, obs, jacobian=False)
    return len(jax.jit(jax.value_and_grad(density)).lower(density.x0).as_text().splitlines())


def test_scene_gradient_program_does_not_grow_with_sources():
    chunk = sources_per_chunk(sersic_scene(1)[1])
    assert 2 <= chunk <= 20  # what the counts below assume: several chunks of several sources
    # beyond a chunk of sources they are summed by a scan: one more copy of the source code, and then no
    # growth at all (counts of whole chunks)
    assert gradient_lines(3 * chunk) < 2.5 * gradient_lines(chunk)
    assert gradient_lines(10 * chunk) == gradient_lines(3 * chunk)


@pytest.mark.slow
def test_sources_short_of_a_whole_chunk_add_no_second_copy_of_their_code():
    chunk = sources_per_chunk(sersic_scene(1)[1])
    # one and chunk - 1 sources past whole chunks fill their last chunk up with blank ones (a few lines
    # of padding) instead of drawing those left over outside the scan, which was a second copy of the
    # sources' code: with chunks of 4, 3865 lines for 13 sources against 2673 for 12 before (1.45
    # times), 2706 after
    whole = gradient_lines(3 * chunk)
    assert gradient_lines(3 * chunk + 1) < 1.1 * whole and gradient_lines(4 * chunk - 1) < 1.1 * whole


# tests/core/test_identity.py vmaps stacked models and data through fit in the default suite
@pytest.mark.slow
def test_stacked_scenes_and_observations_vmap_through_fit():
    """`sl.stack` of like scenes and of their observations: `jax.vmap` hands `sl.fit` one blend each."""
    psf = sl.GaussianPSF(1.5)

    def blend(seed):
        rng = np.random.default_rng(seed)
        frame = sl.Frame((1, 16, 16))
        center = np.array([8.0, 8.0]) + rng.uniform(-1.0, 1.0, 2)
        with sl.Scene(frame) as truth:
            sl.Source(center, np.array([100.0]), sl.GaussianMorphology(1.5))
        data = np.asarray(sl.Observation(np.zeros((1, 16, 16)), psf=psf).render(truth))
        observation = sl.Observation(data, psf=psf, weights=np.full((1, 16, 16), 100.0))
        with sl.Scene(frame) as scene:
            sl.Source(
                sl.Parameter(center + 0.3),
                sl.Parameter(np.array([80.0]), constraint=sl.constraints.positive()),
                sl.GaussianMorphology(1.5),
            )
        return scene, observation, center

    blends = [blend(seed) for seed in range(2)]
    scenes, observations = sl.stack([b[0] for b in blends]), sl.stack([b[1] for b in blends])
    result = jax.vmap(lambda scene, obs: sl.fit(scene, obs, progress=False, max_steps=100))(
        scenes, observations
    )
    fitted = sl.get_values(result.model)
    np.testing.assert_allclose(fitted["[:].sources[0].center"], [b[2] for b in blends], atol=1e-3)
    np.testing.assert_allclose(fitted["[:].sources[0].spectrum"], [[100.0], [100.0]], rtol=1e-3)


def test_a_derived_spectrum_joins_a_scene_and_renders():
    frame = sl.Frame.from_observations(observation())
    level = sl.Parameter(2.0, constraint=sl.constraints.positive())
    with sl.Scene(frame) as scene:
        sl.Source(
            (10.0, 12.0), sl.Derived(lambda a: a * jnp.array([1.0, 3.0]), level), sl.GaussianMorphology(1.5)
        )
    np.testing.assert_allclose(np.asarray(sl.measure.flux(scene.sources[0])), [2.0, 6.0])
    np.testing.assert_allclose(np.asarray(scene()).sum(axis=(-2, -1)), [2.0, 6.0], rtol=1e-3)


class _UsersOwnSource(sl.Module):
    """A source written by a user, not a subclass of sl.Source: what a scene needs of it is a centre, a
    spectrum, a morphology and a box."""

    center: sl.Parameter
    spectrum: sl.Parameter
    morphology: sl.Morphology
    box: int | None = None


def test_a_users_own_source_module_joins_a_scene():
    frame = sl.Frame((2, 21, 21), channels=("g", "r"))
    own = _UsersOwnSource(
        sl.Parameter(np.array([10.0, 10.0], np.float32)),
        sl.Parameter(np.array([5.0, 7.0], np.float32)),
        sl.GaussianMorphology(1.5),
    )
    scene = sl.Scene(frame, [own])  # as notebook 05 builds its power-law sources' scene
    assert len(scene) == 1 and isinstance(scene.sources[0], _UsersOwnSource)
    np.testing.assert_allclose(np.asarray(scene()).sum(axis=(1, 2)), [5.0, 7.0], rtol=1e-3)
