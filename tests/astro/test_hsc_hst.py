"""Two instruments on real data: HST (1 band, 0.03") and HSC (5 bands, 0.168") of the same sky.

The observations keep their own pixel grids and WCSs (the two headers even use different reference
systems, FK5 and ICRS); the model frame is at HST's pixel scale over the union of the footprints.
"""

import time

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as nd
import pytest
from astropy.coordinates import SkyCoord
from astropy.stats import sigma_clipped_stats

import scarlet_like as sl

# sources seen by HST (the first detections); the others lie on the HSC image only
HST_DETECTIONS = 4


@pytest.fixture(scope="module")
def data():
    return sl.datasets.hsc_hst()


@pytest.fixture(scope="module")
def observations(data):
    # a small FFT margin keeps the HST grid at 288 x 288: the sources lie far from its edges
    return data.hst.observation("HST", margin=32), data.hsc.observation("HSC")


def centroid(image):
    rows, cols = np.indices(image.shape)
    return np.array([(image * rows).sum(), (image * cols).sum()]) / image.sum()


def centroid_on_sky(image, wcs):
    y, x = centroid(image)
    return wcs.pixel_to_world(x, y)


def test_the_dataset(data):
    assert data.hst.channels == ("F814W",) and data.hsc.channels == ("g", "r", "i", "z", "y")
    assert data.hst.images.shape == (1, 250, 250) and data.hsc.images.shape == (5, 50, 50)
    for part in (data.hst, data.hsc):
        np.testing.assert_allclose(part.psfs.sum(axis=(1, 2)), 1.0, rtol=1e-5)
        # the PSFs are centred on their central pixel (within a third of a pixel)
        size = part.psfs.shape[-1]
        rows, cols = np.indices(part.psfs.shape[1:])
        for psf in part.psfs:
            centre = np.array([(psf * rows).sum(), (psf * cols).sum()])
            assert np.all(np.abs(centre - (size - 1) / 2) < 0.35), centre
        # background-subtracted, with a noise that the pixel values bear out
        noise = np.sqrt(part.variance[:, 0, 0])
        for image, sigma in zip(part.images, noise, strict=True):
            _, sky, clipped = sigma_clipped_stats(image, sigma=3.0, maxiters=10)
            assert abs(sky) < 0.05 * sigma and clipped == pytest.approx(sigma, rel=0.02)
        assert np.all(np.isfinite(part.variance)) and np.all(part.variance > 0)
    assert isinstance(data.centers, SkyCoord) and len(data.centers) == 6
    # the first detections are on the HST image, the others on the HSC image only
    x, y = data.hst.wcs.world_to_pixel(data.centers)
    inside = (x > 0) & (x < 249) & (y > 0) & (y < 249)
    assert inside.tolist() == [True] * HST_DETECTIONS + [False] * (len(data.centers) - HST_DETECTIONS)
    assert "scarlet" in data.attribution


@pytest.mark.slow
def test_a_point_source_lands_on_the_same_sky_in_both(data, observations):
    """Through the real WCSs, a point source renders where the sky position is, on both grids."""
    hst, hsc = observations
    frame = sl.Frame.from_observations([hst, hsc])
    # the finest pixels (HST's) over the union of the footprints (HSC's 50 x 0.168" = 280 x 0.03")
    assert frame.shape == (6, 281, 281)
    assert frame.channels == ("F814W", "g", "r", "i", "z", "y")
    position = data.centers[1]
    with sl.Scene(frame) as scene:
        sl.PointSource(position, jnp.ones(6, dtype=jnp.float32))
    for observation, part in ((hst, data.hst), (hsc, data.hsc)):
        image = np.asarray(observation.render(scene), dtype=np.float64)
        np.testing.assert_allclose(image.sum(axis=(1, 2)), 1.0, rtol=2e-2)
        x, y = part.wcs.world_to_pixel(position)
        for band, psf in zip(image, part.psfs, strict=True):
            # the light's centroid is the position's pixel shifted by the PSF's own centroid offset
            # (up to a third of a pixel for HSC's asymmetric PSFs)
            expected = np.array([float(y), float(x)]) + centroid(psf) - (np.array(psf.shape) - 1) / 2
            np.testing.assert_allclose(centroid(band), expected, atol=0.02, err_msg=observation.name)


def starting_spectrum(hst, hsc, frame, center):
    """`pixel_spectrum` over both observations; off the HST image, F814W starts from HSC's i band."""
    try:
        return sl.init.pixel_spectrum([hst, hsc], center, frame=frame)
    except ValueError:
        matrix, offset = hsc.to_pixels(frame)
        spectrum = sl.init.pixel_spectrum(hsc, matrix @ np.asarray(center) + offset)
        return jnp.concatenate([spectrum[2:3], spectrum])


