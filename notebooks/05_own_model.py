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
# # Writing your own model: a new morphology and a new kind of source
#
# The profiles and sources that come with scarlet_like are starting points. Your science may need a
# light profile that is not in the library, or a source whose spectrum follows a physical law rather
# than having a free flux in every band. Both are a few lines of code, and once written they are
# fitted, sampled, plotted and saved like the built-in ones.
#
# This tutorial writes
#
# 1. an **elliptical exponential disk** morphology, from its Fourier transform, and checks it
#    against the library's Sérsic profile with n = 1 (which is the same profile);
# 2. a **power-law source**: a galaxy whose flux across the bands is $A\,(\lambda/\lambda_i)^\beta$,
#    two numbers instead of one per band;
#
# and fits them to the faint galaxies of the bundled HSC blend. Fewer free numbers per source is
# what helps faint sources: the model cannot chase the noise in each band.

# %%
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")

import equinox as eqx
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as nd

import scarlet_like as sl

# %% [markdown]
# ## A new morphology
#
# A morphology is a unit-flux light profile centred at the origin. The renderer only ever needs its
# Fourier transform $F(\mathbf{k}) = \int I(\mathbf{x})\,e^{-i \mathbf{k}\cdot\mathbf{x}}\,d^2x$, at
# angular frequencies `(ky, kx)` in radians per pixel: it adds the position, the PSF and the pixel
# itself. So a new profile is a subclass of `sl.Morphology` with a `fourier(ky, kx)` method.
#
# An exponential disk $I(r) \propto e^{-r/h}$ of scale length $h$ has the transform
# $F(k) = (1 + h^2 k^2)^{-3/2}$. To make it elliptical we shear it: a profile sheared by the matrix
# $S$ of a reduced shear $(g_1, g_2)$ has the transform $F(S\mathbf{k})$; `sl.profiles.shear_matrix`
# gives $S$. We work with $|S\mathbf{k}|^2$ and never take a square root: at $k = 0$ the derivative of
# a square root is infinite, and the gradients of a fit would turn into NaN.
#
# Inside `fourier`, as in every `sl.Module` method, the fields are plain arrays. The method is
# vectorised over all sources of this kind, so it must stick to `jax.numpy` and avoid Python `if`s on
# values.


# %%
class ExponentialDisk(sl.Morphology):
    scale: sl.Parameter  # scale length h, in model pixels
    ellipticity: sl.Parameter  # reduced shear (g1, g2), inside the unit disk

    def fourier(self, ky, kx):
        shear = sl.profiles.shear_matrix(self.ellipticity[0], self.ellipticity[1])
        sky = shear[0, 0] * ky + shear[0, 1] * kx
        skx = shear[1, 0] * ky + shear[1, 1] * kx
        return (1.0 + self.scale**2 * (sky**2 + skx**2)) ** -1.5


# %% [markdown]
# **Check it against something known.** An exponential disk is a Sérsic profile of index 1, whose
# half-light radius is 1.678 scale lengths. Rendered in the same frame, the two should agree to the
# accuracy of the library's Sérsic table.

# %%
frame = sl.Frame((1, 48, 48))
g = jnp.array([0.3, -0.2])
with sl.Scene(frame) as mine:
    sl.Source(jnp.array([24.0, 23.5]), jnp.array([100.0]), ExponentialDisk(scale=3.0, ellipticity=g))
with sl.Scene(frame) as reference:
    sl.Source(jnp.array([24.0, 23.5]), jnp.array([100.0]), sl.SersicMorphology(1.0, 1.678 * 3.0, g))
difference = np.abs(np.asarray(mine() - reference())).max() / float(reference().max())
print(f"total flux {float(mine().sum()):.2f}; largest difference from Sérsic n = 1: {difference:.1e} of peak")

# %% [markdown]
# ## A new kind of source
#
# A built-in `sl.Source` has a free flux in every band. Over the optical bands the light of many
# galaxies is close to a power law in wavelength, $f = A\,(\lambda / \lambda_i)^\beta$: an amplitude
# $A$ (the flux in the i band) and a colour, the slope $\beta$. For a faint galaxy that is a better
# model: two numbers measured from all five bands together instead of five noisy ones.
#
# A source is any `sl.Module` with a `center`, a `morphology` and a `spectrum` (the total flux per
# band), and a static `box` (`None`: draw it on the whole frame). Here `spectrum` is a property
# computed from the two parameters. As in every `sl.Module`, a property sees `self` resolved, with
# plain arrays in place of Parameters, which is all the renderer needs. The scene also reads the
# spectrum of the unresolved source, to check its shape when the source joins the scene: with
# `@sl.keep_parameters` the property receives the Parameters themselves, and then returns the
# current spectrum as a fixed `sl.Parameter`. The `[..., None]` let the function work on many sources
# at once: sources of one kind are stacked and drawn together.

# %%
HSC_WAVELENGTHS = jnp.array([477.0, 621.0, 770.0, 893.0, 1004.0])  # nm, effective g r i z y


def power_law(amplitude, slope):
    return amplitude[..., None] * (HSC_WAVELENGTHS / HSC_WAVELENGTHS[2]) ** slope[..., None]


