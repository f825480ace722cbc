"""negbench: measure and fix negation understanding in vision-language models.

The core (formats, tasks, metrics, registry) imports without torch backends, open_clip or
transformers; heavy pieces are imported lazily by the functions that need them.
"""
__version__ = "0.1.0"

from negbench.core.errors import NegbenchError, TaskFileError, UnknownNameError  # noqa: F401
