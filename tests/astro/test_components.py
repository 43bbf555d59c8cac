"""Sources of several components (`sl.MultiComponentSource`): rendering, names, fluxes, fits, errors.

GalSim placement as in `tests/astro/test_render.py`: a profile at scarlet_like's `(y, x)` is drawn with
`offset = (x - (W - 1) / 2, y - (H - 1) / 2)`; a component offset `(dy, dx)` is GalSim's `shift(dx, dy)`.
"""

from __future__ import annotations

import equinox as eqx
import galsim
import numpy as np
import pytest

import scarlet_like as sl
from scarlet_like.astro.render import group_by_structure, render_units

SIZE = 40
CENTER = (19.3, 20.6)
OFFSET = (1.2, -0.7)  # (dy, dx) of the disk from the centre


@eqx.filter_jit
def _render(observation, scene):
    return observation.render(scene)


def render(observation, scene) -> np.ndarray:
    return np.asarray(_render(observation, sl.resolve(scene)), dtype=np.float64)


def observation_of(size=SIZE, channels=2, sigma=1.2, **kwargs):
    return sl.Observation(data=np.zeros((channels, size, size)), psf=sl.GaussianPSF(sigma), **kwargs)


def bulge_and_disk(center=CENTER, offset=OFFSET, bulge=(2.0, 1.0), disk=(3.0, 5.0)):
    return [
        sl.Component(bulge, sl.SersicMorphology(4.0, 1.5, (0.05, 0.1))),
        sl.Component(disk, sl.SersicMorphology(1.0, 4.0, (0.3, -0.1)), offset=offset),
    ]


def _two_scenes(observation, box=None):
    frame = sl.Frame.from_observations(observation)
    with sl.Scene(frame) as combined:
        sl.MultiComponentSource(CENTER, bulge_and_disk(), box=box)
    centre = np.asarray(CENTER)
    with sl.Scene(frame) as separate:
        for component in bulge_and_disk():
            sl.Source(
                centre + np.asarray(component.offset.value), component.spectrum, component.morphology, box=box
            )
    return combined, separate


def test_renders_as_the_sum_of_its_components_on_the_whole_frame():
    observation = observation_of()
    combined, separate = _two_scenes(observation)
    ours, reference = render(observation, combined), render(observation, separate)
    assert np.max(np.abs(ours - reference)) <= 1e-6 * reference.max()


def test_renders_as_the_sum_of_its_components_in_boxes():
    observation = observation_of(size=160, channels=1 + 1)
    combined, separate = _two_scenes(observation, box=32)
    ours, reference = render(observation, combined), render(observation, separate)
    assert np.max(np.abs(ours - reference)) <= 1e-6 * reference.max()
    # boxes were used: the light beyond the 32-pixel box (plus the PSF's reach) is left out
    whole = render(observation, _two_scenes(observation)[0])
    assert np.max(np.abs(whole - ours)) > 1e-6 * whole.max()


def test_matches_galsim_bulge_plus_offset_disk():
    observation = observation_of(channels=1)
    frame = sl.Frame.from_observations(observation)
    with sl.Scene(frame) as scene:
        sl.MultiComponentSource(
            CENTER,
            [
                sl.Component([2.0], sl.SersicMorphology(4.0, 1.5, (0.05, 0.1))),
                sl.Component([3.0], sl.SpergelMorphology(0.5, 4.0, (0.3, -0.1)), offset=OFFSET),
            ],
        )
    ours = render(observation, scene)[0]
    bulge = galsim.DeVaucouleurs(half_light_radius=1.5).shear(g1=0.05, g2=0.1).withFlux(2.0)
    disk = galsim.Exponential(half_light_radius=4.0).shear(g1=0.3, g2=-0.1).withFlux(3.0)
    galaxy = galsim.Convolve(galsim.Add(bulge, disk.shift(OFFSET[1], OFFSET[0])), galsim.Gaussian(sigma=1.2))
    y, x = CENTER
    offset = (x - (SIZE - 1) / 2, y - (SIZE - 1) / 2)
    reference = galaxy.drawImage(nx=SIZE, ny=SIZE, scale=1.0, offset=offset, method="auto").array
    error = np.max(np.abs(ours - reference)) / reference.max()
    assert error < 1e-3, error  # measured 2.3e-5


