"""The transformers back-end of :class:`~.base.Generator`.

- Weights come from :mod:`dirac_docs_mcp.models.llm` (a Hugging Face folder on disk, never
  a hub); device and quantization as chosen in :mod:`.quantize` (NF4 on CUDA, int8/bf16 on
  CPU).
- Prompts go through the tokenizer's chat template; over-long prompts are cut in the middle
  of their longest message (:func:`.decoding.fit_prompt`); decoding is greedy and stops at
  EOS / end-of-turn, at ``max_new_tokens``, at a wall-clock deadline or a cancel event.
- ``json_schema``: the two paths of :mod:`.json_output` (xgrammar, or the repair fallback).
- ``yes_probability``: the renormalised probability of a yes/true next token vs no/false,
  the abstention signal (the answer tool's ``answer_min_p_answerable`` gate).
- ``generator_adapter``: a peft LoRA made by ``tune generator``, refused unless its manifest
  names the installed base's sha256; merged into the weights once at load (before CPU int8),
  so it costs nothing per token; kept as a separate LoRA only on a bitsandbytes-quantized
  base (NF4/int8 on CUDA), where merging would round the update into 4/8 bits.

torch/transformers are imported lazily: the package imports without the generator extras.
Logging goes to stderr through :mod:`logging`; nothing here writes to stdout.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import GenerationError, ModelError
from ..models.files import sha256_file
from ..models.llm import GeneratorModelSpec, resolve_generator_model, stop_token_ids
from ..models.tuned import check_adapter_base, resolve_tuned
from .base import FinishReason, Generation, Messages, ProgressFn
from .decoding import NO_WORDS, YES_WORDS, StopPolicy, fit_prompt, word_token_ids
from .json_output import GrammarCache, generate_json_fallback, parse_constrained
from .quantize import quantize_int8_dynamic, resolve_device, resolve_quantization

if TYPE_CHECKING:
    from ..config import Settings

log = logging.getLogger(__name__)


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def apply_adapter(model, folder: Path, merge: bool):
    """``model`` with the peft LoRA adapter in ``folder``; merged into its weights (a plain
    model again) with ``merge``. The same code merges for serving and for ``tune export``,
    so both give the same weights."""
    try:
        from peft import PeftModel
    except ImportError:
        raise ModelError(
            "a generator adapter needs peft; install it with pip install 'dirac-docs-mcp[tune]'"
        ) from None
    try:
        with warnings.catch_warnings():  # peft 0.21 calls a transformers 5 deprecated name
            warnings.simplefilter("ignore", FutureWarning)
            tuned = PeftModel.from_pretrained(model, str(folder))
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelError(f"cannot load the adapter in {folder}: {exc}") from exc
    return tuned.merge_and_unload() if merge else tuned


def load_model(
    spec: GeneratorModelSpec, device: str, quantization: str, adapter: Path | None = None
):
    """Load the model and tokenizer on ``device`` in ``quantization`` mode, with the LoRA
    ``adapter`` (a checked folder, see :func:`resolve_adapter`) applied."""
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
    if adapter is not None:
        # merged before CPU int8 (dynamic int8 layers take no LoRA); left separate on a
        # bitsandbytes base, whose 4/8-bit weights would round the update away
        model = apply_adapter(model, adapter, merge="quantization_config" not in kwargs)
    if quantization == "int8" and device == "cpu":
        model = quantize_int8_dynamic(model)
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
        adapter: Path | None = None,
        model_id: str | None = None,
        loaded: tuple[Any, Any] | None = None,
    ):
        """``adapter``: a LoRA folder already checked against ``spec`` (see
        :func:`resolve_adapter`), ``model_id`` then names base + adapter. ``loaded``: a
        (model, tokenizer) already in memory, used as is (``tune generator`` evaluates the
        model it is training through the serving decoding path)."""
        start = time.perf_counter()
        self.spec = spec
        self.model_id = model_id or spec.model_id
        self.adapter = adapter
        self.device = device
        self.quantization = quantization
        self.default_max_new_tokens = default_max_new_tokens
        self.default_timeout_s = default_timeout_s
        if loaded is not None:
            self.model, self.tokenizer = loaded
        else:
            self.model, self.tokenizer = load_model(spec, device, quantization, adapter)
        config = self.model.config
        positions = getattr(config, "max_position_embeddings", None) or max_context_tokens
        self.max_context_tokens = min(max_context_tokens, int(positions))
        self.stop_ids = stop_token_ids(self.tokenizer, self.model.generation_config)
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.stop_ids[0] if self.stop_ids else 0
        self.vocab_size = int(getattr(config, "vocab_size", 0) or len(self.tokenizer))
        self._lock = threading.Lock()  # one forward pass at a time
        self._grammar_cache = GrammarCache(self.tokenizer, self.vocab_size, self.stop_ids)
        self._grammars = self._grammar_cache.grammars  # compiled grammars by schema_key
        self._yes_no: tuple[list[int], list[int]] | None = None
        # (token ids, key/value cache of them) of the last single-prompt generation
        self._prompt_cache: tuple[list[int], Any] | None = None
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
    ) -> tuple[list[list[int]], StopPolicy, float]:
        """Decode a micro-batch of prompts (left padded); the new ids of each, cut after its
        first stop token. A single prompt's key/value cache is kept (see
        :meth:`continuation_logprobs`)."""
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
        greedy = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        self._prompt_cache = None
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
                return_dict_in_generate=True,
                **greedy,
            )
        policy.finish()
        cache = getattr(output, "past_key_values", None)
        if len(prompts) == 1 and cache is not None and hasattr(cache, "crop"):
            # scoring the reply right after (the answer tool's context PMI) then reads only
            # the reply's tokens instead of the whole prompt again (~1,500 tokens, 2-4 s)
            self._prompt_cache = (list(prompts[0]), cache)
        stops = set(self.stop_ids)
        news = []
        for row in output.sequences[:, width:].tolist():
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
    ) -> list[Generation] | FinishReason:
        """Decode the conversations together under the lock (and the grammar, if any); one
        Generation each, ``error`` set on a row whose JSON did not close. Returns the finish
        reason instead when the lock could not be had before the deadline or cancel."""
        processor = None
        if json_schema is not None:
            processor = self._grammar_cache.logits_processor(json_schema)
        blocked = self._acquire(deadline, cancel)
        if blocked is not None:
            return blocked
        try:
            fitted = [self._prompt_ids(m, wanted) for m in conversations]
            limit = min(f[2] for f in fitted)
            news, policy, start = self._run(
                [f[0] for f in fitted], limit, deadline, cancel, on_progress, processor
            )
        finally:
            self._lock.release()
        results = []
        for (prompt_ids, cut, _), new_ids in zip(fitted, news, strict=True):
            result = self._result(new_ids, policy, start, len(prompt_ids), cut, limit)
            if json_schema is not None:
                parse_constrained(result)
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
    ) -> Generation:
        """Generate a reply to ``messages``. With ``json_schema`` the returned text parses as
        JSON (``Generation.data``) or GenerationError is raised."""
        called = time.monotonic()
        deadline = called + (timeout_s if timeout_s is not None else self.default_timeout_s)
        wanted = max_new_tokens or self.default_max_new_tokens
        if not messages:
            raise GenerationError("no messages to answer")
        if json_schema is not None and not _has_module("xgrammar"):
            return generate_json_fallback(
                self.generate, messages, wanted, json_schema, deadline, cancel, on_progress
            )
        outcome = self._decode_rows([messages], wanted, json_schema, deadline, cancel, on_progress)
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
                        generate_json_fallback(
                            self.generate, messages, wanted, json_schema, deadline, cancel, None
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

    # -- scoring a given reply -------------------------------------------------------------
    def continuation_logprobs(
        self,
        messages: Messages,
        continuation: str,
        prefix: str = "",
        timeout_s: float | None = None,
    ) -> list[float]:
        """Natural-log probability of each token of ``continuation`` as the assistant's
        reply to ``messages``, after ``prefix`` (read as reply text, not scored). One forward
        pass, no decoding: the model's own confidence in a text it or another wrote. When
        ``messages`` are those of the last single generation, the prompt is not read again:
        its key/value cache from that generation is cut back to the prompt and reused."""
        import torch

        called = time.monotonic()
        deadline = called + (timeout_s if timeout_s is not None else self.default_timeout_s)
        target = self._encode(continuation)
        if not target:
            return []
        if self._acquire(deadline, None) is not None:
            raise GenerationError("the generator was busy for the whole time budget")
        try:
            prompt_ids, _, _ = self._prompt_ids(messages, len(target) + 8)
            if prefix:
                prompt_ids = prompt_ids + self._encode(prefix)
            full = prompt_ids + target
            # logits at position i predict token i + 1: the last len(target) + 1 are needed,
            # so at least that many tokens go through the model
            reuse, cache = 0, None
            if self._prompt_cache is not None:
                cached_ids, cached = self._prompt_cache
                same = 0
                for a, b in zip(cached_ids, full[: len(full) - len(target) - 1], strict=False):
                    if a != b:
                        break
                    same += 1
                if same:
                    # a negative crop removes that many tokens from the end (transformers
                    # 4.x and 5.x alike; 5.x refuses the older "keep this many" form)
                    extra = cached.get_seq_length() - same
                    if extra > 0:
                        cached.crop(-extra)
                    reuse, cache = same, cached
            ids = torch.tensor([full[reuse:]], dtype=torch.long, device=self.model.device)
            with torch.inference_mode():
                logits = self.model(
                    input_ids=ids,
                    past_key_values=cache,
                    use_cache=cache is not None,
                    logits_to_keep=len(target) + 1,
                ).logits[0]
            if cache is not None:
                # the cache now also holds this reply; a later call crops it again, but a
                # prefix shorter than the cached prompt can no longer grow back
                self._prompt_cache = (full[: cache.get_seq_length()], cache)
            logprobs = torch.log_softmax(logits[:-1].float(), dim=-1)
            chosen = logprobs.gather(1, torch.tensor(target, device=logprobs.device)[:, None])
        finally:
            self._lock.release()
        return [float(x) for x in chosen[:, 0]]


# --------------------------------------------------------------------------------------
# building one from settings, and a cache of them
# --------------------------------------------------------------------------------------

GeneratorKey = tuple[str, str, str, str, str]


def generator_key(settings: Settings) -> GeneratorKey:
    """What makes two generators the same: model, adapter, quantization, device, models
    folder."""
    try:
        import torch
    except ImportError:
        raise ModelError(
            "the generator needs torch and transformers; install pip install "
            "'dirac-docs-mcp[generator]'"
        ) from None
    device = resolve_device(settings.generator_device, torch.cuda.is_available())
    quantization = resolve_quantization(settings.generator_quantization, device)
    adapter = settings.generator_adapter or ""
    return (settings.generator_model, adapter, quantization, device, str(settings.models_dir))


def resolve_adapter(value: str, spec: GeneratorModelSpec, models_dir: Path) -> tuple[Path, str]:
    """(folder, model id of base + adapter) for the ``generator_adapter`` setting, after
    checking that the adapter was trained on ``spec``'s weights (ModelError otherwise)."""
    folder = resolve_tuned(value, models_dir, "adapter")
    if folder is None:
        raise ModelError(
            f"generator_adapter '{value}' names no tuned adapter: give tuned:<name> (see "
            f"{models_dir / 'tuned' / 'adapter'}) or the folder of one, with its manifest.json"
        )
    manifest = check_adapter_base(folder, spec.path, spec.model_id)
    weights = folder / "adapter_model.safetensors"
    if not weights.is_file():
        raise ModelError(f"{folder} has a manifest but no adapter_model.safetensors")
    return folder, f"{spec.model_id}+lora:{manifest.name}:{sha256_file(weights)[:12]}"