class PowerLawSource(sl.Module):
    center: sl.Parameter  # (y, x) in model pixels
    amplitude: sl.Parameter  # flux in the i band
    slope: sl.Parameter  # colour: the power of wavelength
    morphology: sl.Morphology
    box: int | None = eqx.field(static=True, default=None)

    @property
    @sl.keep_parameters
    def spectrum(self):
        if sl.is_parameter(self.amplitude):  # the unresolved source: its current spectrum, fixed
            values = power_law(jnp.asarray(self.amplitude.value), jnp.asarray(self.slope.value))
            return sl.Parameter(values, fixed=True)
        return power_law(self.amplitude, self.slope)


# %% [markdown]
# ## Real data: the HSC blend with the new parts
#
# The bundled HSC blend has two faint galaxies, detections 4 and 6, with a few counts per pixel. In
# the quickstart (`01_quickstart.py`) their Sérsic profiles ended at the edges of their allowed
# ranges: a profile and five free fluxes each are more freedom than their few pixels can pin down.
# Here they become power-law sources with exponential disks: 7 free numbers each instead of 11. The
# star and the other galaxies keep the automatic start of `sl.init.scene`.
#
# New sources go into a scene like any others; here we pass the full list to `sl.Scene(frame,
# sources)`. Their parameters come with constraints and priors as usual: a positive scale length, an
# ellipticity inside the unit disk with a weak Normal prior, a positive amplitude, and a weak prior on
# the slope (galaxies are redder or bluer, but not by powers of ten across the optical).

# %%
data = sl.datasets.hsc_cosmos()
observation = data.observation(name="HSC")
automatic = sl.init.scene(observation, data.centers)
FAINT = [4, 6]


def faint_galaxy(center):
    row, col = (round(float(v)) for v in center)
    i_band = float(np.clip(observation.data[2, row, col], 0.1, None))
    return PowerLawSource(
        center=sl.Parameter(center, prior=nd.Normal(jnp.asarray(center), 1.0).to_event(1)),
        amplitude=sl.Parameter(5 * i_band, constraint=sl.constraints.positive()),
        slope=sl.Parameter(1.0, prior=nd.Normal(0.0, 3.0)),
        morphology=ExponentialDisk(
            scale=sl.Parameter(1.0, constraint=sl.constraints.interval(0.2, 20.0)),
            ellipticity=sl.Parameter(
                jnp.zeros(2),
                constraint=sl.constraints.unit_disk(),
                prior=nd.Normal(jnp.zeros(2), 0.4).to_event(1),
            ),
        ),
    )


sources = [
    faint_galaxy(data.centers[i]) if i in FAINT else automatic.sources[i] for i in range(len(data.centers))
]
scene = sl.Scene(automatic.frame, sources)
print(sl.tree(scene.sources[3]))
print(
    len(sl.entry_names(scene)),
    "free numbers, against",
    len(sl.entry_names(automatic)),
    "in the automatic scene",
)

# %% [markdown]
# ## Fitting
#
# Nothing changes on the fitting side: `sl.fit` sees a log density of a flat vector, whatever the
# model. (We cap the steps to keep this notebook quick; leave the default in real work.)

# %%
result = sl.fit(scene, observation, max_steps=400)
fitted = result.model
print(f"chi^2 per pixel: {float(observation.goodness_of_fit(fitted)):.3f} after {int(result.steps)} steps")
values = sl.get_values(fitted)
for index in FAINT:
    amplitude = float(values[f"sources[{index}].amplitude"])
    slope = float(values[f"sources[{index}].slope"])
    scale = float(values[f"sources[{index}].morphology.scale"])
    print(f"galaxy {index}: i-band flux {amplitude:6.2f}, slope {slope:+.2f}, scale length {scale:.2f} px")

# %% [markdown]
# A positive slope means more flux at longer wavelengths: a redder galaxy; both of these are close to
# flat. The quickstart's scene, with a Sérsic profile and five free fluxes for every galaxy, ends
# near χ² per pixel 1.6; this one does about as well with eight numbers fewer, so the data did not
# need them. (To make such a comparison formal, fit both and compare `sl.bic` values, or the evidence
# of `sl.evidence`.)
#
# Both scale lengths end at the lower bound of their constraint, 0.2 pixels, and the fit says so in
# a `FitWarning`: at HSC's resolution these two galaxies are not resolved, and a point source with a
# power-law spectrum would describe them as well. A bound that is reached is a question the data
# ask about the model, not a number to report.
#
# The plots work on the new sources as on the built-in ones, since they only ask the sources for a
# spectrum and a profile.

# %%
figure = sl.plot.scene(fitted, observation)

# %% [markdown]
# Saving, loading, `sl.sample` and `sl.laplace` work on these models as they are. When your profile
# is good, consider also implementing `extent(level)` on it (the radius beyond which it is fainter
# than `level` times its brightness at the half-light radius): with it, the renderer can draw your
# sources in small boxes of their own on large frames.
#
# ## Checks

# %%
assert difference < 1e-3
assert np.isfinite(float(observation.goodness_of_fit(fitted)))
assert float(observation.goodness_of_fit(fitted)) < 3.0
print("checks passed")
