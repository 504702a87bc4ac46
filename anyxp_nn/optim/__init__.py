"""Optimizers, learning-rate schedules and gradient clipping (numerics as ``torch.optim``)."""
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .clip import clip_grad_norm, clip_grad_value
from .optimizer import Optimizer, param_groups_no_decay
from .rmsprop import RMSprop
from .schedules import (Schedule, constant, cosine_annealing, exponential_decay, linear_warmup, sequential,
                        step_decay, warmup_cosine)
from .sgd import SGD

__all__ = [
    "Adagrad", "Adam", "AdamW", "Optimizer", "RMSprop", "SGD", "Schedule", "clip_grad_norm", "clip_grad_value",
    "constant", "cosine_annealing", "exponential_decay", "linear_warmup", "param_groups_no_decay", "sequential",
    "step_decay", "warmup_cosine"
]