def build_generator(settings: Settings, key: GeneratorKey | None = None) -> TransformersGenerator:
    """A new generator for these settings (resolving, converting and loading the weights)."""
    model, adapter, quantization, device, models_dir = key or generator_key(settings)
    if settings.generator_threads:
        import torch

        torch.set_num_threads(settings.generator_threads)
    spec = resolve_generator_model(model, Path(models_dir))
    adapter_dir, model_id = None, None
    if adapter:
        adapter_dir, model_id = resolve_adapter(adapter, spec, Path(models_dir))
    return TransformersGenerator(
        spec,
        device=device,
        quantization=quantization,
        max_context_tokens=settings.generator_max_context_tokens,
        default_max_new_tokens=settings.generator_max_new_tokens,
        default_timeout_s=settings.generator_timeout_s,
        adapter=adapter_dir,
        model_id=model_id,
    )


class GeneratorCache:
    """Generators by :func:`generator_key`, each loaded on first use (thread-safe).
    ``Runtime`` holds one and clears it on close."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generators: dict[GeneratorKey, TransformersGenerator] = {}

    def get(self, settings: Settings) -> TransformersGenerator:
        key = generator_key(settings)
        with self._lock:
            generator = self._generators.get(key)
            if generator is None:
                generator = self._generators[key] = build_generator(settings, key)
            return generator

    def clear(self) -> None:
        with self._lock:
            self._generators.clear()


_SCRIPTS = GeneratorCache()


def load_generator(settings: Settings) -> TransformersGenerator:
    """One generator per settings for scripts and tests that run without a ``Runtime``;
    the product gets its generators from ``Runtime.generator()``."""
    return _SCRIPTS.get(settings)


def unload_generators() -> None:
    """Drop the generators :func:`load_generator` holds."""
    _SCRIPTS.clear()
