"""Prepares one run of the MCP suite: keys, a JWKS, a catalog, free ports, and run.json.

    python -m harness.setup --out DIR --bin TARGET_DIR

run.sh starts the gateway with DIR/catalog.yaml; the tests read DIR/run.json.
"""

from __future__ import annotations

from pathlib import Path

from switchboard_harness import jwtkit
from switchboard_harness.catalog import ISSUER, echo_tool, setup_arguments, write_run
from switchboard_harness.gateway import free_port


def state_validate_tool(bin_dir: Path, tenant_root: Path) -> dict:
    """The reference tool `state_validate` on the repository's example tenants, as the day-one
    catalog declares it."""
    return {
        "name": "state_validate",
        "description": "Checks a Terraform state of the caller's tenant against review rules.",
        "input_schema": {
            "type": "object",
            "properties": {"state": {"type": "string", "minLength": 1, "maxLength": 1024}},
            "required": ["state"],
            "additionalProperties": False,
        },
        "backend": "local",
        "local": {
            "command": [str(bin_dir / "switchboard-tool"), "state_validate"],
            "tenant_root": str(tenant_root),
        },
        "timeout_seconds": 20,
        "memory_mb": 256,
        "ephemeral_storage_mb": 16,
        "allow": {"groups": ["dev"]},
    }


NO_ARGS = {"type": "object", "properties": {}, "additionalProperties": False}

# The input schema the conformance suite's json-schema-2020-12 scenario expects to find, keyword
# for keyword, in the tool listing (JSON Schema 2020-12: $schema, $defs with an $anchor, a local
# $ref, allOf/anyOf, if/then/else, additionalProperties).
SCHEMA_2020_12 = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "$anchor": "addressDef",
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {
        "name": {"type": "string"},
        "address": {"$ref": "#/$defs/address"},
        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
        "phone": {"type": "string"},
        "email": {"type": "string"},
    },
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}

# A tool whose arguments are mirrored into Mcp-Param-* headers (SEP-2243, 2026-07-28).
SCHEMA_HEADERS = {
    "type": "object",
    "properties": {
        "region": {"type": "string", "x-mcp-header": "Region"},
        "query": {"type": "string"},
    },
    "required": ["region"],
}


def conformance_tools(here: Path) -> list[dict]:
    """The tools the conformance suite calls by name, for group `conformance` only, each a
    real local tool (fixtures/conformance-tool in a sandbox)."""
    script = str(here / "fixtures" / "conformance-tool")

    def tool(name: str, mode: str, description: str, schema: dict | None = None) -> dict:
        return {
            "name": name,
            "description": description,
            "input_schema": schema or NO_ARGS,
            "backend": "local",
            "local": {"command": [script, mode]},
            "timeout_seconds": 20,
            "memory_mb": 128,
            "ephemeral_storage_mb": 4,
            "allow": {"groups": ["conformance"]},
        }

    slow = tool("slow", "slow", "Reports progress once, then runs for 30 s (cancellation tests).")
    slow["timeout_seconds"] = 60
    slow["allow"] = {"groups": ["dev"]}
    return [
        slow,
        tool("test_simple_text", "simple_text", "Returns a simple text response."),
        tool("test_error_handling", "error", "Always fails (isError: true)."),
        tool("test_tool_with_progress", "progress", "Reports progress 0, 50 and 100 (of 100), ~50 ms apart."),
        tool("test_image_content", "image", "Returns a 1x1 PNG image."),
        tool("test_audio_content", "audio", "Returns a short WAV clip."),
        tool("test_embedded_resource", "embedded_resource", "Returns an embedded text resource."),
        tool("test_multiple_content_types", "mixed", "Returns text, an image and an embedded resource."),
        tool("json_schema_2020_12_tool", "ok", "Tool with JSON Schema 2020-12 features", SCHEMA_2020_12),
        tool("test_custom_headers", "ok", "Tool whose region argument travels as Mcp-Param-Region", SCHEMA_HEADERS),
    ]


def main() -> None:
    out, bin_dir = setup_arguments()
    jwtkit.generate(out / "keys")

    port = free_port()
    proxy_port = free_port()
    base = f"http://127.0.0.1:{port}"
    public_url = f"{base}/mcp"
    # `echo` for group dev; `echo-other` for group other, so that a caller of group other has a
    # tool it may use (a caller who may use none is refused with 403 before MCP) but not `echo`.
    tools = [echo_tool(bin_dir), echo_tool(bin_dir, "echo-other", ("other",))]
    here = Path(__file__).resolve().parent.parent
    tools.append(state_validate_tool(bin_dir, here.parent.parent / "examples" / "tenants"))
    tools += conformance_tools(here)
    catalog = {
        "version": 1,
        "gateway": {
            "public_url": public_url,
            # The conformance suite reaches the gateway through harness.authproxy (it cannot send
            # a token itself); browsers there would send the proxy's origin.
            "allowed_origins": [f"http://127.0.0.1:{proxy_port}", f"http://localhost:{proxy_port}"],
            "auth": {
                "issuer": ISSUER,
                "jwks": {"file": "keys/jwks.json"},
                "algorithms": ["RS256", "ES256", "EdDSA"],
                "groups_claim": "groups",
                "tenant_claim": "tenant",
            },
            "limits": {"max_body_bytes": 1048576, "max_json_depth": 64},
        },
        "tools": tools,
    }
    run = {
        "base": base,
        "mcp": public_url,
        "listen": f"127.0.0.1:{port}",
        "issuer": ISSUER,
        "keys": str(out / "keys"),
        "proxy_port": proxy_port,
    }
    write_run(out, catalog, run)


if __name__ == "__main__":
    main()
