"""dirac-docs-mcp: an offline DIRAC documentation assistant served over MCP."""

__version__ = "0.1.0"