@pytest.mark.parametrize("box", [None, 32])
def test_scaled_sersic_bulge_matches_galsim_in_units_of_its_disk(box):
    """`sl.ScaledSersicMorphology`: half-light radius `ratio * reference`, centre `shift * reach`
    from the source's; the disk's r_half Parameter is the bulge's reference (one free entry)."""
    observation = observation_of(channels=1, size=48 if box is None else 96)
    frame = sl.Frame.from_observations(observation)
    disk_size = sl.Parameter(4.0, constraint=sl.constraints.positive())
    with sl.Scene(frame) as scene:
        sl.MultiComponentSource(
            CENTER,
            [
                sl.Component([3.0], sl.SersicMorphology(1.0, disk_size, (0.3, -0.1))),
                sl.Component(
                    [2.0],
                    sl.ScaledSersicMorphology(4.0, 0.375, disk_size, (0.05, 0.1), (0.6, -0.35), reach=2.0),
                ),
            ],
            box=box,
        )
    assert sl.entry_names(scene) == ("sources[0].components[0].morphology.r_half",)
    bulge = sl.resolve(scene.sources[0].components[1].morphology)
    np.testing.assert_allclose([float(bulge.r_half), *np.asarray(bulge.offset)], [1.5, 1.2, -0.7], rtol=1e-6)
    size = observation.data.shape[-1]
    ours = render(observation, scene)[0]
    galaxy = galsim.Convolve(
        galsim.Add(
            galsim.DeVaucouleurs(half_light_radius=1.5).shear(g1=0.05, g2=0.1).withFlux(2.0).shift(-0.7, 1.2),
            galsim.Exponential(half_light_radius=4.0).shear(g1=0.3, g2=-0.1).withFlux(3.0),
        ),
        galsim.Gaussian(sigma=1.2),
    )
    y, x = CENTER
    offset = (x - (size - 1) / 2, y - (size - 1) / 2)
    reference = galaxy.drawImage(nx=size, ny=size, scale=1.0, offset=offset, method="auto").array
    error = np.max(np.abs(ours - reference)) / reference.max()
    # measured 1.9e-5 on the whole frame, 6.5e-4 in a 32-pixel box (the disk's light beyond it)
    assert error < 1e-3, error
    # its extent, for boxes, reaches as far as the shifted profile's
    centred = sl.SersicMorphology(4.0, 1.5, (0.05, 0.1)).extent(0.02)
    np.testing.assert_allclose(bulge.extent(0.02), centred + 1.2, rtol=1e-6)


def test_names_flux_and_one_source():
    observation = observation_of()
    frame = sl.Frame.from_observations(observation)
    free = sl.constraints.positive()
    with sl.Scene(frame) as scene:
        sl.MultiComponentSource(
            sl.Parameter(CENTER),
            [
                sl.Component(sl.Parameter([2.0, 1.0], constraint=free), sl.SersicMorphology(4.0, 1.5)),
                sl.Component(
                    sl.Parameter([3.0, 5.0], constraint=free),
                    sl.GaussianMorphology(3.0),
                    offset=sl.Parameter(OFFSET, prior=None),
                ),
            ],
        )
        sl.Source((5.0, 30.0), sl.Parameter([1.0, 1.0]), sl.GaussianMorphology(1.5))
    assert len(scene) == 2
    names = sl.entry_names(scene)
    assert "sources[0].center[0]" in names
    assert "sources[0].components[0].spectrum[1]" in names
    assert "sources[0].components[1].offset[0]" in names
    assert "sources[1].spectrum[0]" in names
    np.testing.assert_allclose(np.asarray(sl.measure.flux(scene.sources[0])), [5.0, 6.0])
    np.testing.assert_allclose(np.asarray(scene.sources[0].spectrum.value), [5.0, 6.0])
    # the source's image holds both components, and the images add up to the scene
    alone = np.asarray(sl.measure.source_image(scene, 0))
    total = np.asarray(scene())
    other = np.asarray(sl.measure.source_image(scene, 1))
    np.testing.assert_allclose(alone + other, total, atol=1e-5 * total.max())


