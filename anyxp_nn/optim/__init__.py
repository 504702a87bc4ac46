"""Optimizers, learning-rate schedules and gradient clipping (numerics as ``torch.optim``)."""
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .clip import clip_grad_norm, clip_grad_value
from .optimizer import Optimizer, Schedule, param_groups_no_decay
from .rmsprop import RMSprop
from .schedules import (constant, cosine_annealing, exponential_decay, linear_warmup, sequential,
                        step_decay, warmup_cosine)
from .sgd import SGD

__all__ = ["Optimizer", "Schedule", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "param_groups_no_decay",
           "constant", "step_decay", "exponential_decay", "cosine_annealing", "linear_warmup", "sequential",
           "warmup_cosine", "clip_grad_norm", "clip_grad_value"]
