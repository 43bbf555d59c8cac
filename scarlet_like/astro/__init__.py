"""The astronomy layer: data sets now; frames, observations, PSFs and scenes to come."""

from . import datasets

__all__ = ["datasets"]
