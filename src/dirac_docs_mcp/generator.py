"""Local text generation: one ``Generator`` interface, a transformers backend.

- Weights come from :mod:`.models.llm` (a Hugging Face folder on disk, never a hub).
- Device ``auto``: CUDA when ``torch.cuda.is_available()``, else CPU. Quantization ``auto``:
  bitsandbytes 4-bit NF4 on CUDA; on CPU dynamic int8 (``CPU_AUTO``, measured 2x bf16).
- Prompts go through the tokenizer's chat template; over-long prompts are cut in the middle
  of their longest message (see :func:`fit_prompt`); decoding is greedy by default and stops
  at EOS / end-of-turn, at ``max_new_tokens``, at a wall-clock deadline or a cancel event.
- ``json_schema``: decoding constrained by xgrammar, so the text parses by construction
  (grammars compiled once per model and schema). Without xgrammar: free generation, the
  first JSON value extracted, ONE repair retry, then :class:`GenerationError`.
- ``yes_probability``: the renormalised probability of a yes/true next token vs no/false,
  the abstention signal MODELS.md measured.

torch/transformers are imported lazily: the package imports without the generator extras.
Logging goes to stderr through :mod:`logging`; nothing here writes to stdout.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from .errors import GenerationError, ModelError
from .models.llm import GeneratorModelSpec, resolve_generator_model, stop_token_ids

if TYPE_CHECKING:
    from .config import Settings

log = logging.getLogger(__name__)

FinishReason = Literal["eos", "length", "timeout", "cancelled"]
Messages = list[dict[str, str]]
ProgressFn = Callable[[int, int], None]

# CPU default, measured with benchmarks/bench_generator.py on the 2-core dev box
# (Qwen2.5-Coder-0.5B, 469-token prompt, 150 new tokens, 2 threads): bf16 ~11 tok/s, TTFT
# 1.2 s, peak RSS 1.6 GB; int8 (down_proj kept bf16) ~22 tok/s, TTFT 0.9 s, peak RSS 3.8 GB
# at load, 2.2 GB after. Top-1 agreement with fp32 logits: bf16 0.99, this int8 0.96, int8
# of every Linear 0.87 (29 tok/s) -- hence INT8_KEEP_BF16.
CPU_AUTO: Literal["int8", "bf16"] = "int8"
INT8_PER_CHANNEL = True
# Linear layers left in bf16 by CPU int8 (MLP output projections; see _quantize_int8_dynamic)
INT8_KEEP_BF16: tuple[str, ...] = ("down_proj", "fc2", "w2")
PROGRESS_EVERY = 8  # tokens between on_progress calls
TRUNCATION_MARK = "\n[...]\n"

YES_WORDS = ("yes", "true")
NO_WORDS = ("no", "false")


@dataclass
class Generation:
    """One generation's text and figures."""

    text: str
    prompt_tokens: int
    new_tokens: int
    seconds: float
    ttft_s: float | None  # time to first token (prompt reading + first step); None if none
    tokens_per_s: float  # new tokens / seconds after the first token (decode speed)
    finish_reason: FinishReason
    data: Any = None  # the parsed JSON value when a json_schema was given
    prompt_truncated_tokens: int = 0  # tokens cut from the prompt to fit the context
    repairs: int = 0  # repair retries the JSON needed (fallback path without xgrammar)
    error: str | None = None  # generate_batch: why this row gave no usable JSON

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@runtime_checkable
class Generator(Protocol):
    model_id: str

    def count_tokens(self, messages: Messages) -> int: ...

    def generate(
        self,
        messages: Messages,
        max_new_tokens: int | None = None,
        json_schema: dict | None = None,
        timeout_s: float | None = None,
        cancel: threading.Event | None = None,
        on_progress: ProgressFn | None = None,
    ) -> Generation: ...

    def generate_batch(
        self,
        conversations: Sequence[Messages],
        max_new_tokens: int | None = None,
        json_schema: dict | None = None,
        timeout_s: float | None = None,
        cancel: threading.Event | None = None,
        on_progress: ProgressFn | None = None,
    ) -> list[Generation]: ...

    def yes_probability(
        self, messages: Messages, answer_prefix: str = "", timeout_s: float | None = None
    ) -> float: ...


