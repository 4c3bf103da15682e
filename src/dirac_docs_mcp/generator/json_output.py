"""JSON output, two paths with the same result (``Generation.data`` holds the parsed value):

- with xgrammar, decoding is constrained by a grammar compiled from the schema
  (:class:`GrammarCache`: once per model and schema), so the text parses by construction;
  :func:`parse_constrained` only notes a row whose JSON did not close (token cap, deadline);
- without it, :func:`generate_json_fallback`: free generation, the first JSON value
  extracted (:func:`extract_json`), checked (:func:`schema_errors`), ONE repair retry
  (:func:`repair_messages`), then :class:`GenerationError`.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import GenerationError
from .base import Generation, Messages, ProgressFn

log = logging.getLogger(__name__)

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)


def extract_json(text: str, want: str | None = None) -> Any:
    """The first JSON value (object or array) in ``text``, tolerating code fences and
    prose around it. ``want`` ("object"/"array") prefers that kind. Raises ValueError."""
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    openers = {"object": "{", "array": "["}.get(want or "", "{[")
    for opener_set in (openers, "{["):
        for candidate in candidates:
            for index, char in enumerate(candidate):
                if char not in opener_set:
                    continue
                try:
                    value, _ = decoder.raw_decode(candidate, index)
                except ValueError:
                    continue
                return value
    raise ValueError("no JSON object or array found")


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def schema_errors(value: Any, schema: dict, path: str = "$") -> list[str]:
    """A small JSON-schema check (type, properties, required, items, enum, min/maxItems,
    min/maxLength) for the fallback path; xgrammar enforces the full schema itself."""
    errors: list[str] = []
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else list(kinds)
        ok = False
        for kind in kinds:
            types = _JSON_TYPES.get(kind, (object,))
            if isinstance(value, bool) and kind in ("integer", "number"):
                continue
            if isinstance(value, types):
                ok = True
                break
        if not ok:
            return [f"{path}: expected {'/'.join(kinds)}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not in {schema['enum']}")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{path}: missing '{key}'")
        for key, sub in schema.get("properties", {}).items():
            if key in value and isinstance(sub, dict):
                errors += schema_errors(value[key], sub, f"{path}.{key}")
        if schema.get("additionalProperties") is False:
            extra = set(value) - set(schema.get("properties", {}))
            errors += [f"{path}: unexpected '{k}'" for k in sorted(extra)]
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{path}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            errors.append(f"{path}: more than {schema['maxItems']} items")
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                errors += schema_errors(item, items, f"{path}[{i}]")
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            errors.append(f"{path}: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append(f"{path}: longer than {schema['maxLength']}")
    return errors


def repair_messages(messages: Messages, reply: str, problem: str, schema: dict) -> Messages:
    """The conversation for the one repair retry of the fallback path."""
    return [
        *messages,
        {"role": "assistant", "content": reply},
        {
            "role": "user",
            "content": (
                f"That reply is not valid JSON for the required schema ({problem}). Reply "
                f"with only the JSON value, no prose and no code fence. Schema: "
                f"{json.dumps(schema, separators=(',', ':'))}"
            ),
        },
    ]


def schema_key(schema: dict) -> str:
    """The schema as compiled: key order kept, since properties are generated in order."""
    return json.dumps(schema, separators=(",", ":"))


class GrammarCache:
    """xgrammar grammars for one tokenizer, compiled once per schema (thread-safe)."""

    def __init__(self, tokenizer: Any, vocab_size: int, stop_ids: list[int]):
        self._tokenizer = tokenizer
        self._vocab_size = vocab_size
        self._stop_ids = stop_ids
        self._lock = threading.Lock()
        self._compiler = None
        self.grammars: dict[str, Any] = {}  # by schema_key

    def compiled(self, schema: dict):
        import xgrammar as xgr

        key = schema_key(schema)
        with self._lock:
            if self._compiler is None:
                info = xgr.TokenizerInfo.from_huggingface(
                    self._tokenizer, vocab_size=self._vocab_size, stop_token_ids=self._stop_ids
                )
                self._compiler = xgr.GrammarCompiler(info)
            grammar = self.grammars.get(key)
            if grammar is None:
                start = time.perf_counter()
                try:
                    # compact JSON: fewer tokens, and no room for endless whitespace loops
                    grammar = self._compiler.compile_json_schema(key, any_whitespace=False)
                except Exception as exc:  # xgrammar raises RuntimeError/ValueError variants
                    raise GenerationError(f"the JSON schema cannot be compiled: {exc}") from exc
                self.grammars[key] = grammar
                log.info("JSON grammar compiled in %.2f s", time.perf_counter() - start)
            return grammar

    def logits_processor(self, schema: dict):
        from xgrammar.contrib.hf import LogitsProcessor

        return LogitsProcessor(self.compiled(schema))


def parse_constrained(result: Generation) -> None:
    """Set ``data`` from a grammar-constrained reply, or ``error`` if its JSON did not close."""
    try:
        result.data = json.loads(result.text)
    except ValueError:
        result.error = (
            f"the JSON output stopped unfinished ({result.finish_reason} after "
            f"{result.new_tokens} tokens)"
        )


def generate_json_fallback(
    generate: Callable[..., Generation],
    messages: Messages,
    max_new_tokens: int,
    schema: dict,
    deadline: float,
    cancel: threading.Event | None,
    on_progress: ProgressFn | None,
) -> Generation:
    """No xgrammar: free text from ``generate``, extract the first JSON value, one repair
    retry."""
    log.warning("xgrammar is not installed: JSON output is extracted, not constrained")
    want = schema.get("type") if isinstance(schema.get("type"), str) else None
    conversation = messages
    for attempt in (1, 2):
        result = generate(
            conversation,
            max_new_tokens,
            None,
            max(0.0, deadline - time.monotonic()),
            cancel,
            on_progress,
        )
        try:
            value = extract_json(result.text, want)
            problems = schema_errors(value, schema)
        except ValueError as exc:
            value, problems = None, [str(exc)]
        if not problems:
            result.data = value
            result.text = json.dumps(value, ensure_ascii=False)
            result.repairs = attempt - 1
            return result
        if attempt == 2 or result.finish_reason in ("timeout", "cancelled"):
            break
        conversation = repair_messages(messages, result.text, "; ".join(problems[:3]), schema)
    raise GenerationError(
        f"the model gave no valid JSON ({'; '.join(problems[:3])}, finish: {result.finish_reason})"
    )
