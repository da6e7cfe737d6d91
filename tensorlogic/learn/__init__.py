"""Learning: parameters, optimisers (SGD with momentum, Adam, AdamW), the training loop and checkpoints.

The gradients come from `tensorlogic.autodiff` (a gradient program run like any other); this package only
decides which tensors are parameters, updates them and keeps the run's history and files.
"""