# --------------------------------------------------------------------------------------
# pure helpers (unit-tested without a model)
# --------------------------------------------------------------------------------------


class StopPolicy:
    """Decides after each new token whether to stop: deadline, cancel event, progress.

    ``clock`` is injectable so tests can drive it; ``check`` returns the finish reason that
    applies (``"timeout"``/``"cancelled"``) or None to go on.
    """

    def __init__(
        self,
        max_new_tokens: int,
        deadline: float | None,
        cancel: threading.Event | None = None,
        on_progress: ProgressFn | None = None,
        clock: Callable[[], float] = time.monotonic,
        progress_every: int = PROGRESS_EVERY,
    ):
        self.max_new_tokens = max_new_tokens
        self.deadline = deadline
        self.cancel = cancel
        self.on_progress = on_progress
        self.clock = clock
        self.progress_every = max(1, progress_every)
        self.first_token_at: float | None = None
        self.reason: FinishReason | None = None
        self.new_tokens = 0
        self._reported = 0

    def check(self, new_tokens: int) -> FinishReason | None:
        now = self.clock()
        if self.first_token_at is None and new_tokens > 0:
            self.first_token_at = now
        self.new_tokens = new_tokens
        if self.on_progress is not None and new_tokens - self._reported >= self.progress_every:
            self._reported = new_tokens
            self._report(new_tokens)
        if self.reason is None:
            if self.cancel is not None and self.cancel.is_set():
                self.reason = "cancelled"
            elif self.deadline is not None and now >= self.deadline:
                self.reason = "timeout"
        return self.reason

    def finish(self) -> None:
        """Final progress report (once, with the final count)."""
        if self.on_progress is not None and self._reported != self.new_tokens:
            self._reported = self.new_tokens
            self._report(self.new_tokens)

    def _report(self, new_tokens: int) -> None:
        try:
            self.on_progress(new_tokens, self.max_new_tokens)  # type: ignore[misc]
        except Exception:  # a broken progress callback must not kill the generation
            log.exception("on_progress callback failed")


def fit_prompt(
    messages: Messages,
    budget: int,
    render: Callable[[Messages], list[int]],
    encode: Callable[[str], list[int]],
    decode: Callable[[list[int]], str],
    min_keep: int = 32,
) -> tuple[list[int], int, Messages]:
    """Render ``messages`` to token ids that fit ``budget``.

    Over budget, the middle of the longest message is replaced by ``[...]``: its head
    (instructions, the first passages) and tail (the question) survive. Raises
    GenerationError if even that cannot fit. Returns (ids, tokens cut, messages used).
    """
    ids = render(messages)
    original = len(ids)
    messages = [dict(m) for m in messages]
    for _ in range(6):
        if len(ids) <= budget:
            return ids, original - len(ids), messages
        excess = len(ids) - budget
        lengths = [len(encode(m.get("content", ""))) for m in messages]
        index = max(range(len(messages)), key=lambda i: lengths[i])
        content_ids = encode(messages[index].get("content", ""))
        mark = len(encode(TRUNCATION_MARK))
        keep = len(content_ids) - excess - mark - 4  # small margin for re-tokenisation
        if keep < min_keep:
            break
        head = (keep * 2) // 3  # the head usually holds the instructions and best passages
        tail = keep - head
        messages[index]["content"] = (
            decode(content_ids[:head]) + TRUNCATION_MARK + decode(content_ids[-tail:])
        )
        ids = render(messages)
    if len(ids) <= budget:
        return ids, original - len(ids), messages
    raise GenerationError(
        f"the prompt has {original} tokens and cannot be cut to the {budget}-token budget; "
        "raise generator_max_context_tokens or send fewer passages"
    )


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


def resolve_device(setting: str, cuda_available: bool) -> str:
    if setting == "auto":
        return "cuda" if cuda_available else "cpu"
    if setting == "cuda" and not cuda_available:
        raise ModelError("generator_device is 'cuda' but torch sees no CUDA device")
    return setting


def resolve_quantization(setting: str, device: str) -> str:
    if setting == "auto":
        return "nf4" if device == "cuda" else CPU_AUTO
    return setting


