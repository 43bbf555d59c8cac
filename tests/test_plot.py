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
