"""negbench: measure and fix negation understanding in vision-language models.

The core (formats, tasks, metrics, registry) imports without torch backends, open_clip or
transformers; heavy pieces are imported lazily by the functions that need them. In a notebook:

    import negbench
    run = negbench.evaluate("builtin:demo-out/models/pretrained", "world_coco_mcq", data_root="demo-out/tasks")
    run.results, run.predictions, run.table()
    negbench.load_results("demo-out/results")
"""
__version__ = "0.1.0"

from negbench.core.errors import NegbenchError, TaskFileError, UnknownNameError  # noqa: F401

# name -> "module:attr", imported on first use so `import negbench` stays light
_LAZY = {
    "evaluate": "negbench.api:evaluate",
    "load_results": "negbench.api:load_results",
    "EvalRun": "negbench.api:EvalRun",
    "load_model": "negbench.models:load_model",
    "make_report": "negbench.analysis.report:make_report",
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'negbench' has no attribute {name!r}")
    import importlib

    module, attr = _LAZY[name].split(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
