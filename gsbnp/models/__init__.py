"""DeiT model, config and presets; checkpoints; packed export and packed inference above the model."""

from .checkpoint import load_model, read_checkpoint, save_checkpoint
from .config import PRESETS, DeiTConfig
from .deit import STAGES, DeiT
from .packed import PackedLinear, export_packed, load_packed

__all__ = ["DeiT", "DeiTConfig", "PRESETS", "STAGES", "load_model", "read_checkpoint", "save_checkpoint",
           "PackedLinear", "export_packed", "load_packed"]
