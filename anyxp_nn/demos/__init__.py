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
    ("Generalization, Inductive Bias and Representations", "generalization"),
    ("Deep Learning Optimization", "deep"),
    ("Depth: Initialisation, Degradation and Residual Connections", "depth"),
    ("Interpretability", "interpretability"),
    ("Transfer Learning", "transfer"),
    ("Semantic Segmentation", "segmentation"),
    ("Object Detection", "detection"),
]
