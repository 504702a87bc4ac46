"""Demonstration sections run by examples/neural_networks_examples.py.

Each section module has ``run(backend: str, out_dir: pathlib.Path, quick: bool) -> list[dict]``
returning summary rows ``{"section", "item", "value", "unit"}``.  SECTIONS lists them in
the order of the course: (title, module name).
"""
SECTIONS = [
    ("Stochastic Gradient Descent", "sgd"),
    ("MLPs and Backpropagation", "mlp"),
    ("Vanishing and Exploding Gradients", "gradients"),
    ("Convolutional Neural Networks", "cnn"),
    ("Deep Learning Optimization", "deep"),
    ("Interpretability", "interpretability"),
    ("Depth: Initialisation, Degradation and Residual Connections", "depth"),
    ("Generalization, Inductive Bias and Representations", "generalization"),
]
