import numpy as np
import pytest

import scarlet_like as sl
from scarlet_like.demo import build_scene, held_parameters, pulled_parameters
from scarlet_like.infer.optimize import far_from_normal_priors


@pytest.fixture(scope="module")
def hsc():
    data = sl.datasets.hsc_cosmos()
    observation = data.observation(name="HSC")
    return data, build_scene(data, observation)


def test_a_source_moved_far_from_its_detection_has_its_centre_and_shape_held_not_its_spectrum(hsc):
    data, scene = hsc
    assert pulled_parameters(scene) == []
    # the demo's centres have a Normal prior of one pixel around their detections: 8 pixels is 8 sd
    moved = sl.set_values(scene, {"sources[4].center": np.asarray(data.centers[4]) + np.array([0.0, 8.0])})
    far = far_from_normal_priors(moved)
    assert list(far) == ["sources[4].center"]
    value, centre, distance = far["sources[4].center"]
    np.testing.assert_allclose(value - centre, [0.0, 8.0], atol=1e-4)
    assert distance == pytest.approx(8.0, abs=1e-4)
    assert pulled_parameters(moved) == [
        "sources[4].center",
        "sources[4].morphology.n",
        "sources[4].morphology.r_half",
        "sources[4].morphology.ellipticity",
    ]
    # 4 sd is within the limit
    near = sl.set_values(scene, {"sources[4].center": np.asarray(data.centers[4]) + np.array([0.0, 4.0])})
    assert pulled_parameters(near) == []


def test_a_point_source_pulled_away_has_only_its_centre_held(hsc):
    data, scene = hsc
    points = [i for i, source in enumerate(scene.sources) if isinstance(source, sl.PointSource)]
    assert points, "the bundled blend has a point source"
    index = points[0]
    name = f"sources[{index}].center"
    moved = sl.set_values(scene, {name: np.asarray(data.centers[index]) - np.array([6.0, 0.0])})
    assert pulled_parameters(moved) == [name]


def test_held_parameters_are_those_at_a_bound_then_those_of_pulled_sources(hsc):
    data, scene = hsc
    observation = data.observation(name="HSC")
    moved = sl.set_values(scene, {"sources[4].center": np.asarray(data.centers[4]) + np.array([0.0, 8.0])})
    with pytest.warns(sl.FitWarning, match="sources\\[4\\].center"):
        result = sl.fit(moved, observation, max_steps=2, progress=False)
    at_bound = np.zeros_like(np.asarray(result.at_bounds))
    at_bound[0] = True  # as if the fit had left the first entry at a bound
    entry = sl.LogDensity(result.model, observation).names[0]
    first = next(
        name for name in sl.get_values(result.model) if entry == name or entry.startswith(f"{name}[")
    )
    held = held_parameters(result._replace(at_bounds=at_bound), observation)
    assert held[0] == first
    assert held[1:] == [name for name in pulled_parameters(result.model) if name != first]
    assert "sources[4].center" in held and not any(name.endswith("spectrum") for name in held[1:])
