"""What sky a frame built from several observations covers (`coverage="union"` or `"intersection"`), and
the bad input of several observations: footprints with no sky in common, channel names that mean
different things, sky positions without a WCS, epochs without times."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from astropy import units
from astropy.coordinates import SkyCoord
from astropy.wcs import WCS

import scarlet_like as sl

CENTER = (150.1, 2.2)  # (RA, Dec) in degrees


def tan_wcs(shape, arcsec, rotation_deg=0.0, shift=(0.0, 0.0), center=CENTER):
    """A TAN WCS whose image's pixel `(y, x) = shift` (from its middle) is at `center`."""
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = list(center)
    height, width = shape
    wcs.wcs.crpix = [(width + 1) / 2 + shift[1], (height + 1) / 2 + shift[0]]
    turn = np.deg2rad(rotation_deg)
    wcs.wcs.cd = arcsec / 3600 * np.array([[-np.cos(turn), np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    return wcs


def observation(name, shape, arcsec, channels=None, **placement):
    return sl.Observation(
        np.zeros((1 if channels is None else len(channels), *shape)),
        channels=channels,
        psf=sl.GaussianPSF(1.0),
        wcs=tan_wcs(shape, arcsec, **placement),
        name=name,
    )


def frame_corners_in(frame, observation):
    """`(y, x)` of the frame's four outer corners in the observation's pixels."""
    height, width = frame.shape[1:]
    corners = np.array([[-0.5, -0.5], [-0.5, width - 0.5], [height - 0.5, -0.5], [height - 0.5, width - 0.5]])
    x, y = observation.wcs.world_to_pixel(frame.to_sky(corners))
    return np.stack([y, x], axis=-1)


def on_image(points, observation, tolerance=1e-3):
    height, width = observation.shape[1:]
    return bool(
        np.all(points >= -0.5 - tolerance)
        and np.all(points[:, 0] <= height - 0.5 + tolerance)
        and np.all(points[:, 1] <= width - 0.5 + tolerance)
    )


def test_union_and_intersection_of_two_shifted_images_on_one_pixel_scale():
    first = observation("first", (40, 60), 0.2, channels=["g"])
    # its pixel (0, 0) is the first's pixel (10, 20)
    second = observation("second", (40, 60), 0.2, channels=["r"], shift=(-10.0, -20.0))
    union = sl.Frame.from_observations([first, second])
    explicit = sl.Frame.from_observations([first, second], coverage="union")
    assert explicit.shape == union.shape and np.all(explicit.wcs.wcs.crpix == union.wcs.wcs.crpix)
    assert union.shape == (2, 50, 80) and union.channels == ("g", "r")
    common = sl.Frame.from_observations([first, second], coverage="intersection")
    assert common.shape == (2, 30, 40) and common.channels == ("g", "r")
    # the common frame's pixel (0, 0) is the first's (10, 20); its last, the second's (29, 39)
    x, y = first.wcs.world_to_pixel(common.to_sky(np.array([0.0, 0.0])))
    np.testing.assert_allclose([y, x], [10.0, 20.0], atol=1e-6)
    x, y = second.wcs.world_to_pixel(common.to_sky(np.array([29.0, 39.0])))
    np.testing.assert_allclose([y, x], [29.0, 39.0], atol=1e-6)
    # the union's corner pixels are the first's (0, 0) and the second's last
    x, y = first.wcs.world_to_pixel(union.to_sky(np.array([0.0, 0.0])))
    np.testing.assert_allclose([y, x], [0.0, 0.0], atol=1e-6)
    x, y = second.wcs.world_to_pixel(union.to_sky(np.array([49.0, 79.0])))
    np.testing.assert_allclose([y, x], [39.0, 59.0], atol=1e-6)
    # one observation, or several on one grid: that grid, whatever the coverage
    for observations in (first, [first, observation("again", (40, 60), 0.2, channels=["i"])]):
        frames = [sl.Frame.from_observations(observations, coverage=c) for c in ("union", "intersection")]
        assert frames[0].shape[1:] == frames[1].shape[1:] == (40, 60)


@pytest.mark.parametrize("rotation_deg", [0.0, 30.0, -115.0])
def test_intersection_of_rotated_footprints_at_two_pixel_scales(rotation_deg):
    """A fine image (0.05") and a coarse one (0.2"), rotated and shifted against it: the common frame
    is on the fine grid, every pixel of it seen by both, and no larger rectangle of fine pixels is."""
    fine = observation("fine", (90, 120), 0.05, channels=["F814W"])
    coarse = observation(
        "coarse", (20, 20), 0.2, channels=["g", "r"], rotation_deg=rotation_deg, shift=(3.0, -4.0)
    )
    common = sl.Frame.from_observations([coarse, fine], coverage="intersection")
    union = sl.Frame.from_observations([coarse, fine])
    assert common.channels == union.channels == ("g", "r", "F814W")
    np.testing.assert_allclose(common.pixel_scale.value, 0.05, rtol=1e-9)
    for member in (fine, coarse):
        assert on_image(frame_corners_in(common, member), member), member.name
        # the union holds every footprint: the observation's corners are on the union frame
        height, width = member.shape[1:]
        xs, ys = (
            np.array([-0.5, width - 0.5, -0.5, width - 0.5]),
            np.array([-0.5, -0.5, height - 0.5, height - 0.5]),
        )
        corners = union.to_pixel(member.wcs.pixel_to_world(xs, ys))
        assert np.all(corners >= -0.5 - 1e-3) and np.all(corners <= np.array(union.shape[1:]) - 0.5 + 1e-3)
    # a pixel more on any side sticks out of one of them
    height, width = common.shape[1:]
    for grown in (
        [[-1.5, 0.0], [-1.5, width - 1]],
        [[height, 0.0], [height, width - 1]],
        [[0.0, -1.5], [height - 1, -1.5]],
        [[0.0, width], [height - 1, width]],
    ):
        edge = []
        for y, x in grown:  # the outer corners of the added row's (or column's) end pixels
            edge += [[y + dy, x + dx] for dy in (-0.5, 0.5) for dx in (-0.5, 0.5)]
        sky = common.to_sky(np.array(edge))
        outside = []
        for member in (fine, coarse):
            x, y = member.wcs.world_to_pixel(sky)
            outside.append(not on_image(np.stack([y, x], axis=-1), member, tolerance=-1e-3))
        assert any(outside), grown
    # unrotated, the coarse image is 80 x 80 fine pixels centred 12 rows above and 16 columns right of
    # the fine image's centre: its top 7 rows stick out of it
    if rotation_deg == 0.0:
        assert common.shape[1:] == (73, 80) and union.shape[1:] == (97, 120)
    # a source at the common frame's centre is seen whole by both
    with sl.Scene(common) as scene:
        sl.PointSource(jnp.array([(height - 1) / 2, (width - 1) / 2]), jnp.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(float(fine.render(scene).sum()), 3.0, rtol=1e-3)
    np.testing.assert_allclose(np.asarray(coarse.render(scene).sum(axis=(1, 2))), [1.0, 2.0], rtol=1e-3)


def test_footprints_without_common_sky_are_named():
    near = observation("hsc", (40, 40), 0.2, channels=["g"])
    overlapping = observation("hst", (40, 40), 0.2, channels=["F814W"], shift=(-20.0, -20.0))
    far = observation("wrong wcs", (40, 40), 0.2, channels=["r"], center=(150.6, 2.2))
    with pytest.raises(
        sl.FrameError,
        match=r"make 2 fields that share no sky: \['hsc', 'hst'\] and \['wrong wcs'\] \(the nearest centres "
        r"30 arcmin apart\).*almost always a mistake.*fit each field apart.*sl.Frame\(shape, channels, wcs",
    ):
        sl.Frame.from_observations([near, overlapping, far])
    with pytest.raises(
        sl.FrameError,
        match=r"coverage='intersection'\): no sky is seen by all of them: 'hsc' and 'wrong wcs', 'hst' and "
        r"'wrong wcs' share none",
    ):
        sl.Frame.from_observations([near, overlapping, far], coverage="intersection")
    # images that only touch share no sky either
    touching = observation("next tile", (40, 40), 0.2, channels=["i"], shift=(0.0, -40.0))
    with pytest.raises(sl.FrameError, match=r"\['hsc'\] and \['next tile'\]"):
        sl.Frame.from_observations([near, touching])
    # on the other side of the sky (no projection onto the frame's plane at all)
    antipode = observation("antipode", (40, 40), 0.2, channels=["z"], center=(330.1, -2.2))
    with pytest.raises(sl.FrameError, match=r"\['antipode'\] \(the nearest centres 180 deg apart\)"):
        sl.Frame.from_observations([near, antipode])
    # three long strips, each two crossing, with no sky common to all three
    strips = [
        observation("a", (10, 200), 0.2, channels=["a"], shift=(10.0, 0.0)),
        observation("b", (10, 200), 0.2, channels=["b"], rotation_deg=120.0, shift=(10.0, 0.0)),
        observation("c", (10, 200), 0.2, channels=["c"], rotation_deg=-120.0, shift=(10.0, 0.0)),
    ]
    assert sl.Frame.from_observations(strips).channels == ("a", "b", "c")  # one field
    with pytest.raises(sl.FrameError, match="every two of them overlap, but no sky is seen by all of them"):
        sl.Frame.from_observations(strips, coverage="intersection")


def test_bad_coverage_is_named(unchecked):
    with pytest.raises(
        sl.FrameError, match=r"coverage must be 'union' .* or 'intersection' .*, got 'overlap'"
    ):
        with unchecked():  # the runtime type check would catch it first
            sl.Frame.from_observations(observation("one", (10, 10), 0.2), coverage="overlap")


@pytest.mark.slow
def test_default_channel_names_are_positions_within_one_camera_only():
    def unnamed(name, channels=1, shape=(20, 24), **placement):
        wcs = placement.pop("wcs", None)
        return sl.Observation(np.zeros((channels, *shape)), name=name, wcs=wcs)

    # exposures of one camera without names (a user's single-instrument case): their channels are one
    first, second = unnamed("exposure 1", 3), unnamed("exposure 2", 3)
    assert not first.channels_given and sl.Observation(np.zeros((1, 4, 4)), channels=["g"]).channels_given
    assert sl.Frame.from_observations([first, second]).channels == ("0", "1", "2")
    wcs = tan_wcs((20, 24), 0.2)
    same_wcs = [unnamed("a", wcs=wcs), unnamed("b", wcs=tan_wcs((20, 24), 0.2))]
    assert sl.Frame.from_observations(same_wcs).shape == (1, 20, 24)
    # the flag is static metadata of the observation: kept by tree_at, no leaf of its own
    assert not eqx.tree_at(lambda o: o.data, first, first.data + 1).channels_given
    assert not any(isinstance(leaf, bool) for leaf in jax.tree.leaves(first))
    # a defaulted name meeting a name someone gave
    named = sl.Observation(np.zeros((1, 20, 24)), channels=["0"], name="named")
    with pytest.raises(
        sl.FrameError,
        match=r"observations 'named' and 'exposure 1' \(positions 0 and 1\) both have a channel named '0', "
        r"but 'exposure 1' was made without `channels=`.*'named' gave that name to a band of its own.*"
        r"channels=\['g', 'r'",
    ):
        sl.Frame.from_observations([named, first])
    # defaulted names of two cameras: other channel counts, image sizes, or WCSs
    with pytest.raises(sl.FrameError, match=r"not of one camera: 'exposure 1' has 3 channels, 'single' 1"):
        sl.Frame.from_observations([first, unnamed("single")])
    with pytest.raises(sl.FrameError, match=r"their images are 20x24 and 10x10 pixels"):
        sl.Frame.from_observations(
            [unnamed("x", wcs=wcs), unnamed("y", shape=(10, 10), wcs=tan_wcs((10, 10), 0.2))]
        )
    shifted = unnamed("hst", wcs=tan_wcs((20, 24), 0.2, shift=(2.0, 0.0)))
    with pytest.raises(
        sl.FrameError,
        match=r"'hsc' and 'hst'.*their WCSs place their pixels differently on the "
        r"sky \(by up to 2 pixels\)",
    ):
        sl.Frame.from_observations([unnamed("hsc", wcs=wcs), shifted])
    # observations left with the default name too are told apart by their positions
    with pytest.raises(sl.FrameError, match=r"'observation' \(at 0\) and 'observation' \(at 1\) both"):
        sl.Frame.from_observations([sl.Observation(np.zeros((2, 4, 4))), sl.Observation(np.zeros((1, 4, 4)))])
    # default names that meet no other name are no ambiguity; simulated observations carry the frame's names
    frame = sl.Frame.from_observations([sl.Observation(np.zeros((1, 20, 24)), channels=["g"]), first])
    assert frame.channels == ("g", "0", "1", "2")
    with sl.Scene(sl.Frame((1, 20, 24))) as scene:
        sl.PointSource((10.0, 12.0), jnp.array([1.0]))
    assert sl.simulate(scene, jax.random.key(0), noise=1.0).channels_given


def test_sky_positions_without_a_wcs_are_named():
    frame = sl.Frame((1, 20, 20))
    position = SkyCoord(150.1 * units.deg, 2.2 * units.deg)
    with pytest.raises(
        sl.FrameError, match=r"a position was given as a SkyCoord, but the frame has no WCS: give"
    ):
        frame.to_pixel(position)
    with sl.Scene(frame):
        sl.PointSource((5.0, 5.0), jnp.array([1.0]))
        with pytest.raises(
            sl.FrameError,
            match=r"sources\[1\] \(Source\): the centre is a SkyCoord, but the frame has no WCS: give it one",
        ):
            sl.Source(position, jnp.array([1.0]), sl.GaussianMorphology(1.0))
        with pytest.raises(
            sl.FrameError, match=r"sources\[1\] \(MultiComponentSource\): the centre is a SkyCoord, but"
        ):
            sl.MultiComponentSource(position, [sl.Component(jnp.array([1.0]), sl.GaussianMorphology(1.0))])


def test_docs_example_runs(docs_section):
    namespace = docs_section("astro.md", "Union or intersection of footprints")
    union, common = namespace["union"], namespace["common"]
    assert union.shape == (3, 207, 209) and common.shape == (3, 100, 53)
    for member in (namespace["ground"], namespace["space"]):
        assert on_image(frame_corners_in(common, member), member)
