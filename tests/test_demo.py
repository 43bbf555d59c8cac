import numpy as np
import pytest

import scarlet_like as sl
from scarlet_like.demo import build_scene, pulled_parameters
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