def build_scene(data, hst, hsc):
    frame = sl.Frame.from_observations([hst, hsc])
    with sl.Scene(frame) as scene:
        for sky in data.centers:
            center = frame.to_pixel(sky)
            sl.Source(
                sl.Parameter(center, prior=nd.Normal(jnp.asarray(center), 3.0).to_event(1)),
                # five times the point-source flux: roughly the total of a resolved galaxy
                sl.Parameter(
                    5 * starting_spectrum(hst, hsc, frame, center), constraint=sl.constraints.positive()
                ),
                sl.SersicMorphology(
                    n=sl.Parameter(1.0, constraint=sl.constraints.interval(0.5, 6.0)),
                    r_half=sl.Parameter(8.0, constraint=sl.constraints.interval(1.0, 100.0)),
                    ellipticity=sl.Parameter(jnp.zeros(2), constraint=sl.constraints.unit_disk()),
                ),
            )
    return scene


@pytest.mark.slow  # about 75 s on 2 CPU cores (45 s of it the fit, compilation included)
def test_joint_fit_of_hst_and_hsc(data, observations):
    hst, hsc = observations
    scene = build_scene(data, hst, hsc)
    start = [float(o.goodness_of_fit(scene)) for o in (hst, hsc)]
    clock = time.perf_counter()
    result = sl.fit(scene, [hst, hsc], max_steps=500, chunks=10, progress=False)
    seconds = time.perf_counter() - clock
    fitted = result.model
    end = [float(o.goodness_of_fit(fitted)) for o in (hst, hsc)]
    print(
        f"HST+HSC: chi^2/dof HST {start[0]:.3f} -> {end[0]:.3f}, HSC {start[1]:.1f} -> {end[1]:.3f} "
        f"({int(result.steps)} steps, {seconds:.1f} s)"
    )
    assert np.all(np.isfinite(end))
    # HST's drizzled noise is correlated, so its per-pixel chi^2 is not exactly 1 even for a perfect model
    assert end[0] < 1.05 and end[1] < 1.2 and end[1] < start[1] / 20

    # Alignment: each HST source, rendered alone, centred where the data with the other sources'
    # models taken out are centred, in both instruments, within half an HSC pixel. (Measured: up to
    # 0.04" in HST, 0.06" in HSC, for the two galaxies a single Sersic profile fits least well.)
    offsets = []
    for index in range(HST_DETECTIONS):
        for observation, wcs in ((hst, data.hst.wcs), (hsc, data.hsc.wcs)):
            model = np.asarray(sl.measure.source_image(fitted, index, observation), dtype=np.float64)
            others = np.asarray(observation.render(fitted), dtype=np.float64) - model
            deblended = np.asarray(observation.data, dtype=np.float64) - others
            # in an aperture where the source's model is above 10 % of its peak: noise beyond it would
            # only add scatter
            weight = model.sum(axis=0)
            aperture = weight > 0.1 * weight.max()
            model_sky = centroid_on_sky(np.where(aperture, weight, 0.0), wcs)
            data_sky = centroid_on_sky(np.where(aperture, deblended.sum(axis=0), 0.0), wcs)
            offsets.append(model_sky.separation(data_sky).arcsec)
    offsets = np.array(offsets).reshape(HST_DETECTIONS, 2)
    print("model vs deblended-data centroid offsets (arcsec; HST, HSC per source):", np.round(offsets, 4))
    assert np.all(offsets < 0.5 * 0.168), offsets

    # Fluxes: the cutouts come normalised to one scale per pixel area (each HSC band sums to 1999, the
    # HST image to about 1999 (0.168 / 0.03)^2), and F814W covers about HSC's i band, so each
    # galaxy's F814W / i flux ratio is near the pixel-area ratio, up to its colour and the freedom of
    # a single Sersic profile (measured: 24 to 37). A wrong pixel scale or flux normalisation in the
    # mapping between the grids would be off by a factor of 5 to 30.
    values = sl.get_values(fitted)
    spectra = np.stack([np.asarray(values[f"sources[{i}].spectrum"]) for i in range(HST_DETECTIONS)])
    ratio = spectra[:, 0] / spectra[:, 3] / (0.168 / 0.03) ** 2
    print("F814W / i flux ratios over the pixel-area ratio:", np.round(ratio, 2))
    assert np.all((ratio > 0.65) & (ratio < 1.4)), ratio
