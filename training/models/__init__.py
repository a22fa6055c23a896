"""Training methods, one per file, behind the contract in training/models/base.py.
two_domain.py is not a method: it is the translation core that cyclegan.py and
nir_translation.py both build on.

Add a method: write training/models/<name>.py with a DepthMethod subclass and list it here.
"""
from __future__ import annotations

from training.models.base import DepthMethod, TrainContext
from training.models.cyclegan import CycleGANMethod
from training.models.eigen import EigenMethod
from training.models.monodepth import MonodepthMethod
from training.models.nir_translation import NirTranslationMethod
from training.models.pix2pix import Pix2PixMethod
from training.models.semidense import SemiDenseMethod

METHODS: dict[str, type[DepthMethod]] = {m.name: m for m in (
    EigenMethod,
    Pix2PixMethod,
    CycleGANMethod,
    MonodepthMethod,
    NirTranslationMethod,
    SemiDenseMethod,
)}


def get_method_class(name: str) -> type[DepthMethod]:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method '{name}'; known: {sorted(METHODS)}") from None


__all__ = ['METHODS', 'DepthMethod', 'TrainContext', 'get_method_class']
