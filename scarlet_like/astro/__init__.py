"""The astronomy layer: frames, observations, PSFs, morphologies, sources, scenes and rendering."""

from . import choice, datasets, freeform, init, measure, neural, profiles
from .choice import Choice, SourceChoice, choose_sources, point_or_extended, with_bulge_disk
from .components import Component, MultiComponentSource
from .frame import Frame, FrameError
from .freeform import FreeFormPrior, starlet_transform
from .morphology import (
    GaussianMorphology,
    ImageMorphology,
    Morphology,
    PointMorphology,
    ScaledSersicMorphology,
    SersicMorphology,
    SpergelMorphology,
)
from .neural import ImageInput, galaxy_flow_prior
from .observation import Observation, ObservationError, simulate
from .psf import PSF, ArrayPSF, GaussianPSF, PSFError
from .render import FourierGrid, RenderPlan, RenderUnit, box_shape, common_grid, render_plan
from .scene import PointSource, Scene, SceneError, Source
from .spectrum import PerEpochSpectrum

__all__ = [
    "PSF",
    "ArrayPSF",
    "Frame",
    "FrameError",
    "GaussianMorphology",
    "GaussianPSF",
    "ImageMorphology",
    "FreeFormPrior",
    "ImageInput",
    "galaxy_flow_prior",
    "neural",
    "starlet_transform",
    "freeform",
    "Morphology",
    "Observation",
    "ObservationError",
    "simulate",
    "PSFError",
    "PointMorphology",
    "PointSource",
    "Scene",
    "SceneError",
    "ScaledSersicMorphology",
    "SersicMorphology",
    "SpergelMorphology",
    "Component",
    "MultiComponentSource",
    "Source",
    "PerEpochSpectrum",
    "Choice",
    "FourierGrid",
    "RenderPlan",
    "RenderUnit",
    "SourceChoice",
    "box_shape",
    "common_grid",
    "render_plan",
    "choice",
    "choose_sources",
    "point_or_extended",
    "with_bulge_disk",
    "profiles",
    "datasets",
    "init",
    "measure",
]
