"""The astronomy layer: frames, observations, PSFs, morphologies, sources, scenes and rendering."""

from . import choice, datasets, init, measure
from .choice import choose_sources
from .components import Component, MultiComponentSource
from .frame import Frame, FrameError
from .morphology import (
    GaussianMorphology,
    ImageMorphology,
    Morphology,
    PointMorphology,
    SersicMorphology,
    SpergelMorphology,
)
from .observation import Observation, ObservationError
from .psf import PSF, ArrayPSF, GaussianPSF, PSFError
from .scene import PointSource, Scene, SceneError, Source

__all__ = [
    "PSF",
    "ArrayPSF",
    "Frame",
    "FrameError",
    "GaussianMorphology",
    "GaussianPSF",
    "ImageMorphology",
    "Morphology",
    "Observation",
    "ObservationError",
    "PSFError",
    "PointMorphology",
    "PointSource",
    "Scene",
    "SceneError",
    "SersicMorphology",
    "SpergelMorphology",
    "Component",
    "MultiComponentSource",
    "Source",
    "choice",
    "choose_sources",
    "datasets",
    "init",
    "measure",
]
