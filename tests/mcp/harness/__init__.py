"""Helpers shared by the MCP end-to-end tests: keys, tokens, catalogs, raw HTTP."""