def word_token_ids(encode: Callable[[str], list[int]], words: Sequence[str]) -> set[int]:
    """Ids of single-token spellings of ``words`` (lower, Capitalised, UPPER, with and
    without a leading space)."""
    ids: set[int] = set()
    for word in words:
        for variant in {word, word.capitalize(), word.upper()}:
            for spelled in (variant, " " + variant):
                tokens = encode(spelled)
                if len(tokens) == 1:
                    ids.add(tokens[0])
    return ids


# --------------------------------------------------------------------------------------
# the transformers backend
# --------------------------------------------------------------------------------------


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def _quantize_int8_dynamic(model):
    """Dynamic int8 (int8 weights, activations quantized on the fly) for the Linear layers,
    except the MLP output projections (``INT8_KEEP_BF16``), which stay bf16: their inputs
    carry the activation outliers that make all-int8 drift from the bf16 model. Done one
    decoder block at a time so the peak stays near the bf16 model plus one fp32 block."""
    import gc

    import torch
    from torch.ao.quantization import quantize_dynamic

    qconfig = _int8_qconfig()
    kept: list[torch.nn.Module] = []

    def targets(root: torch.nn.Module) -> dict[str, Any]:
        spec: dict[str, Any] = {}
        for name, module in root.named_modules():
            if not isinstance(module, torch.nn.Linear) or getattr(module, "_dirac_kept", False):
                continue
            if name.rsplit(".", 1)[-1] in INT8_KEEP_BF16:
                module._dirac_kept = True
                kept.append(module)
            else:
                spec[name] = qconfig
        return spec

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization is deprecated (still in 2.13)
        blocks = next(
            (
                m.layers
                for m in model.modules()
                if isinstance(getattr(m, "layers", None), torch.nn.ModuleList)
            ),
            None,
        )
        for index in range(len(blocks) if blocks is not None else 0):
            spec = targets(blocks[index])
            quantize_dynamic(blocks[index].float(), spec, dtype=torch.qint8, inplace=True)
            gc.collect()  # the fp32 copies sit in reference cycles until collected
        del blocks
        head = model.get_output_embeddings()
        names = [name for name, module in model.named_modules() if module is head]
        if isinstance(head, torch.nn.Linear) and names:
            head.float()
            quantize_dynamic(model, {names[0]: qconfig}, dtype=torch.qint8, inplace=True)
            gc.collect()
        model.float()  # embeddings and norms in fp32 (quantized linears take and give fp32)
        quantize_dynamic(model, targets(model), dtype=torch.qint8, inplace=True)  # the rest
        gc.collect()
    for module in kept:
        module.to(torch.bfloat16)
        module.register_forward_pre_hook(_to_bf16)
        module.register_forward_hook(_to_fp32)
    _release_free_memory()
    return model


def _to_bf16(module, args):
    import torch

    return tuple(a.to(torch.bfloat16) if isinstance(a, torch.Tensor) else a for a in args)


def _to_fp32(module, args, output):
    return output.float()


def _int8_qconfig():
    """Per-channel weight scales (per-tensor measured no faster and a little worse)."""
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig

    return per_channel_dynamic_qconfig if INT8_PER_CHANNEL else default_dynamic_qconfig


