"""``dirac-docs-mcp tune``: fine-tuning on the corpus, one module per thing tuned.

- :mod:`.retriever`: the dense retrieval model on (question, chunk) pairs (issue 15);
- :mod:`.generator`: a LoRA adapter of the answer model on RAFT records (issue 18).

What they make is kept by :mod:`dirac_docs_mcp.models.tuned` (one folder per artifact with
its manifest). Nothing here knows of MCP.
"""
