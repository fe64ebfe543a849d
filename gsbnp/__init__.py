"""gsbnp: a pure-NumPy, autograd-free reference implementation of GSB (Group Superposition
Binarization) for vision transformers.

The house, bottom floor first; a module imports only from its own floor and the floors below
(tests/test_layering.py checks it; docs/conventions.md#layers):

    _io, _validate, _threads, errors, _ste   ground floor: writes, input checks, threads, STE hooks
    functional, gradcheck                    float forward/backward pairs; numerical checks
    quant                                    the paper's binarizers and quantizer objects
    bitops                                   kernels only: packing, popcount products, op counts
    nn                                       Module and the layers that are given their quantizers
    models                                   DeiT, config, checkpoints, packed export and inference
    data                                     datasets
    train                                    optimizers, schedules, augmentation, losses, trainer
    cli, assignments                         the ``gsbnp`` command, course material
"""

__version__ = "0.1.0"