def _release_free_memory() -> None:
    """Hand freed heap pages back to the OS (glibc keeps them; ~0.3 GB after int8)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def load_model(spec: GeneratorModelSpec, device: str, quantization: str):
    """Load the model and tokenizer on ``device`` in ``quantization`` mode."""
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise ModelError(
            f"the generator needs torch and transformers ({exc}); "
            "install them with pip install 'dirac-docs-mcp[generator]'"
        ) from None
    kwargs: dict[str, Any] = {}
    if quantization in ("nf4", "int8") and (device == "cuda" or quantization == "nf4"):
        if not _has_module("bitsandbytes"):
            raise ModelError(
                f"generator_quantization={quantization} on {device} needs bitsandbytes; "
                "install it with pip install 'dirac-docs-mcp[cuda]' (or choose bf16)"
            )
        from transformers import BitsAndBytesConfig

        if quantization == "nf4":
            if device == "cpu":
                log.warning("NF4 on CPU is slow (about 1 tok/s measured); int8 or bf16 is faster")
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_compute_dtype=torch.bfloat16,
                bnb_4bit_use_double_quant=True,
            )
        else:
            kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
        kwargs["device_map"] = {"": 0 if device == "cuda" else "cpu"}
        kwargs["dtype"] = torch.bfloat16
    elif quantization == "fp32":
        kwargs["dtype"] = torch.float32
    else:  # bf16, and CPU int8 (loaded in bf16, quantized block by block below)
        half = torch.bfloat16
        if device == "cuda" and not torch.cuda.is_bf16_supported():
            half = torch.float16
        kwargs["dtype"] = half
    try:
        tokenizer = AutoTokenizer.from_pretrained(spec.path)
        model = AutoModelForCausalLM.from_pretrained(spec.path, **kwargs)
    except (OSError, ValueError, ImportError, RuntimeError) as exc:
        raise ModelError(f"cannot load the generator from {spec.path}: {exc}") from exc
    if quantization == "int8" and device == "cpu":
        model = _quantize_int8_dynamic(model)
    elif "device_map" not in kwargs:
        model = model.to(device)
    model.eval()
    return model, tokenizer


class TransformersGenerator:
    """A causal LM on transformers. Thread-safe: one generation at a time per instance."""

    def __init__(
        self,
        spec: GeneratorModelSpec,
        device: str = "cpu",
        quantization: str = "bf16",
        max_context_tokens: int = 3072,
        default_max_new_tokens: int = 256,
        default_timeout_s: float = 120.0,
    ):
        start = time.perf_counter()
        self.spec = spec
        self.model_id = spec.model_id
        self.device = device
        self.quantization = quantization
        self.default_max_new_tokens = default_max_new_tokens
        self.default_timeout_s = default_timeout_s
        self.model, self.tokenizer = load_model(spec, device, quantization)
        config = self.model.config
        positions = getattr(config, "max_position_embeddings", None) or max_context_tokens
        self.max_context_tokens = min(max_context_tokens, int(positions))
        self.stop_ids = stop_token_ids(self.tokenizer, self.model.generation_config)
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.stop_ids[0] if self.stop_ids else 0
        self.vocab_size = int(getattr(config, "vocab_size", 0) or len(self.tokenizer))
        self._lock = threading.Lock()  # one forward pass at a time
        self._grammar_lock = threading.Lock()
        self._compiler = None
        self._grammars: dict[str, Any] = {}
        self._yes_no: tuple[list[int], list[int]] | None = None
        self.load_seconds = time.perf_counter() - start
        log.info(
            "generator %s loaded on %s (%s) in %.1f s",
            self.model_id,
            device,
            quantization,
            self.load_seconds,
        )

    # -- prompts -------------------------------------------------------------------------
    def _render(self, messages: Messages) -> list[int]:
        if self.tokenizer.chat_template:
            ids = self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=True, return_dict=False
            )
            if isinstance(ids, dict) or hasattr(ids, "keys"):
                ids = ids["input_ids"]
            return list(ids)
        # a model without a chat template (a base model): a plain transcript
        text = "".join(f"{m['role'].capitalize()}: {m['content']}\n" for m in messages)
        return self._encode(text + "Assistant:")

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def count_tokens(self, messages: Messages) -> int:
        """Prompt length in tokens after the chat template (for callers that budget)."""
        return len(self._render(messages))

    def _prompt_ids(self, messages: Messages, max_new_tokens: int) -> tuple[list[int], int, int]:
        """(prompt ids, tokens cut, max new tokens that still fit the context)."""
        reserve = min(max_new_tokens, self.max_context_tokens // 2)
        ids, cut, _ = fit_prompt(
            messages,
            self.max_context_tokens - reserve,
            self._render,
            self._encode,
            self._decode,
        )
        if cut:
            log.warning("prompt cut by %d tokens to fit the context", cut)
        return ids, cut, max(1, min(max_new_tokens, self.max_context_tokens - len(ids)))

    # -- grammar -------------------------------------------------------------------------
    def _compiled_grammar(self, schema: dict):
        import xgrammar as xgr

        key = schema_key(schema)
        with self._grammar_lock:
            if self._compiler is None:
                info = xgr.TokenizerInfo.from_huggingface(
                    self.tokenizer, vocab_size=self.vocab_size, stop_token_ids=self.stop_ids
                )
                self._compiler = xgr.GrammarCompiler(info)
            grammar = self._grammars.get(key)
            if grammar is None:
                start = time.perf_counter()
                try:
                    # compact JSON: fewer tokens, and no room for endless whitespace loops
                    grammar = self._compiler.compile_json_schema(key, any_whitespace=False)
                except Exception as exc:  # xgrammar raises RuntimeError/ValueError variants
                    raise GenerationError(f"the JSON schema cannot be compiled: {exc}") from exc
                self._grammars[key] = grammar
                log.info("JSON grammar compiled in %.2f s", time.perf_counter() - start)
            return grammar

    # -- generation ----------------------------------------------------------------------
    def _acquire(self, deadline: float, cancel: threading.Event | None) -> FinishReason | None:
        while not self._lock.acquire(timeout=0.1):
            if cancel is not None and cancel.is_set():
                return "cancelled"
            if time.monotonic() >= deadline:
                return "timeout"
        return None

    def _run(
        self,
        prompts: list[list[int]],
        max_new_tokens: int,
        deadline: float,
        cancel: threading.Event | None,
        on_progress: ProgressFn | None,
        logits_processor: Any = None,
        temperature: float = 0.0,
    ) -> tuple[list[list[int]], StopPolicy, float]:
        """Decode a micro-batch of prompts (left padded); the new ids of each, cut after its
        first stop token."""
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        policy = StopPolicy(max_new_tokens, deadline, cancel, on_progress)
        width = max(len(p) for p in prompts)

        class _Criteria(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                stop = policy.check(int(input_ids.shape[-1]) - width) is not None
                return torch.full(
                    (input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device
                )

        rows = [[self.pad_id] * (width - len(p)) + list(p) for p in prompts]
        mask = [[0] * (width - len(p)) + [1] * len(p) for p in prompts]
        input_ids = torch.tensor(rows, dtype=torch.long, device=self.model.device)
        attention_mask = torch.tensor(mask, dtype=torch.long, device=self.model.device)
        sampling: dict[str, Any] = {"do_sample": False, "temperature": None, "top_p": None}
        sampling["top_k"] = None
        if temperature > 0:
            sampling = {"do_sample": True, "temperature": temperature, "top_p": 0.95, "top_k": 0}
        start = time.monotonic()
        with torch.inference_mode():
            output = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                max_new_tokens=max_new_tokens,
                eos_token_id=self.stop_ids,
                pad_token_id=self.pad_id,
                stopping_criteria=StoppingCriteriaList([_Criteria()]),
                logits_processor=[logits_processor] if logits_processor is not None else None,
                **sampling,
            )
        policy.finish()
        stops = set(self.stop_ids)
        news = []
        for row in output[:, width:].tolist():
            end = next((i + 1 for i, t in enumerate(row) if t in stops), len(row))
            news.append(row[:end])
        return news, policy, start

    def _decode_rows(
        self,
        conversations: Sequence[Messages],
        wanted: int,
        json_schema: dict | None,
        deadline: float,
        cancel: threading.Event | None,
        on_progress: ProgressFn | None,
        temperature: float = 0.0,
    ) -> list[Generation] | FinishReason:
        """Decode the conversations together under the lock (and the grammar, if any); one
        Generation each, ``error`` set on a row whose JSON did not close. Returns the finish
        reason instead when the lock could not be had before the deadline or cancel."""
        processor = None
        if json_schema is not None:
            from xgrammar.contrib.hf import LogitsProcessor

            processor = LogitsProcessor(self._compiled_grammar(json_schema))
        blocked = self._acquire(deadline, cancel)
        if blocked is not None:
            return blocked
        try:
            fitted = [self._prompt_ids(m, wanted) for m in conversations]
            limit = min(f[2] for f in fitted)
            news, policy, start = self._run(
                [f[0] for f in fitted], limit, deadline, cancel, on_progress, processor, temperature
            )
        finally:
            self._lock.release()
        results = []
        for (prompt_ids, cut, _), new_ids in zip(fitted, news, strict=True):
            result = self._result(new_ids, policy, start, len(prompt_ids), cut, limit)
            if json_schema is not None:
                try:
                    result.data = json.loads(result.text)
                except ValueError:
                    result.error = (
                        f"the JSON output stopped unfinished ({result.finish_reason} after "
                        f"{result.new_tokens} tokens)"
                    )
            results.append(result)
        return results

    def generate(
        self,
        messages: Messages,
        max_new_tokens: int | None = None,
        json_schema: dict | None = None,
        timeout_s: float | None = None,
        cancel: threading.Event | None = None,
        on_progress: ProgressFn | None = None,
        temperature: float = 0.0,
    ) -> Generation:
        """Generate a reply to ``messages``. With ``json_schema`` the returned text parses as
        JSON (``Generation.data``) or GenerationError is raised."""
        called = time.monotonic()
        deadline = called + (timeout_s if timeout_s is not None else self.default_timeout_s)
        wanted = max_new_tokens or self.default_max_new_tokens
        if not messages:
            raise GenerationError("no messages to answer")
        if json_schema is not None and not _has_module("xgrammar"):
            return self._generate_json_fallback(
                messages, wanted, json_schema, deadline, cancel, on_progress, temperature
            )
        outcome = self._decode_rows(
            [messages], wanted, json_schema, deadline, cancel, on_progress, temperature
        )
        if isinstance(outcome, str):  # never got the lock
            if json_schema is not None:
                raise GenerationError(f"the generator was busy ({outcome} while waiting)")
            return Generation("", 0, 0, time.monotonic() - called, None, 0.0, outcome)
        (result,) = outcome
        if result.error is not None:
            raise GenerationError(f"{result.error}; raise max_new_tokens or the timeout")
        return result

    def generate_batch(
        self,
        conversations: Sequence[Messages],
        max_new_tokens: int | None = None,
        json_schema: dict | None = None,
        timeout_s: float | None = None,
        cancel: threading.Event | None = None,
        on_progress: ProgressFn | None = None,
    ) -> list[Generation]:
        """One micro-batch: the conversations decoded together (greedy), one Generation
        each. With ``json_schema`` every row is constrained by the same grammar; a row whose
        JSON did not close (token cap, deadline) comes back with ``error`` set and no
        ``data`` instead of raising, so one bad row does not cost the batch. Without
        xgrammar the rows run one by one through the repair fallback."""
        deadline = time.monotonic() + (
            timeout_s if timeout_s is not None else self.default_timeout_s
        )
        wanted = max_new_tokens or self.default_max_new_tokens
        if not conversations:
            return []
        if json_schema is not None and not _has_module("xgrammar"):
            results = []
            for messages in conversations:
                try:
                    results.append(
                        self._generate_json_fallback(
                            messages, wanted, json_schema, deadline, cancel, None, 0.0
                        )
                    )
                except GenerationError as exc:
                    results.append(Generation("", 0, 0, 0.0, None, 0.0, "eos", error=str(exc)))
            return results
        outcome = self._decode_rows(
            conversations, wanted, json_schema, deadline, cancel, on_progress
        )
        if isinstance(outcome, str):  # never got the lock
            return [
                Generation("", 0, 0, 0.0, None, 0.0, outcome, error=f"generator busy ({outcome})")
                for _ in conversations
            ]
        return outcome

    def _result(
        self,
        new_ids: list[int],
        policy: StopPolicy,
        start: float,
        prompt_tokens: int,
        cut: int,
        limit: int,
    ) -> Generation:
        end = time.monotonic()
        ended_on_stop = bool(new_ids) and new_ids[-1] in self.stop_ids
        if ended_on_stop:
            reason: FinishReason = "eos"
        elif policy.reason is not None:
            reason = policy.reason
        else:
            reason = "length" if len(new_ids) >= limit else "eos"
        ttft = None if policy.first_token_at is None else policy.first_token_at - start
        decode_s = end - policy.first_token_at if policy.first_token_at is not None else 0.0
        speed = (len(new_ids) - 1) / decode_s if decode_s > 0 and len(new_ids) > 1 else 0.0
        return Generation(
            text=self._decode(new_ids).strip(),
            prompt_tokens=prompt_tokens,
            new_tokens=len(new_ids),
            seconds=end - start,
            ttft_s=ttft,
            tokens_per_s=speed,
            finish_reason=reason,
            prompt_truncated_tokens=cut,
        )

    def _generate_json_fallback(
        self,
        messages: Messages,
        max_new_tokens: int,
        schema: dict,
        deadline: float,
        cancel: threading.Event | None,
        on_progress: ProgressFn | None,
        temperature: float,
    ) -> Generation:
        """No xgrammar: free text, extract the first JSON value, one repair retry."""
        log.warning("xgrammar is not installed: JSON output is extracted, not constrained")
        want = schema.get("type") if isinstance(schema.get("type"), str) else None
        conversation = messages
        for attempt in (1, 2):
            result = self.generate(
                conversation,
                max_new_tokens,
                None,
                max(0.0, deadline - time.monotonic()),
                cancel,
                on_progress,
                temperature,
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
            f"the model gave no valid JSON ({'; '.join(problems[:3])}, "
            f"finish: {result.finish_reason})"
        )

    # -- yes / no ------------------------------------------------------------------------
    def _yes_no_ids(self) -> tuple[list[int], list[int]]:
        if self._yes_no is None:
            yes = word_token_ids(self._encode, YES_WORDS)
            no = word_token_ids(self._encode, NO_WORDS)
            both = yes & no
            yes, no = yes - both, no - both
            if not yes or not no:
                raise ModelError(f"{self.model_id}: no single-token yes/true or no/false")
            self._yes_no = (sorted(yes), sorted(no))
        return self._yes_no

    def yes_probability(
        self, messages: Messages, answer_prefix: str = "", timeout_s: float | None = None
    ) -> float:
        """P(yes|true) / (P(yes|true) + P(no|false)) for the next token after the chat
        template's assistant header and ``answer_prefix`` (e.g. ``'{"answerable": '``)."""
        import torch

        called = time.monotonic()
        deadline = called + (timeout_s if timeout_s is not None else self.default_timeout_s)
        yes_ids, no_ids = self._yes_no_ids()
        if self._acquire(deadline, None) is not None:
            raise GenerationError("the generator was busy for the whole time budget")
        try:
            prompt_ids, _, _ = self._prompt_ids(messages, 8)
            if answer_prefix:
                prompt_ids = prompt_ids + self._encode(answer_prefix)
            input_ids = torch.tensor([prompt_ids], dtype=torch.long, device=self.model.device)
            with torch.inference_mode():
                logits = self.model(input_ids=input_ids, logits_to_keep=1).logits[0, -1]
            probs = torch.softmax(logits.float(), dim=-1)
            p_yes = float(probs[yes_ids].sum())
            p_no = float(probs[no_ids].sum())
        finally:
            self._lock.release()
        log.debug("yes/no mass %.3f (yes %.4f, no %.4f)", p_yes + p_no, p_yes, p_no)
        if p_yes + p_no <= 0:
            return 0.5
        return p_yes / (p_yes + p_no)


# --------------------------------------------------------------------------------------
# one generator per process
# --------------------------------------------------------------------------------------

_CACHE: dict[tuple[str, str, str, str], TransformersGenerator] = {}
_CACHE_LOCK = threading.Lock()


@dataclass
class _Plan:
    model: str
    device: str
    quantization: str
    models_dir: Path


def _plan(settings: Settings) -> _Plan:
    try:
        import torch
    except ImportError:
        raise ModelError(
            "the generator needs torch and transformers; install pip install "
            "'dirac-docs-mcp[generator]'"
        ) from None
    device = resolve_device(settings.generator_device, torch.cuda.is_available())
    quantization = resolve_quantization(settings.generator_quantization, device)
    return _Plan(settings.generator_model, device, quantization, settings.models_dir)


def load_generator(settings: Settings) -> TransformersGenerator:
    """The process's generator for these settings, loaded on first use (thread-safe)."""
    plan = _plan(settings)
    key = (plan.model, plan.quantization, plan.device, str(plan.models_dir))
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is not None:
            return cached
        if settings.generator_threads:
            import torch

            torch.set_num_threads(settings.generator_threads)
        spec = resolve_generator_model(plan.model, plan.models_dir)
        generator = TransformersGenerator(
            spec,
            device=plan.device,
            quantization=plan.quantization,
            max_context_tokens=settings.generator_max_context_tokens,
            default_max_new_tokens=settings.generator_max_new_tokens,
            default_timeout_s=settings.generator_timeout_s,
        )
        _CACHE[key] = generator
        return generator


def unload_generators() -> None:
    """Drop cached generators (tests, or a server reconfiguring)."""
    with _CACHE_LOCK:
        _CACHE.clear()
