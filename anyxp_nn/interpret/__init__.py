"""Interpretability: which input pixels and features a CNN's decision rests on.

Every function takes a classifier ``model`` ((N, C, H, W) -> (N, num_classes) logits), runs it in
eval mode (``forward(x, train=False)``), leaves ``.training`` and every ``Parameter.grad`` as
it found them, and keeps its numerics on the input's backend (no host round trips):

| function | result | method |
|---|---|---|
| ``input_gradient(model, x, target)`` | (N, C, H, W) | d logit[target] / d x |
| ``saliency(model, x, target)`` | (N, H, W) | max over channels of abs(input gradient) (Simonyan 2014) |
| ``smoothgrad(model, x, target, samples, noise, rng)`` | (N, H, W) | saliency averaged over noisy copies (Smilkov 2017) |
| ``grad_cam(model, x, target, layer)`` | (N, h, w) | ReLU(sum_k alpha_k A^k) at a named layer (Selvaraju 2017) |
| ``occlusion(model, x, target, patch, stride, value)`` | (N, Ho, Wo) | probability drop under a sliding patch (Zeiler & Fergus 2014) |
| ``class_model(model, target, x0, steps, lr, l2)`` | (N, C, H, W) | gradient ascent on the input with L2 decay (Simonyan 2014) |

The maths is in docs/05-cnn-applications.md, section "Interpretability".
"""
from .class_model import class_model
from .grad_cam import grad_cam, probe_layer
from .gradients import input_gradient, saliency, smoothgrad
from .occlusion import occlusion

__all__ = ["class_model", "grad_cam", "input_gradient", "occlusion", "probe_layer", "saliency", "smoothgrad"]
