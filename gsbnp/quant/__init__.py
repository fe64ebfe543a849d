"""The paper's binarizers as pure forward/backward pairs (filled in by the binarization work)."""
