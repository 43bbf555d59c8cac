"""Figures on the real HSC blend: they build, have the panels they promise, and save."""

import ast
import inspect

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import scarlet_like as sl  # noqa: E402
from scarlet_like import plot  # noqa: E402
from scarlet_like.astro import init  # noqa: E402


@pytest.fixture(scope="module")
def blend():
    data = sl.datasets.hsc_cosmos()
    observation = data.observation(name="HSC")
    frame = sl.Frame.from_observations(observation)
    with sl.Scene(frame) as scene:
        for center in data.centers[:-1]:
            sl.Source(center, init.pixel_spectrum(observation, center), sl.GaussianMorphology(2.0))
        sl.PointSource(data.centers[-1], init.pixel_spectrum(observation, data.centers[-1]))
    yield scene, observation
    plt.close("all")


def test_scene_figure_has_data_model_residual_and_a_colour_bar(blend, tmp_path):
    scene, observation = blend
    figure = plot.scene(scene, observation)
    assert len(figure.axes) == 4
    titles = [axis.get_title() for axis in figure.axes[:3]]
    assert titles[0].startswith("data") and titles[1] == "model" and titles[2].startswith("residual")
    # every source marked and numbered on each panel
    labels = [text.get_text() for text in figure.axes[1].texts]
    assert labels == [str(index) for index in range(len(scene))]
    path = tmp_path / "scene.png"
    figure.savefig(path, dpi=60)
    assert path.stat().st_size > 1000
    plt.close(figure)


def test_scene_draws_into_given_axes_with_chosen_channels(blend):
    scene, observation = blend
    figure, axes = plt.subplots(1, 3)
    returned = plot.scene(
        scene, observation, channels=("i", "r", "g"), stretch=0.5, ax=axes, show_centers=False
    )
    assert returned is figure and len(figure.axes) == 4
    with pytest.raises(ValueError, match="three Axes"):
        plot.scene(scene, observation, ax=axes[:2])
    with pytest.raises(ValueError, match="no channel named"):
        plot.scene(scene, observation, channels=("i", "r", "u"))
    plt.close(figure)


def test_sources_figure_has_one_panel_per_source(blend, tmp_path):
    scene, observation = blend
    for figure in (plot.sources(scene, observation), plot.sources(scene, columns=3)):
        assert len(figure.axes) == len(scene)
        assert figure.axes[0].get_title() == "[0] Gaussian"
        assert figure.axes[-1].get_title() == f"[{len(scene) - 1}] PointSource"
        figure.savefig(tmp_path / "sources.png", dpi=50)
        plt.close(figure)


def test_rgb_composites():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(5, 12, 10)) + 3.0
    picture = plot.rgb(image, stretch=1.0)
    assert picture.shape == (12, 10, 3) and picture.min() >= 0 and picture.max() <= 1
    mapping = plot.channel_map(5)
    np.testing.assert_allclose(mapping.sum(axis=1), 1.0)
    assert mapping[0, -1] > 0 and mapping[2, 0] > 0  # red from the reddest, blue from the bluest
    # a masked channel is replaced by the others of its plane, not counted as zero light
    mask = np.zeros(image.shape, bool)
    mask[0, 3, 4] = True
    zeroed = image.copy()
    zeroed[0, 3, 4] = 0.0
    filled = plot.rgb(zeroed, stretch=1.0, mask=mask)
    assert filled[3, 4, 2] > 0.5 * picture[3, 4, 2]


def test_importing_plot_does_not_choose_a_backend():
    calls = [node for node in ast.walk(ast.parse(inspect.getsource(plot))) if isinstance(node, ast.Call)]
    assert not [call for call in calls if isinstance(call.func, ast.Attribute) and call.func.attr == "use"]


# --------------------------------------------------------------------------------------
# Posteriors: draws made up around a small scene, so the figures can be checked against them
# --------------------------------------------------------------------------------------

CHAINS, DRAWS = 3, 40


