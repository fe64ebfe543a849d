"""DeiT model, config and presets."""

from .config import PRESETS, DeiTConfig
from .deit import STAGES, DeiT

__all__ = ["DeiT", "DeiTConfig", "PRESETS", "STAGES"]
