"""Model adapters behind one model string: 'openclip:ARCH@TAG_OR_PATH', 'hf:ID_OR_DIR', 'builtin:DIR'.

Backends register lazily ("module:attr"), so importing negbench never imports open_clip
or transformers. `load_model(string)` is the one entry point.
"""
from negbench.models.base import (  # noqa: F401
    MODEL_BACKENDS, ModelAdapter, load_model, parse_model_string, pick_device, precision_dtype,
)