@pytest.fixture(scope="module")
def posterior_and_observation():
    import jax
    import jax.numpy as jnp

    data = sl.datasets.hsc_cosmos()
    observation = data.observation(name="HSC")
    frame = sl.Frame.from_observations(observation)
    with sl.Scene(frame) as scene:
        for center in data.centers[:2]:
            sl.Source(
                sl.Parameter(center),
                sl.Parameter(init.pixel_spectrum(observation, center), constraint=sl.constraints.positive()),
                sl.GaussianMorphology(sl.Parameter(2.0, constraint=sl.constraints.positive())),
            )
    x, unravel = sl.ravel(scene)
    noise = 0.05 * jax.random.normal(jax.random.key(0), (CHAINS, DRAWS, x.size), x.dtype)
    samples = x[None, None] + noise
    zeros = jnp.zeros((CHAINS, DRAWS), x.dtype)
    divergent = jnp.zeros((CHAINS, DRAWS), bool).at[1, 5].set(True)
    posterior = sl.Posterior(
        samples=samples,
        log_density=zeros,
        divergences=divergent,
        acceptance_rate=zeros + 0.8,
        num_integration_steps=jnp.full((CHAINS, DRAWS), 7),
        energy=zeros,
        step_size=jnp.ones(CHAINS, x.dtype),
        inverse_mass_matrix=jnp.ones((CHAINS, x.size), x.dtype),
        unravel=unravel,
    )
    yield posterior, observation
    plt.close("all")


def test_trace_has_a_row_per_element_with_every_chain(posterior_and_observation):
    posterior, _ = posterior_and_observation
    figure = plot.trace(posterior, ["sources[0].center", "sources[1].morphology.sigma"])
    assert len(figure.axes) == 3 * 2  # center (2 elements) and sigma: draws | histograms
    assert figure.axes[0].get_ylabel() == "sources[0].center[0]"
    assert figure.axes[4].get_ylabel() == "sources[1].morphology.sigma"
    # one line per chain (plus the divergent draws' marks), each the chain's draws in order
    lines = figure.axes[4].get_lines()
    sigma = np.asarray(posterior.values["sources[1].morphology.sigma"])
    for chain in range(CHAINS):
        np.testing.assert_allclose(lines[chain].get_ydata(), sigma[chain], rtol=1e-6)
    marks = lines[CHAINS]
    np.testing.assert_array_equal(marks.get_xdata(), [5])
    plt.close(figure)
    default = plot.trace(posterior)
    assert len(default.axes) == 2 * plot.DEFAULT_ELEMENTS
    with pytest.raises(ValueError, match="no parameter or element named 'sources\\[0\\].flux'"):
        plot.trace(posterior, "sources[0].flux")
    with pytest.raises(TypeError, match="sl.Posterior"):
        plot.trace({"a": 1})
    plt.close("all")


def test_rank_histograms_count_every_draw_of_each_chain(posterior_and_observation):
    posterior, _ = posterior_and_observation
    figure = plot.rank(posterior, ["sources[0].spectrum[2]", "sources[1].morphology.sigma"], bins=8)
    assert len(figure.axes) == 2
    assert figure.axes[1].get_title() == "sources[1].morphology.sigma"
    bars = figure.axes[0].patches
    assert len(bars) == CHAINS * 8
    # heights are drawn as 0.8 x count / expected count per bin: all draws of each chain are there
    for chain in range(CHAINS):
        heights = [bar.get_height() for bar in bars[chain * 8 : (chain + 1) * 8]]
        assert sum(heights) / 0.8 * DRAWS / 8 == pytest.approx(DRAWS)
    plt.close(figure)


