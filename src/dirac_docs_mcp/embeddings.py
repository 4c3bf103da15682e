"""Dense and keyword (BM25) encoders behind small interfaces.

Dense: fastembed ONNX (default) or transformers on torch for a model folder without an ONNX
file. Keyword: fastembed's BM25 sparse vectors (Qdrant applies IDF at query time).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

from .errors import ModelError
from .hardware import cpu_has_fast_bf16
from .models.embedding import EmbeddingModelSpec, tokenizer_path, write_bm25_dir
from .stopwords import ENGLISH_STOPWORDS

log = logging.getLogger(__name__)

SparseVector = tuple[list[int], list[float]]


class DenseEncoder(Protocol):
    spec: EmbeddingModelSpec

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]: ...

    def embed_query(self, text: str) -> list[float]: ...


class TokenCounter:
    """Counts tokens with the embedding model's own tokenizer (fast, Rust)."""

    def __init__(self, spec: EmbeddingModelSpec):
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(tokenizer_path(spec)))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()

    def __call__(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def split(self, text: str, max_tokens: int, overlap: int) -> list[str]:
        """Cut ``text`` into pieces of at most ``max_tokens`` tokens, consecutive pieces
        sharing ``overlap`` tokens; cuts fall on token boundaries of the original text."""
        offsets = self._tokenizer.encode(text, add_special_tokens=False).offsets
        if len(offsets) <= max_tokens:
            return [text]
        step = max(max_tokens - overlap, 1)
        pieces = []
        for start in range(0, len(offsets), step):
            end = min(start + max_tokens, len(offsets))
            pieces.append(text[offsets[start][0] : offsets[end - 1][1]])
            if end == len(offsets):
                break
        return pieces


class OnnxDenseEncoder:
    """fastembed over a local ONNX folder: mean pooling + L2 normalisation."""

    _registered: set[str] = set()
    MODEL_FILE = "model.onnx"  # what a model folder holds (built-in, int8 copy of a tuned one)

    def __init__(
        self,
        spec: EmbeddingModelSpec,
        batch_size: int = 32,
        threads: int | None = None,
        spinning: bool = True,
    ):
        """``spinning=False`` where another thread pool shares the process (a torch second
        dense model): see :func:`_stop_spinning`."""
        from fastembed import TextEmbedding
        from fastembed.common.model_description import ModelSource, PoolingType

        self.spec = spec
        self.batch_size = batch_size
        name = "dirac-docs-mcp/" + spec.model_id
        if name not in self._registered:
            try:
                TextEmbedding.add_custom_model(
                    name,
                    pooling=PoolingType.MEAN,
                    normalization=True,
                    sources=ModelSource(hf="local/none"),
                    dim=spec.dim,
                    model_file=self.MODEL_FILE,
                )
            except ValueError:
                pass  # registered by an earlier instance in this process
            self._registered.add(name)
        try:
            self._model = TextEmbedding(
                name, specific_model_path=str(spec.path), threads=threads, local_files_only=True
            )
        except Exception as exc:  # onnxruntime raises many types
            raise ModelError(f"could not load ONNX model from {spec.path}: {exc}") from exc
        self._model.model.tokenizer.enable_truncation(max_length=spec.max_tokens)
        self.spinning = spinning or _stop_spinning(self._model, spec.path / self.MODEL_FILE)

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        prefixed = [self.spec.document_prefix + t for t in texts]
        return [v.tolist() for v in self._model.embed(prefixed, batch_size=self.batch_size)]

    def embed_query(self, text: str) -> list[float]:
        return next(iter(self._model.embed([self.spec.query_prefix + text]))).tolist()


def _stop_spinning(embedding: object, model_file: Path) -> bool:
    """Rebuild fastembed's onnxruntime session so that its idle threads sleep instead of
    spinning; returns whether they may still spin (fastembed's layout not recognised).

    onnxruntime's threads spin-wait for a while after each run. Beside another thread pool
    (torch, for the second dense model) on a 2-core CPU they take the cores the next model
    needs. Measured on a 2-core AMD EPYC (AVX512-BF16, no AMX), dev questions: EmbeddingGemma's
    query took 119 ms right after a MiniLM query against 88 ms alone, 89 ms with spinning
    off; stdio search p50 146 -> 110-116 ms (two alternating runs each). Alone, MiniLM gains
    from spinning (stdio search p50 15 ms with it, 17-20 ms without), so it is turned off
    only beside a second model. fastembed does not expose the option, hence the rebuilt
    session."""
    import onnxruntime as ort  # fastembed's own dependency, loaded with it

    inner = getattr(embedding, "model", None)
    session = getattr(inner, "model", None)
    if not isinstance(session, ort.InferenceSession):
        log.warning("fastembed's onnxruntime session not found: its threads may spin")
        return True
    options = session.get_session_options()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    try:
        rebuilt = ort.InferenceSession(
            str(model_file), sess_options=options, providers=session.get_providers()
        )
    except Exception as exc:  # the loaded session still works: slower beside torch, not wrong
        log.warning("could not rebuild %s without spinning threads: %s", model_file, exc)
        return True
    inner.model = rebuilt
    return False


class TorchDenseEncoder:
    """transformers AutoModel with mean pooling; bf16 on CPUs that support it."""

    def __init__(self, spec: EmbeddingModelSpec, batch_size: int = 32, threads: int | None = None):
        try:
            import torch
            from transformers import AutoModel, AutoTokenizer
        except ImportError as exc:
            raise ModelError(f"the torch backend needs torch and transformers: {exc}") from exc
        if threads:
            torch.set_num_threads(threads)
        self.spec = spec
        self.batch_size = batch_size
        self._torch = torch
        self._tokenizer = AutoTokenizer.from_pretrained(str(spec.path), local_files_only=True)
        self._model = AutoModel.from_pretrained(str(spec.path), local_files_only=True).eval()

    def _encode(self, texts: Sequence[str]) -> list[list[float]]:
        torch = self._torch
        out: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = self._tokenizer(
                list(texts[start : start + self.batch_size]),
                padding=True,
                truncation=True,
                max_length=self.spec.max_tokens,
                return_tensors="pt",
            )
            with torch.inference_mode():
                hidden = self._model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.extend(torch.nn.functional.normalize(pooled, dim=-1).float().tolist())
        return out

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        return self._encode([self.spec.document_prefix + t for t in texts])

    def embed_query(self, text: str) -> list[float]:
        return self._encode([self.spec.query_prefix + text])[0]


class SentenceTransformerEncoder:
    """A sentence-transformers folder on torch (the optional second dense model).

    Uses the folder's own query/document prompts (EmbeddingGemma's ``task: search result |
    query:`` and ``title: none | text:``) through ``encode_query``/``encode_document``.
    ``dtype`` auto: bf16 on CUDA and on CPUs with native bf16 (AVX512-BF16/AMX, where it is
    about 3x faster than fp32), else fp32."""

    def __init__(
        self,
        spec: EmbeddingModelSpec,
        batch_size: int = 16,
        threads: int | None = None,
        dtype: str = "auto",
    ):
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ModelError(
                "the second dense model needs sentence-transformers and torch: "
                f"pip install 'dirac-docs-mcp[dense2]' ({exc})"
            ) from exc
        if threads:
            torch.set_num_threads(threads)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        if dtype == "auto":
            dtype = "bf16" if device == "cuda" or cpu_has_fast_bf16(torch) else "fp32"
        torch_dtype = torch.bfloat16 if dtype == "bf16" else torch.float32
        self.batch_size = batch_size
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "Loading weights" bars on stderr
        try:
            self._model = SentenceTransformer(
                str(spec.path),
                device=device,
                local_files_only=True,
                trust_remote_code=False,
                model_kwargs={"dtype": torch_dtype},
            )
        except Exception as exc:
            raise ModelError(
                f"could not load sentence-transformers model from {spec.path}: {exc}"
            ) from exc
        limit = self._model.max_seq_length or spec.max_tokens
        self._model.max_seq_length = min(limit, spec.max_tokens)
        model = self._model
        dimension = (
            model.get_embedding_dimension
            if hasattr(model, "get_embedding_dimension")
            else model.get_sentence_embedding_dimension
        )
        self.dim = int(dimension() or 0)
        self.spec = spec

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        vectors = self._model.encode_document(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=False,
        )  # fmt: skip
        return vectors.astype("float32").tolist()

    def embed_query(self, text: str) -> list[float]:
        vector = self._model.encode_query(
            [text], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )[0]
        return vector.astype("float32").tolist()


def load_dense_encoder(
    spec: EmbeddingModelSpec,
    batch_size: int = 32,
    threads: int | None = None,
    beside_torch: bool = False,
) -> DenseEncoder:
    """``beside_torch``: a torch model (the second dense model) runs in the same process,
    so an ONNX encoder's idle threads must not spin on the cores it needs."""
    log.info("loading dense encoder %s (%s) from %s", spec.model_id, spec.backend, spec.path)
    if spec.backend == "sentence-transformers":  # a tuned retriever without its int8 copy
        return SentenceTransformerEncoder(spec, batch_size=batch_size, threads=threads)
    if spec.backend == "onnx":
        return OnnxDenseEncoder(spec, batch_size, threads, spinning=not beside_torch)
    return TorchDenseEncoder(spec, batch_size=batch_size, threads=threads)


class Bm25Encoder:
    """BM25 term weights as sparse vectors; IDF is applied by Qdrant (Modifier.IDF)."""

    def __init__(self, models_dir, avg_len: float = 150.0):
        from fastembed import SparseTextEmbedding

        self._model = SparseTextEmbedding(
            "Qdrant/bm25",
            specific_model_path=str(write_bm25_dir(models_dir)),
            stopwords=ENGLISH_STOPWORDS,
            avg_len=avg_len,
            local_files_only=True,
        )

    @staticmethod
    def _pair(embedding) -> SparseVector:
        return embedding.indices.tolist(), embedding.values.tolist()

    def embed_documents(self, texts: Iterable[str]) -> list[SparseVector]:
        return [self._pair(e) for e in self._model.embed(list(texts))]

    def embed_query(self, text: str) -> SparseVector:
        return self._pair(next(iter(self._model.query_embed(text))))


class Encoders:
    """Lazily loaded, process-wide encoders (thread-safe first load)."""

    def __init__(
        self,
        spec: EmbeddingModelSpec,
        models_dir,
        batch_size: int = 32,
        threads=None,
        dense2_spec: EmbeddingModelSpec | None = None,
        dense2_dtype: str = "auto",
    ):
        self.spec = spec
        self.dense2_spec = dense2_spec
        self._dense2_dtype = dense2_dtype
        self._models_dir = models_dir
        self._batch_size = batch_size
        self._threads = threads
        self._lock = threading.Lock()
        self._loaded: dict[str, object] = {}

    def _once(self, key: str, factory):
        """Load a model on first use; concurrent first calls wait for one load."""
        value = self._loaded.get(key)
        if value is None:
            with self._lock:
                value = self._loaded.get(key)
                if value is None:
                    value = self._loaded[key] = factory()
        return value

    @property
    def dense(self) -> DenseEncoder:
        return self._once(
            "dense",
            lambda: load_dense_encoder(
                self.spec,
                self._batch_size,
                self._threads,
                beside_torch=self.dense2_spec is not None,
            ),
        )

    @property
    def dense2(self) -> SentenceTransformerEncoder | None:
        """The optional second dense model (None when not configured)."""
        spec = self.dense2_spec
        if spec is None:
            return None
        return self._once(
            "dense2",
            lambda: SentenceTransformerEncoder(
                spec, min(self._batch_size, 16), self._threads, self._dense2_dtype
            ),
        )

    @property
    def sparse(self) -> Bm25Encoder:
        return self._once("sparse", lambda: Bm25Encoder(self._models_dir))

    @property
    def count_tokens(self) -> TokenCounter:
        return self._once("tokens", lambda: TokenCounter(self.spec))
