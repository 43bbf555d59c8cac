# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Two instruments, one sky: HST and HSC fitted together
#
# Space telescopes see sharp shapes in one band; ground-based surveys see colours in several bands, at
# a coarser resolution. This notebook fits both at once: a Hubble Space Telescope F814W image (0.03"
# pixels) and a Hyper Suprime-Cam cutout in five bands (0.168" pixels) of the same piece of sky. One
# scene of sources is rendered through each instrument's own WCS, PSF and pixel grid; nothing is
# resampled.
#
# The data come with the package (`sl.datasets.hsc_hst()`), from the public repository of scarlet.

# %%
import time
import warnings

# sl.fit draws a tqdm progress bar; without ipywidgets installed, tqdm falls back to a text bar and
# warns about it on import. The text bar is fine here.
warnings.filterwarnings("ignore", message="IProgress not found")

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import numpyro.distributions as nd

import scarlet_like as sl

print("scarlet_like", sl.__version__, "| jax", jax.__version__, "| device:", jax.devices()[0])

# %% [markdown]
# ## The data
#
# `sl.datasets.hsc_hst()` returns the two cutouts, each with its images, noise variance, effective PSF
# images and celestial WCS, and six detections as sky coordinates (an astropy `SkyCoord`).

# %%
data = sl.datasets.hsc_hst()
for name, part in (("HST", data.hst), ("HSC", data.hsc)):
    scale = np.sqrt(np.abs(np.linalg.det(part.wcs.pixel_scale_matrix))) * 3600
    print(
        f"{name}: bands {part.channels}, images {part.images.shape}, PSFs {part.psfs.shape}, "
        f'pixels {scale:.3f}"'
    )
print(len(data.centers), "detections")
print(data.attribution)


# %% [markdown]
# The HST image covers the middle of the HSC cutout. The detections are marked on both, placed through
# each image's own WCS: the first four lie on the HST image, the last two only on HSC's.


# %%
def stretch(image):
    noise = np.median(np.abs(image - np.median(image))) * 1.48
    return np.arcsinh(image / (3 * noise))


fig, axes = plt.subplots(1, 2, figsize=(9, 4.5))
for ax, (name, part, band) in zip(axes, (("HST F814W", data.hst, 0), ("HSC i", data.hsc, 2)), strict=True):
    ax.imshow(stretch(part.images[band]), origin="lower", cmap="gray")
    x, y = part.wcs.world_to_pixel(data.centers)
    ax.scatter(x, y, s=80, facecolors="none", edgecolors="tab:orange")
    for index, (xi, yi) in enumerate(zip(x, y, strict=True)):
        ax.annotate(str(index), (xi, yi), color="tab:orange", xytext=(5, 5), textcoords="offset points")
    ax.set_xlim(-0.5, part.images.shape[2] - 0.5)
    ax.set_ylim(-0.5, part.images.shape[1] - 0.5)
    ax.set_title(name)
plt.show()

# %% [markdown]
# ## Observations and the model frame
#
# Each cutout becomes an `sl.Observation` with its WCS (`Cutout.observation` sets the weights to the
# inverse variances and wraps the PSF images in an `sl.ArrayPSF`). The HST observation gets a small FFT
# padding, `margin=32`: its sources lie far from the edges, and its grid stays 288 pixels wide.
#
# `sl.Frame.from_observations` builds the model frame: the finest pixels (HST's) over the union of
# both footprints, and the six bands of both instruments.

# %%
hst = data.hst.observation("HST", margin=32)
hsc = data.hsc.observation("HSC")
frame = sl.Frame.from_observations([hst, hsc])
print("model frame:", frame.shape, frame.channels)
for observation in (hst, hsc):
    matrix, offset = observation.to_pixels(frame)
    print(f"{observation.name}: one model pixel is {np.sqrt(abs(np.linalg.det(matrix))):.3f} of its pixels")


# %% [markdown]
# ## The scene
#
# One elliptical Sérsic profile per detection, placed by its sky position (`frame.to_pixel` converts a
# `SkyCoord` through the frame's WCS). Each source has one spectrum over all six bands. It starts at
# five times the point-source flux that `sl.init.pixel_spectrum` reads off both observations, which is
# roughly the total flux of a resolved galaxy. Off the HST image, the F814W entry starts from HSC's i
# band. The size starts at 8 model pixels, 0.24".


# %%
def starting_spectrum(center):
    try:
        return sl.init.pixel_spectrum([hst, hsc], center, frame=frame)
    except ValueError:  # not on the HST image: F814W from HSC's i band
        matrix, offset = hsc.to_pixels(frame)
        spectrum = sl.init.pixel_spectrum(hsc, matrix @ np.asarray(center) + offset)
        return jnp.concatenate([spectrum[2:3], spectrum])


