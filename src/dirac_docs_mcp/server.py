"""MCP wiring, kept thin: each tool adapts a plain function from ``tools/``.

Heavy parts (index, embedding model, generator) load on the first call that needs them,
in a worker thread, so the handshake and ``tools/list`` never wait for them.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError, ToolError
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field

from . import __version__
from .config import Settings
from .errors import DiracDocsError, NotFoundError
from .runtime import Runtime
from .schemas import IndexStatus, SearchResult
from .tools.documents import index_status, read_document
from .tools.search import format_hits, search_docs

log = logging.getLogger(__name__)
T = TypeVar("T")

INSTRUCTIONS = """\
Answers questions about DIRAC (the DIRACGrid interware: WMS, DMS, RMS, proxies, pilots,
DiracX, DIRACOS2) from an offline index of its documentation. Call search_dirac_docs
for passages with citations; cite their [n] and link. Read a whole document with the
dirac-docs://{path} resource. Say so when the passages do not contain the answer."""

SEARCH_DESCRIPTION = """\
Search the DIRAC documentation (admin/user/developer guides, DiracX, DIRACOS2, Pilot,
command help, configuration templates, papers) with hybrid keyword + semantic retrieval.
Use it for any DIRAC question before answering: configuration options and defaults,
commands and their switches, agents and services, how-tos. Exact option or command
names (e.g. 'MaxJobsInFillMode', 'dirac-proxy-init') match well. Returns ranked passages,
each with its source path, section breadcrumb, score and a dirac-docs:// link to cite."""


def _run_tool(fn: Callable[..., T], *args: Any, **kwargs: Any):
    """Run blocking work in a thread; our errors become tool errors with their message."""

    async def runner() -> T:
        try:
            return await anyio.to_thread.run_sync(lambda: fn(*args, **kwargs))
        except DiracDocsError as exc:
            raise ToolError(str(exc)) from None

    return runner()


def build_server(settings: Settings, runtime: Runtime | None = None) -> MCPServer:
    runtime = runtime or Runtime(settings)

    @asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[Runtime]:
        try:
            yield runtime
        finally:
            runtime.close()

    server = MCPServer(
        name="dirac-docs-mcp",
        title="DIRAC documentation assistant",
        instructions=INSTRUCTIONS,
        version=__version__,
        lifespan=lifespan,
        log_level=settings.log_level,
    )
    max_limit = settings.search_max_limit

    @server.tool(
        name="search_dirac_docs",
        title="Search DIRAC documentation",
        description=SEARCH_DESCRIPTION,
        annotations=ToolAnnotations(
            title="Search DIRAC documentation",
            read_only_hint=True,
            destructive_hint=False,
            idempotent_hint=True,
            open_world_hint=False,
        ),
    )
    async def search_dirac_docs(
        query: Annotated[
            str,
            Field(
                min_length=1,
                max_length=settings.max_query_chars,
                description="the question or keywords, e.g. 'how does the StalledJobAgent decide a job is stalled'",
            ),
        ],
        limit: Annotated[
            int, Field(ge=1, le=max_limit, description=f"number of passages (1-{max_limit})")
        ] = settings.search_default_limit,
        section: Annotated[
            str | None,
            Field(
                max_length=200,
                description="only passages whose section breadcrumb contains these words",
            ),
        ] = None,
        source_prefix: Annotated[
            str | None,
            Field(
                max_length=500,
                description="only documents under this path, e.g. 'DIRAC/docs/source/AdministratorGuide' or 'diracx'",
            ),
        ] = None,
    ) -> Annotated[CallToolResult, SearchResult]:
        result = await _run_tool(search_docs, runtime, query, limit, section, source_prefix)
        return CallToolResult(
            content=[TextContent(type="text", text=format_hits(result))],
            structured_content=result.model_dump(mode="json"),
        )

    @server.resource(
        "dirac-docs://{path}",
        name="dirac_document",
        title="DIRAC document",
        description="The full text of an indexed DIRAC document, by the path shown in search results",
        mime_type="text/plain",
    )
    async def dirac_document(path: str) -> str:
        try:
            text, _mime = await anyio.to_thread.run_sync(read_document, runtime, path)
        except NotFoundError as exc:
            raise ResourceNotFoundError(str(exc)) from None
        except DiracDocsError as exc:
            raise ResourceError(str(exc)) from None
        return text

    @server.resource(
        "dirac-docs-index://status",
        name="index_status",
        title="Index status",
        description="Where the index lives, its embedding model, and how many files and chunks it holds",
        mime_type="application/json",
    )
    async def index_status_resource() -> str:
        try:
            status: IndexStatus = await anyio.to_thread.run_sync(index_status, runtime)
        except DiracDocsError as exc:
            raise ResourceError(str(exc)) from None
        return status.model_dump_json(indent=1)

    @server.prompt(
        name="dirac_support",
        title="DIRAC support conversation",
        description="Frame a DIRAC support conversation: search the docs, answer from them, cite",
    )
    def dirac_support(question: str) -> str:
        return (
            "You are a DIRAC (DIRACGrid) support assistant. Answer only from the DIRAC "
            "documentation available through the search_dirac_docs tool.\n"
            "1. Call search_dirac_docs with the user's question (and again with exact option "
            "or command names you find).\n"
            "2. Answer briefly and concretely, citing passages as [n] with their source links.\n"
            "3. If the passages do not contain the answer, say that the documentation does not "
            "cover it; do not guess commands or option names.\n\n"
            f"User question: {question}"
        )

    return server


def run_server(settings: Settings, transport: str = "stdio", **http: Any) -> None:
    server = build_server(settings)
    if transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", **http)
