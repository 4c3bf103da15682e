"""Local text generation: the :class:`Generator` protocol (:mod:`.base`), decoding and
JSON-output helpers (:mod:`.decoding`, :mod:`.json_output`), CPU quantization
(:mod:`.quantize`) and the transformers back-end (:mod:`.transformers_backend`).

The product gets its generators from ``Runtime.generator()`` (loaded lazily, released on
``Runtime.close()``). The names below are re-exported for scripts and tests.
"""

from .base import FinishReason, Generation, Generator, Messages, ProgressFn
from .decoding import PROGRESS_EVERY, TRUNCATION_MARK, StopPolicy, fit_prompt, word_token_ids
from .json_output import extract_json, repair_messages, schema_errors, schema_key
from .quantize import CPU_AUTO, resolve_device, resolve_quantization
from .transformers_backend import (
    GeneratorCache,
    TransformersGenerator,
    build_generator,
    load_generator,
    unload_generators,
)

__all__ = [
    "CPU_AUTO",
    "PROGRESS_EVERY",
    "TRUNCATION_MARK",
    "FinishReason",
    "Generation",
    "Generator",
    "GeneratorCache",
    "Messages",
    "ProgressFn",
    "StopPolicy",
    "TransformersGenerator",
    "build_generator",
    "extract_json",
    "fit_prompt",
    "load_generator",
    "repair_messages",
    "resolve_device",
    "resolve_quantization",
    "schema_errors",
    "schema_key",
    "unload_generators",
    "word_token_ids",
]