with sl.Scene(frame) as scene:
    for sky in data.centers:
        center = frame.to_pixel(sky)
        sl.Source(
            sl.Parameter(center, prior=nd.Normal(jnp.asarray(center), 3.0).to_event(1)),
            sl.Parameter(5 * starting_spectrum(center), constraint=sl.constraints.positive()),
            sl.SersicMorphology(
                n=sl.Parameter(1.0, constraint=sl.constraints.interval(0.5, 6.0)),
                r_half=sl.Parameter(8.0, constraint=sl.constraints.interval(1.0, 100.0)),
                ellipticity=sl.Parameter(jnp.zeros(2), constraint=sl.constraints.unit_disk()),
            ),
        )
print(len(scene), "sources;", sl.LogDensity(scene, [hst, hsc]).size, "free entries")

# %% [markdown]
# ## Fitting both instruments at once
#
# A list of observations is a likelihood like a single one: their log-likelihoods add up.
# `chunks=6` measures the curvature again every 50 steps. `adapt=None` keeps each source's drawing
# box as it was set when the scene was built (by default the fit regrows the boxes of sources that
# outgrow them between stretches; here that would stop the fit, because the faint source off the HST
# image drifts towards the edge of the model frame).
#
# The fit takes a minute or so on a laptop CPU, most of it compiling: the HST grid is large.

# %%
start_chi2 = [float(o.goodness_of_fit(scene)) for o in (hst, hsc)]
clock = time.perf_counter()
result = sl.fit(scene, [hst, hsc], max_steps=300, chunks=6, adapt=None)
seconds = time.perf_counter() - clock
fitted = result.model
end_chi2 = [float(o.goodness_of_fit(fitted)) for o in (hst, hsc)]
print(f"{int(result.steps)} steps in {seconds:.1f} s (compilation included)")
for observation, before, after in zip((hst, hsc), start_chi2, end_chi2, strict=True):
    print(f"{observation.name}: chi^2 per pixel {before:.2f} -> {after:.3f}")

# %% [markdown]
# ## Data, model and residuals in each instrument
#
# The same fitted scene, seen by HST and by HSC.

# %%
figure = sl.plot.scene(fitted, hst)

# %%
figure = sl.plot.scene(fitted, hsc)

# %% [markdown]
# ## The fitted sources
#
# Positions back on the sky through the frame's WCS, sizes in arcseconds, and each galaxy's flux in
# F814W over its flux in HSC's i band. The cutouts come normalised to one flux scale per pixel area,
# so that ratio, divided by the ratio of the pixel areas, should be near one for the four sources on
# the HST image: F814W covers about the i band.

# %%
values = sl.get_values(fitted)
pixel_area_ratio = (0.168 / 0.03) ** 2
x, y = data.hst.wcs.world_to_pixel(data.centers)
on_hst = (x > 0) & (x < 249) & (y > 0) & (y < 249)
print(f"{'source':>6} {'ra':>11} {'dec':>10} {'moved':>7} {'n':>5} {'r_half':>7} {'F814W/i':>8}")
for index, sky in enumerate(data.centers):
    y, x = np.asarray(values[f"sources[{index}].center"], dtype=np.float64)
    position = frame.wcs.pixel_to_world(x, y)
    spectrum = np.asarray(values[f"sources[{index}].spectrum"])
    ratio = f"{spectrum[0] / spectrum[3] / pixel_area_ratio:8.2f}" if on_hst[index] else f"{'-':>8}"
    print(
        f"{index:>6} {position.ra.deg:11.6f} {position.dec.deg:10.6f} "
        f'{position.separation(sky).arcsec:6.3f}" {float(values[f"sources[{index}].morphology.n"]):5.2f} '
        f'{0.03 * float(values[f"sources[{index}].morphology.r_half"]):6.3f}" {ratio}'
    )

# %% [markdown]
# Sources 4 and 5 lie off the HST image: HST says nothing about their F814W flux (hence no ratio),
# and HSC sees them at its coarse resolution only. Source 5 ends at the lower bounds of its size and
# index and with almost no flux: the fit found nothing there that the other sources do not already
# explain, which the `FitWarning` above reports as parameters at a bound. Such a detection is a
# candidate for removal, or for a point-source model.
#
# HST's χ² per pixel ends near one, and HSC's drops from over a hundred to about one: one scene accounts
# for both instruments' pixels. For the four sources on the HST image, the F814W / i ratios are close
# to one, as they should be. HST's images are drizzled, which makes neighbouring pixels' noise
# correlated, so a χ² per pixel slightly below one is expected there even for a perfect model.

# %%
assert end_chi2[0] < 1.05 and end_chi2[1] < 1.2, end_chi2
print("both instruments fitted: chi^2 per pixel", [round(v, 3) for v in end_chi2])