def test_like_components_across_sources_are_stacked_and_compile_once():
    observation = observation_of(size=48)
    frame = sl.Frame.from_observations(observation)

    def scene_at(shift):
        with sl.Scene(frame) as scene:
            for y in (12.0, 33.0):
                sl.MultiComponentSource((y + shift, 24.0), bulge_and_disk(offset=(0.5, shift)))
        return scene

    groups = group_by_structure(sl.resolve(scene_at(0.0)).sources)
    assert len(groups) == 1  # bulge and disk are both Sersic: one stack of four units
    assert groups[0].center.shape == (4, 2)
    assert len(render_units(sl.resolve(scene_at(0.0)).sources[0])) == 2
    compiled = eqx.filter_jit(lambda obs, scene: obs.render(scene))
    first = compiled(observation, sl.resolve(scene_at(0.0)))
    second = compiled(observation, sl.resolve(scene_at(0.3)))
    assert compiled._cached._cache_size() == 1
    assert not np.allclose(np.asarray(first), np.asarray(second))


def test_fit_recovers_total_flux_of_a_bulge_disk_blend():
    rng = np.random.default_rng(3)
    size, sigma = 32, 1.0
    truth_spectra = [([4.0, 2.0], [6.0, 9.0]), ([3.0, 1.5], [2.0, 4.0])]
    centers = [(12.0, 11.0), (20.0, 21.5)]
    observation = observation_of(size=size, sigma=sigma)
    frame = sl.Frame.from_observations(observation)
    with sl.Scene(frame) as truth:
        for center, (bulge, disk) in zip(centers, truth_spectra, strict=True):
            sl.MultiComponentSource(
                center,
                [
                    sl.Component(bulge, sl.GaussianMorphology(1.0)),
                    sl.Component(disk, sl.GaussianMorphology(2.5, (0.2, 0.0)), offset=(0.5, -0.5)),
                ],
            )
    noise = 0.005
    data = np.asarray(truth()) + rng.normal(0, noise, (2, size, size))
    observation = sl.Observation(data=data, weights=np.full_like(data, noise**-2), psf=sl.GaussianPSF(sigma))
    positive = sl.constraints.positive()
    with sl.Scene(frame) as start:
        for center in centers:
            sl.MultiComponentSource(
                sl.Parameter(np.asarray(center) + 0.3),
                [
                    sl.Component(sl.Parameter([3.0, 3.0], constraint=positive), sl.GaussianMorphology(1.0)),
                    sl.Component(
                        sl.Parameter([3.0, 3.0], constraint=positive),
                        sl.GaussianMorphology(sl.Parameter(2.0, constraint=positive), (0.2, 0.0)),
                        offset=sl.Parameter([0.0, 0.0]),
                    ),
                ],
            )
    result = sl.fit(start, observation, max_steps=300, progress=False)
    for index, (bulge, disk) in enumerate(truth_spectra):
        fitted = np.asarray(sl.measure.flux(result.model.sources[index]))
        expected = np.asarray(bulge) + np.asarray(disk)
        assert np.all(np.abs(fitted / expected - 1) < 0.03), (index, fitted, expected)


