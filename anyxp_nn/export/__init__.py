"""Export and interop: ONNX, safetensors, PyTorch checkpoints with other key names.

    nn.export.to_onnx(model, "model.onnx", input_shape=(1, 1, 28, 28))   # runs in ONNX Runtime
    nn.export.save_safetensors(model, "model.safetensors")              # loads in PyTorch
    nn.export.load_safetensors(model, "from_torch.safetensors")
    state = nn.export.map_state_dict_keys(torch_state, rules, expected=model)

``onnx``, ``onnxruntime`` and ``safetensors`` are optional (``pip install 'anyxp_nn[export]'``):
this package imports without them and each function says what to install.
See docs/deploy.md.
"""
from ..keymap import KeyMapError, map_state_dict_keys
from .from_checkpoint import builder_record, model_from_checkpoint
from .onnx_export import MIN_OPSET, to_onnx
from .onnx_graph import OnnxExportError, OnnxGraph, register_onnx_converter
from .safetensors_io import SafetensorsFileError, load_safetensors, read_safetensors_metadata, save_safetensors

__all__ = ["KeyMapError", "MIN_OPSET", "OnnxExportError", "OnnxGraph", "SafetensorsFileError", "builder_record",
           "load_safetensors", "map_state_dict_keys", "model_from_checkpoint", "read_safetensors_metadata",
           "register_onnx_converter", "save_safetensors", "to_onnx"]
