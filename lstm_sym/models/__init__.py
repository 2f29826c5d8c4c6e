"""Models on top of the generated kernels: stacked/bidirectional recurrent layers, a dense
head, losses and optimizers, all plain NumPy with explicit forward/backward passes.

    from lstm_sym.models import Recurrent, Dense, Adam, clip_grad_norm, cross_entropy
"""

from .dense import Dense
from .layers import Recurrent, RecurrentGradients, init_uniform
from .losses import cross_entropy, log_softmax, mse_loss, softmax
from .optim import SGD, Adam, Optimizer, clip_grad_norm

__all__ = [
    "SGD",
    "Adam",
    "Dense",
    "Optimizer",
    "Recurrent",
    "RecurrentGradients",
    "clip_grad_norm",
    "cross_entropy",
    "init_uniform",
    "log_softmax",
    "mse_loss",
    "softmax",
]