def test_corner_histograms_reflect_the_draws(posterior_and_observation):
    posterior, _ = posterior_and_observation
    names = ["sources[0].center", "sources[0].morphology.sigma"]
    figure = plot.corner(posterior, names, bins=20, truths={"sources[0].morphology.sigma": 2.0})
    assert len(figure.axes) == 3 * 4 // 2  # K (K + 1) / 2 for K = 3 elements
    values = posterior.values
    expected = [
        np.asarray(values["sources[0].center"])[..., 0].ravel(),
        np.asarray(values["sources[0].center"])[..., 1].ravel(),
        np.asarray(values["sources[0].morphology.sigma"]).ravel(),
    ]
    diagonal = [figure.axes[0], figure.axes[2], figure.axes[5]]  # row by row: 1, 2, 3 Axes per row
    for axis, draws in zip(diagonal, expected, strict=True):
        # the histogram holds every draw, and its mean is the draws' mean to within half a bin
        bars = axis.patches  # one per bin
        assert len(bars) == 20
        heights = np.array([bar.get_height() for bar in bars])
        centres = np.array([bar.get_x() + bar.get_width() / 2 for bar in bars])
        width = bars[0].get_width()
        assert heights.sum() == pytest.approx(draws.size)
        assert np.sum(heights * centres) / heights.sum() == pytest.approx(draws.mean(), abs=width / 2)
        # the solid line is the mean itself
        assert axis.get_lines()[0].get_xdata()[0] == pytest.approx(draws.mean(), rel=1e-6)
        assert axis.get_title().startswith(f"{draws.mean():.4g}")
    assert diagonal[2].get_lines()[-1].get_xdata()[0] == 2.0  # the truth
    assert figure.axes[-1].get_xlabel() == "morphology.sigma" and figure.get_suptitle() == "sources[0]"
    # the pair panels hold the joint draws
    counts = figure.axes[1].collections[0].get_array()
    assert np.sum(counts) == pytest.approx(expected[0].size)
    plt.close(figure)


def test_predictive_residual_and_spread_are_those_of_the_draws(posterior_and_observation, tmp_path):
    posterior, observation = posterior_and_observation
    figure = plot.predictive(posterior, observation, draws=6, channel="i")
    assert len(figure.axes) == 4 + 2  # four panels, two colour bars
    titles = [axis.get_title() for axis in figure.axes[:4]]
    assert titles[0].startswith("data") and titles[1].startswith("posterior mean model (6 draws)")
    assert titles[2] == "residual (i)" and titles[3] == "spread of the model (i)"
    # recompute the rendered draws (2 per chain: first and last) and compare numerically
    picked = [0, DRAWS - 1]
    rendered = np.stack(
        [
            np.asarray(observation.render(posterior.model_at(chain, draw)), np.float64)
            for chain in range(CHAINS)
            for draw in picked
        ]
    )
    band = list(observation.channels).index("i")
    data = np.asarray(observation.data, np.float64)[band]
    with np.errstate(divide="ignore"):
        sigma = 1 / np.sqrt(np.asarray(observation.weights, np.float64)[band])
    residual = figure.axes[2].images[0].get_array()
    spread = figure.axes[3].images[0].get_array()
    good = ~np.ma.getmaskarray(residual)
    assert good.sum() > 0.9 * good.size
    np.testing.assert_allclose(
        residual[good], ((data - rendered[:, band].mean(0)) / sigma)[good], rtol=1e-4, atol=1e-4
    )
    np.testing.assert_allclose(spread[good], (rendered[:, band].std(0) / sigma)[good], rtol=1e-3, atol=1e-6)
    assert np.max(spread) > 0  # the draws differ, so the model moves
    figure.savefig(tmp_path / "predictive.png", dpi=50)
    plt.close(figure)
    combined = plot.predictive(posterior, observation, draws=3)
    assert combined.axes[2].get_title() == "residual"
    with pytest.raises(ValueError, match="no channel named 'u'"):
        plot.predictive(posterior, observation, channel="u")
    plt.close("all")


# --------------------------------------------------------------------------------------
# Light curves
# --------------------------------------------------------------------------------------


def _transient_scene():
    import jax.numpy as jnp

    class Burst(sl.Module):
        t0: sl.Parameter
        peak: sl.Parameter

        def __call__(self, time):
            return self.peak * jnp.exp(-0.5 * ((time - self.t0) / 3.0) ** 2)

    frame = sl.Frame((2, 15, 15), channels=("g", "r"))
    with sl.Scene(frame) as scene:
        sl.Source((7.0, 7.0), jnp.array([50.0, 80.0]), sl.GaussianMorphology(2.0))
        sl.PointSource((5.0, 9.0), Burst(sl.Parameter(10.0), sl.Parameter(jnp.array([20.0, 30.0]))))
    nights = [
        sl.Observation(np.zeros((len(channels), 15, 15)), channels=channels, time=time, name=f"night {i}")
        for i, (time, channels) in enumerate([(4.0, ("g", "r")), (9.0, ("r",)), (15.0, ("g", "r"))])
    ]
    return scene, nights