def test_bad_input(unchecked):
    frame = sl.Frame.from_observations(observation_of())
    with sl.Scene(frame):
        with pytest.raises(sl.SceneError, match=r"sources\[0\].*components\[1\]\.spectrum.*2 channels"):
            sl.MultiComponentSource(
                CENTER,
                [
                    sl.Component([1.0, 2.0], sl.GaussianMorphology(1.0)),
                    sl.Component([1.0], sl.GaussianMorphology(2.0)),
                ],
            )
        with pytest.raises(sl.SceneError, match="at least one"):
            sl.MultiComponentSource(CENTER, [])
        with unchecked(), pytest.raises(sl.SceneError, match=r"components\[0\] must be an sl.Component"):
            sl.MultiComponentSource(CENTER, [sl.GaussianMorphology(1.0)])
        with unchecked(), pytest.raises(sl.SceneError, match="morphology must be an sl.Morphology"):
            sl.Component([1.0, 2.0], "disk")
        with pytest.raises(sl.SceneError, match=r"offset must be \(dy, dx\)"):
            sl.MultiComponentSource(
                CENTER, [sl.Component([1.0, 2.0], sl.GaussianMorphology(1.0), offset=1.0)]
            )
        with pytest.raises(sl.SceneError, match="outside the model frame"):
            sl.MultiComponentSource((100.0, 5.0), [sl.Component([1.0, 2.0], sl.GaussianMorphology(1.0))])
    with pytest.raises(sl.SceneError, match="outside any Scene"):
        sl.MultiComponentSource(CENTER, [sl.Component([1.0, 2.0], sl.GaussianMorphology(1.0))])


def test_docs_example_runs(docs_section):
    # tests/test_docs.py does not run docs/astro.md (its examples include long fits): run this section's
    header = "import jax.numpy as jnp\nimport numpyro.distributions as nd\nimport scarlet_like as sl\n"
    namespace = docs_section("astro.md", "Sources of several components", header)
    galaxies = namespace["galaxies"]
    np.testing.assert_allclose(np.asarray(sl.measure.flux(galaxies.sources[0])), [50.0, 60.0])
    assert sl.entry_names(galaxies)[2] == "sources[0].components[0].spectrum[0]"
    assert np.asarray(galaxies()).sum() == pytest.approx(110.0, rel=0.02)


def test_plots_show_it_as_one_source():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    observation = observation_of()
    frame = sl.Frame.from_observations(observation)
    with sl.Scene(frame) as scene:
        sl.MultiComponentSource(CENTER, bulge_and_disk())
        sl.PointSource((8.0, 8.0), [1.0, 1.0])
    figure = sl.plot.sources(scene, observation)
    titles = [axis.get_title() for axis in figure.axes if axis.get_title()]
    assert len(titles) == 2
    assert "Sersic+Sersic" in titles[0]
    plt.close(figure)


def test_automatic_box_and_rebox_cover_every_component():
    frame = sl.Frame.from_observations(observation_of(size=256, channels=2))
    with sl.Scene(frame) as scene:
        small = sl.Component([1.0, 1.0], sl.GaussianMorphology(1.0))
        wide = sl.Component([1.0, 1.0], sl.GaussianMorphology(3.0), offset=(4.0, 0.0))
        sl.MultiComponentSource((128.0, 128.0), [small, wide])
    # the Gaussian of sigma 3 reaches 3 sqrt(2 ln 2000) = 11.7 px at 1e-3 of its half-light
    # brightness; 4 px further with the offset: 15.7 -> 2 * 16 + 1 = 33 -> 64
    assert scene.sources[0].box == 64
    assert scene.rebox().sources[0].box == 64
    assert scene.rebox().sources[0].components[1].offset.value.tolist() == [4.0, 0.0]


def test_stacked_layout_of_like_sources_and_like_components_renders_the_same():
    # LogDensity stacks like sources into plates, and like components inside them too
    rng = np.random.default_rng(1)
    data = rng.normal(0.0, 0.1, (2, 32, 32))
    observation = sl.Observation(data=data, psf=sl.GaussianPSF(1.0))
    frame = sl.Frame.from_observations(observation)
    with sl.Scene(frame) as scene:
        for center in ((10.0, 11.0), (20.0, 19.5)):
            sl.MultiComponentSource(
                sl.Parameter(center),
                [
                    sl.Component(
                        sl.Parameter([1.0, 2.0]),
                        sl.GaussianMorphology(sl.Parameter(sigma)),
                        sl.Parameter(offset),
                    )
                    for sigma, offset in ((1.0, (0.0, 0.0)), (2.5, (1.0, -0.5)))
                ],
            )
    density = sl.LogDensity(scene, observation)
    stacked = float(density.log_likelihood(density.x0))
    plain = float(observation.log_likelihood(scene))
    assert stacked == pytest.approx(plain, rel=1e-6)
