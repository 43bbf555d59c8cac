"""Simulated blends for `bench_deblend.py`: bulge + disk galaxies, knots and stars, drawn with GalSim.

```python
from deblend_sims import simulate
blends = simulate(40, seed=0, psf="band")     # a different PSF per band; psf="single": one for all
hard = simulate(40, difficulty="hard")        # fainter, closer, knottier
obs = blends[0].observation()                 # an sl.Observation of the noisy cutout
blends[0].fluxes                              # (K, C) truth: each object drawn alone, summed over the cutout
```

Every blend holds 2-4 galaxies and, in about a third of the blends, a star, in 6 bands (u g r i z y).
A galaxy is

- a bulge: a de Vaucouleurs profile or a Sersic profile of n 3-4, half-light radius 0.8-2.2 px, rounder
  than the disk, its centre 0.3-1.0 px from the disk's, and red;
- an exponential disk, half-light radius 2.5-6 px, |g| up to 0.5, bluer than the bulge;
- in about half of the disks, `galsim.RandomKnots` (15-40 knots spread like the disk, 10-35 % of
  the disk's light), bluer still.

Galaxies have i-band fluxes of 600-15000 (log-uniform), 15-60 % of it in the bulge; each object is
6-15 px from one placed before it and at least 5 px from all. That is `difficulty="standard"`;
`difficulty="hard"` has galaxies of 300-6000, 4-10 px apart (at least 3.5 px), knots in 80 % of
the disks with 15-45 % of their light, and bulges 0.5-1.5 px off centre (`DIFFICULTY`).

Each component's spectrum is a colour template jittered by 10-25 % per band, so no two galaxies
share their colours and no galaxy has one colour throughout (what a single Sersic source per galaxy
cannot model).

PSFs are Moffat profiles (beta 2.5-4.2, a little elliptical, |g| <= 0.05), their FWHM falling from
4.2 px in u to 2.9 px in z (psf="band"), or 3.4 px in every band (psf="single"), each blend's
jittered by up to 6 %. The observation gets the PSFs' effective images (`drawImage` of the PSF alone
on 41 x 41 pixels, the pixel included), as survey pipelines deliver them. The noise is Gaussian,
its sigma per band fixed (1.0-2.0), with the weights set to match. Cutouts are 48 or 64 pixels on
a side (the smallest that holds every object's light out to ~3 disk radii), so that blends of one
structure can be fitted together by `sl.fit_many`.

The truth of each object and band is taken from an isolated render: that object alone, through the
same PSF, on the same cutout, without noise. Its `fluxes` are the sums of those images (light
falling outside the cutout is not counted, as it is not in what the fits are compared with), and
its `centers` the first moment of its band-summed image. The noiseless blend is the sum of all
objects drawn together (one `drawImage` of the whole scene per band); it equals the sum of the
isolated renders to float rounding.

The random draws depend on `seed` and the blend's index only: blend `i` has the same galaxies,
stars, positions and noise for psf="band" and psf="single", and for any `count` above `i`.
(`difficulty` changes them.)
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import galsim
import numpy as np

__all__ = ["BANDS", "SIZES", "PSF_SIZE", "Blend", "simulate", "simulate_blend", "structure"]

BANDS = ("u", "g", "r", "i", "z", "y")
#: Cutout sizes (pixels): every blend gets the smallest that holds its objects.
SIZES = (48, 64)
#: Side of the effective PSF images.
PSF_SIZE = 41
#: Moffat FWHM (pixels) per band, psf="band": a ground-based seeing sequence, broader in the blue.
BAND_FWHM = (4.2, 3.8, 3.4, 3.1, 2.9, 3.2)
#: Moffat FWHM of psf="single", every band.
SINGLE_FWHM = 3.4
#: Pixel noise sigma per band (u and y noisier).
NOISE = (2.0, 1.2, 1.0, 1.0, 1.3, 1.8)

#: The ranges of the two sets of blends. "standard": bright, resolved blends; "hard": fainter galaxies,
#: closer neighbours, more and brighter knots and more offset bulges.
DIFFICULTY = {
    "standard": {
        "i_flux": (600.0, 15000.0),
        "separation": (6.0, 15.0),
        "min_separation": 5.0,
        "knotty": 0.5,
        "knot_fraction": (0.1, 0.35),
        "bulge_offset": (0.3, 1.0),
    },
    "hard": {
        "i_flux": (300.0, 6000.0),
        "separation": (4.0, 10.0),
        "min_separation": 3.5,
        "knotty": 0.8,
        "knot_fraction": (0.15, 0.45),
        "bulge_offset": (0.5, 1.5),
    },
}

# Colour templates (flux per band relative to i) of the components.
_BULGE_SED = np.array([0.15, 0.45, 0.8, 1.0, 1.12, 1.2])
_DISK_SED = np.array([0.55, 0.8, 0.95, 1.0, 1.0, 0.98])
_KNOT_SED = np.array([1.6, 1.45, 1.2, 1.0, 0.85, 0.75])
_STAR_SEDS = (
    np.array([0.3, 0.65, 0.9, 1.0, 1.05, 1.08]),  # cool
    np.array([1.3, 1.2, 1.05, 1.0, 0.95, 0.9]),  # hot
)


@dataclasses.dataclass(frozen=True)
class Blend:
    """One simulated blend and its truth.

    **Fields:**

    - `name`: `"standard-007"`: the difficulty and the index.
    - `images`: `(C, H, W)` noisy data; `noiseless`: the same without noise.
    - `variance`: `(C,)` pixel noise variance per band.
    - `psfs`: `(C, PSF_SIZE, PSF_SIZE)` effective PSF images, each summing to 1.
    - `kinds`: `"galaxy"` or `"star"` per object.
    - `centers`: `(K, 2)` true `(y, x)` of each object: the first moment of its band-summed isolated
      render.
    - `fluxes`: `(K, C)` true flux of each object per band: the sum of its isolated render.
    - `isolated`: `(K, C, H, W)` the isolated renders.
    - `components`: per object, what it is made of (for reading the results; not needed to fit).
    """

    name: str
    images: np.ndarray
    noiseless: np.ndarray
    variance: np.ndarray
    psfs: np.ndarray
    kinds: tuple[str, ...]
    centers: np.ndarray
    fluxes: np.ndarray
    isolated: np.ndarray
    components: tuple[dict[str, Any], ...]

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.images.shape  # type: ignore[return-value]

    @property
    def structure(self) -> tuple[Any, ...]:
        """What must agree for blends to be fitted together by `sl.fit_many`."""
        return (self.images.shape, self.kinds)

    def observation(self, name: str | None = None) -> Any:
        """The blend as an `sl.Observation` (weights from the variance, `ArrayPSF` of `psfs`)."""
        import scarlet_like as sl

        weights = np.broadcast_to((1.0 / self.variance)[:, None, None], self.images.shape)
        return sl.Observation(
            self.images,
            weights=np.ascontiguousarray(weights),
            psf=sl.ArrayPSF(self.psfs),
            channels=BANDS,
            name=name or self.name,
        )


def _moffats(rng: np.random.Generator, psf: str) -> list[galsim.GSObject]:
    """One Moffat PSF per band; the draws are made for both kinds so that `rng` stays in step."""
    jitter = rng.uniform(0.94, 1.06)
    betas = rng.uniform(2.5, 4.2, len(BANDS))
    shears = rng.uniform(0.0, 0.05, len(BANDS))
    angles = rng.uniform(0.0, math.pi, len(BANDS))
    if psf == "single":
        fwhms = np.full(len(BANDS), SINGLE_FWHM * jitter)
        betas = np.full(len(BANDS), betas[3])
        shears, angles = np.full(len(BANDS), shears[3]), np.full(len(BANDS), angles[3])
    elif psf == "band":
        fwhms = np.asarray(BAND_FWHM) * jitter
    else:
        raise ValueError(f"simulate: psf must be 'band' or 'single', got {psf!r}")
    return [
        galsim.Moffat(beta=float(beta), fwhm=float(fwhm)).shear(
            g1=float(g * math.cos(2 * a)), g2=float(g * math.sin(2 * a))
        )
        for fwhm, beta, g, a in zip(fwhms, betas, shears, angles, strict=True)
    ]


def _shear(rng: np.random.Generator, largest: float, angle: float | None = None) -> galsim.Shear:
    g = rng.uniform(0.0, largest)
    angle = rng.uniform(0.0, math.pi) if angle is None else angle
    return galsim.Shear(g1=g * math.cos(2 * angle), g2=g * math.sin(2 * angle))


def _galaxy(
    rng: np.random.Generator, seed: int, ranges: dict[str, Any]
) -> tuple[list[tuple[galsim.GSObject, np.ndarray]], dict]:
    """A galaxy at the origin: (unit-flux profile, flux per band) per component, and its description."""
    brightness = math.exp(rng.uniform(*np.log(ranges["i_flux"])))  # i-band flux
    bulge_fraction = rng.uniform(0.15, 0.6)
    disk_radius = rng.uniform(2.5, 6.0)
    bulge_radius = rng.uniform(0.8, min(2.2, 0.6 * disk_radius))
    angle = rng.uniform(0.0, math.pi)
    disk_shear = _shear(rng, 0.5, angle)
    bulge_shear = _shear(rng, 0.2, angle + rng.normal(0.0, 0.3))
    offset = rng.uniform(*ranges["bulge_offset"])
    direction = rng.uniform(0.0, 2 * math.pi)
    bulge_shift = (offset * math.cos(direction), offset * math.sin(direction))  # (dx, dy)
    n_bulge = 4.0 if rng.uniform() < 0.5 else float(rng.uniform(3.0, 4.0))
    has_knots = bool(rng.uniform() < ranges["knotty"])
    knot_fraction = rng.uniform(*ranges["knot_fraction"])
    knot_count = int(rng.integers(15, 41))
    seds = {
        name: template * rng.uniform(1 - spread, 1 + spread, len(BANDS))
        for name, template, spread in (
            ("bulge", _BULGE_SED, 0.1),
            ("disk", _DISK_SED, 0.15),
            ("knots", _KNOT_SED, 0.25),
        )
    }

    if n_bulge == 4.0:
        bulge = galsim.DeVaucouleurs(half_light_radius=bulge_radius)
    else:
        bulge = galsim.Sersic(n=n_bulge, half_light_radius=bulge_radius)
    bulge = bulge.shear(bulge_shear).shift(*bulge_shift)
    disk = galsim.Exponential(half_light_radius=disk_radius).shear(disk_shear)
    disk_light = 1.0 - bulge_fraction
    parts = [
        (bulge, brightness * bulge_fraction * seds["bulge"]),
        (disk, brightness * disk_light * (1 - knot_fraction * has_knots) * seds["disk"]),
    ]
    if has_knots:
        knots = galsim.RandomKnots(
            knot_count, half_light_radius=disk_radius, flux=1.0, rng=galsim.BaseDeviate(seed)
        ).shear(disk_shear)
        parts.append((knots, brightness * disk_light * knot_fraction * seds["knots"]))
    description = {
        "kind": "galaxy",
        "i_flux": brightness,
        "bulge_fraction": bulge_fraction,
        "bulge_n": n_bulge,
        "bulge_r_half": bulge_radius,
        "bulge_offset": offset,
        "disk_r_half": disk_radius,
        "disk_g": float(disk_shear.g),
        "knots": knot_count if has_knots else 0,
        "knot_fraction": knot_fraction if has_knots else 0.0,
    }
    return parts, description


def _star(rng: np.random.Generator) -> tuple[list[tuple[galsim.GSObject, np.ndarray]], dict]:
    brightness = math.exp(rng.uniform(math.log(500.0), math.log(20000.0)))
    sed = _STAR_SEDS[int(rng.integers(len(_STAR_SEDS)))] * rng.uniform(0.95, 1.05, len(BANDS))
    return [(galsim.DeltaFunction(), brightness * sed)], {"kind": "star", "i_flux": brightness}


def _draw(profile: galsim.GSObject, psf: galsim.GSObject, size: int, position: np.ndarray) -> np.ndarray:
    """`profile` (centred at the origin) placed at `position` (y, x), through `psf`, pixel included."""
    centre = (size - 1) / 2  # GalSim draws the origin at the image's true centre
    shifted = profile.shift(float(position[1] - centre), float(position[0] - centre))
    image = galsim.Convolve(shifted, psf).drawImage(nx=size, ny=size, scale=1.0, method="auto")
    return image.array.astype(np.float64)


def _plan(index: int, seed: int, psf: str, difficulty: str) -> dict[str, Any]:
    """Every random draw of blend `index`: PSFs, objects, positions, cutout size and noise."""
    if difficulty not in DIFFICULTY:
        raise ValueError(f"simulate: difficulty must be one of {sorted(DIFFICULTY)}, got {difficulty!r}")
    ranges = DIFFICULTY[difficulty]
    rng = np.random.default_rng([seed, index])
    psfs = _moffats(rng, psf)
    galaxies = int(rng.integers(2, 5))
    has_star = bool(rng.uniform() < 0.35)

    objects = [_galaxy(rng, seed * 100003 + index * 11 + k + 1, ranges) for k in range(galaxies)]
    if has_star:
        objects.append(_star(rng))
    # Positions: the first galaxy near the middle, each other object at `separation` from one placed
    # before it and no closer than `min_separation` to any (objects that close would not be detected
    # as two).
    offsets = [rng.normal(0.0, 1.5, 2)]
    for _ in objects[1:]:
        for _attempt in range(1000):
            anchor = offsets[int(rng.integers(len(offsets)))]
            distance, direction = rng.uniform(*ranges["separation"]), rng.uniform(0.0, 2 * math.pi)
            candidate = anchor + distance * np.array([math.sin(direction), math.cos(direction)])
            if min(np.hypot(*(candidate - other)) for other in offsets) >= ranges["min_separation"]:
                break
        offsets.append(candidate)
    offsets = np.asarray(offsets)
    offsets -= offsets.mean(axis=0)  # the blend in the middle of its cutout
    reach = max(
        float(np.max(np.abs(position)))
        + (3 * description["disk_r_half"] if description["kind"] == "galaxy" else 4.0)
        for position, (_, description) in zip(offsets, objects, strict=True)
    )
    size = next((s for s in SIZES if s >= 2 * reach + 4), SIZES[-1])
    noise = rng.normal(0.0, 1.0, (len(BANDS), size, size)) * np.asarray(NOISE)[:, None, None]
    positions = offsets + (size - 1) / 2 + rng.uniform(-0.5, 0.5, 2)
    return {"psfs": psfs, "objects": objects, "positions": positions, "size": size, "noise": noise}


def structure(index: int, seed: int = 0, difficulty: str = "standard") -> tuple[Any, ...]:
    """`simulate_blend(index, seed, difficulty=difficulty).structure` without drawing anything."""
    plan = _plan(index, seed, "band", difficulty)
    size = plan["size"]
    return ((len(BANDS), size, size), tuple(description["kind"] for _, description in plan["objects"]))


def simulate_blend(index: int, seed: int = 0, psf: str = "band", difficulty: str = "standard") -> Blend:
    """Blend number `index` of the set `seed` (see the module's docstring)."""
    plan = _plan(index, seed, psf, difficulty)
    psfs, objects, positions, size, noise = (
        plan[key] for key in ("psfs", "objects", "positions", "size", "noise")
    )

    effective = np.stack(
        [p.drawImage(nx=PSF_SIZE, ny=PSF_SIZE, scale=1.0, method="auto").array for p in psfs]
    ).astype(np.float64)
    effective /= effective.sum(axis=(-2, -1), keepdims=True)

    isolated = np.zeros((len(objects), len(BANDS), size, size))
    noiseless = np.zeros((len(BANDS), size, size))
    for band, band_psf in enumerate(psfs):
        drawn = []
        for k, ((parts, _), position) in enumerate(zip(objects, positions, strict=True)):
            light = galsim.Add([profile * float(fluxes[band]) for profile, fluxes in parts])
            isolated[k, band] = _draw(light, band_psf, size, position)
            drawn.append(
                light.shift(float(position[1] - (size - 1) / 2), float(position[0] - (size - 1) / 2))
            )
        whole = galsim.Convolve(galsim.Add(drawn), band_psf)
        noiseless[band] = whole.drawImage(nx=size, ny=size, scale=1.0, method="auto").array
    totals = isolated.sum(axis=1)  # (K, H, W)
    y, x = np.indices((size, size), dtype=np.float64)
    weight = totals.sum(axis=(-2, -1))
    centers = np.stack(
        [(totals * y).sum(axis=(-2, -1)) / weight, (totals * x).sum(axis=(-2, -1)) / weight], -1
    )
    return Blend(
        name=f"{difficulty}-{index:03d}",
        images=(noiseless + noise).astype(np.float32),
        noiseless=noiseless,
        variance=np.asarray(NOISE, dtype=np.float64) ** 2,
        psfs=effective,
        kinds=tuple(description["kind"] for _, description in objects),
        centers=centers,
        fluxes=isolated.sum(axis=(-2, -1)),
        isolated=isolated,
        components=tuple(
            {**description, "position": positions[k].tolist()} for k, (_, description) in enumerate(objects)
        ),
    )


def simulate(count: int = 40, seed: int = 0, psf: str = "band", difficulty: str = "standard") -> list[Blend]:
    """`count` blends: `simulate_blend(i, seed, psf, difficulty)` for i in 0 .. count - 1."""
    return [simulate_blend(index, seed, psf, difficulty) for index in range(count)]