def test_light_curve_of_a_model_draws_its_flux_at_every_time_and_marks_the_epochs():
    scene, nights = _transient_scene()
    figure = plot.light_curve(scene, 1, observations=nights)
    axis = figure.axes[0]
    curves = [line for line in axis.lines if line.get_linestyle() == "-"]
    marks = [line for line in axis.lines if line.get_marker() == "o"]
    assert [line.get_label() for line in curves] == ["g", "r"]
    times = curves[0].get_xdata()
    assert times.min() < 4.0 and times.max() > 15.0  # the epochs' span, and a margin
    expected = np.asarray(sl.measure.flux(scene.sources[1], time=times))
    for channel, line in enumerate(curves):
        np.testing.assert_allclose(line.get_ydata(), expected[:, channel], rtol=1e-5)
    # each epoch marked in the channels it observed: g at nights 0 and 2, r at all three
    assert [len(mark.get_xdata()) for mark in marks] == [2, 3]
    np.testing.assert_allclose(marks[1].get_xdata(), [4.0, 9.0, 15.0])
    # the static host draws flat lines; chosen channels by name
    host = plot.light_curve(scene, 0, np.linspace(0, 20, 5), channels=["r"])
    np.testing.assert_allclose(host.axes[0].lines[0].get_ydata(), 80.0)
    with pytest.raises(ValueError, match="give the times"):
        plot.light_curve(scene, 1)
    with pytest.raises(ValueError, match="no channel 'u'"):
        plot.light_curve(scene, 1, [1.0, 2.0], channels=["u"])
    with pytest.raises(IndexError):
        plot.light_curve(scene, 5, [1.0])
    plt.close("all")


def test_light_curve_of_a_posterior_shades_the_quantiles_of_its_draws():
    import jax
    import jax.numpy as jnp

    scene, nights = _transient_scene()
    x, unravel = sl.ravel(scene)
    samples = x[None, None] + jax.random.normal(jax.random.key(1), (2, 10, x.size), x.dtype) * jnp.array(
        [[[1.0, 2.0, 3.0]]]
    )
    zeros = jnp.zeros((2, 10), x.dtype)
    posterior = sl.Posterior(
        samples=samples,
        log_density=zeros,
        divergences=zeros.astype(bool),
        acceptance_rate=zeros + 0.8,
        num_integration_steps=jnp.full((2, 10), 7),
        energy=zeros,
        step_size=jnp.ones(2, x.dtype),
        inverse_mass_matrix=jnp.ones((2, x.size), x.dtype),
        unravel=unravel,
    )
    times = np.array([5.0, 10.0, 12.0])
    figure = plot.light_curve(posterior, 1, times, observations=nights, band=(0.1, 0.9))
    axis = figure.axes[0]
    every = np.stack(
        [
            np.asarray(sl.measure.flux(posterior.model_at(c, d).sources[1], time=times))
            for c in range(2)
            for d in range(10)
        ]
    )
    curves = [line for line in axis.lines if line.get_linestyle() == "-"]
    np.testing.assert_allclose(curves[1].get_ydata(), np.median(every[..., 1], axis=0), rtol=1e-5)
    # the shaded band: its vertices span the 10 % and 90 % quantiles of the draws
    band = axis.collections[1].get_paths()[0].vertices[:, 1]
    low, high = np.quantile(every[..., 1], [0.1, 0.9], axis=0)
    np.testing.assert_allclose([band.min(), band.max()], [low.min(), high.max()], rtol=1e-5)
    assert np.all(high > low)  # the draws move the curve
    assert "posterior median" in axis.get_title()
    plt.close("all")
