"""gsbnp: a pure-NumPy, autograd-free reference implementation of GSB (Group Superposition
Binarization) for vision transformers.

Layout (top depends on bottom): ``cli`` -> ``train`` -> ``models`` -> ``nn`` -> ``quant`` /
``functional``; ``bitops`` (packing, popcount, packed inference) and ``gradcheck`` sit beside them.
"""

__version__ = "0.1.0"
