"""Reads the AWS calls out of recorded exchanges (recproxy.Exchange): STS AssumeRole (request
parameters, and the credentials and assumed-role user of its answer) and Lambda Invoke (the
payload sent, the answer and Lambda's request id); and, for any exchange, the API operation it is
(`operation`: STS, Lambda, the JSON protocols such as ECS, S3's REST calls) and whether it is an
S3 request presigned by someone else rather than signed by the sender (`presigned`).

STS is read in the query protocol (form-encoded request, XML answer), which the AWS SDKs use for
STS; its JSON protocol (X-Amz-Target) is read too, so that an SDK update does not silently make
every AssumeRole invisible.
"""

from __future__ import annotations

import json
import re
import urllib.parse
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from .recproxy import Exchange

STS_JSON_TARGET = "AWSSecurityTokenServiceV20110615."
# S3's operations by method, for a request on an object (`/<bucket>/<key>`, path style) that does
# not name its operation in `x-id` (the Rust SDK does; a presigned URL may not).
S3_OBJECT_OPERATIONS = {"GET": "GetObject", "PUT": "PutObject", "DELETE": "DeleteObject", "HEAD": "HeadObject"}
INVOKE_PATH = re.compile(r"^/2015-03-31/functions/(?P<name>[^/?]+)/invocations(?:\?.*)?$")


@dataclass
class AssumeRole:
    """One AssumeRole on the wire."""

    exchange: Exchange
    params: dict[str, str]  # query protocol: every form field; JSON protocol: flattened likewise
    role_arn: str | None
    session_name: str | None
    source_identity: str | None
    duration_seconds: int | None
    policy: str | None
    tags: dict[str, str]
    # From the answer (None when STS refused):
    access_key_id: str | None
    secret_access_key: str | None
    session_token: str | None
    expiration: str | None
    assumed_role_arn: str | None

    @property
    def succeeded(self) -> bool:
        return self.exchange.status == 200 and self.access_key_id is not None


@dataclass
class Invoke:
    """One Lambda Invoke on the wire."""

    exchange: Exchange
    function: str  # as the path names it (a name or an ARN), decoded
    payload: dict | None  # the request body as JSON (None when it is not JSON)
    request_id: str | None  # x-amzn-RequestId of the answer
    function_error: str | None  # X-Amz-Function-Error of the answer
    answer: dict | None  # the response body as JSON

    @property
    def function_name(self) -> str:
        """The bare function name, also when the path names an ARN (with or without qualifier)."""
        if self.function.startswith("arn:"):
            parts = self.function.split(":")
            return parts[6] if len(parts) > 6 else parts[-1]
        return self.function.split(":")[0]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _xml_fields(body: bytes) -> dict[str, str]:
    """Leaf elements of an XML document by path of local names (`Credentials/AccessKeyId`)."""
    out: dict[str, str] = {}
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return out

    def walk(element: ET.Element, path: str) -> None:
        children = list(element)
        if not children:
            out[path] = (element.text or "").strip()
        for child in children:
            walk(child, f"{path}/{_local(child.tag)}" if path else _local(child.tag))

    for child in root:
        walk(child, _local(child.tag))
    return out


def _flatten(value, prefix: str, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(v, f"{prefix}.{k}" if prefix else k, out)
    elif isinstance(value, list):
        for i, v in enumerate(value, 1):
            _flatten(v, f"{prefix}.member.{i}", out)
    else:
        out[prefix] = str(value)


def sts_action(exchange: Exchange) -> str | None:
    """The STS (or other query-protocol) action of a request, when it has one."""
    target = exchange.request_header("X-Amz-Target") or ""
    if target.startswith(STS_JSON_TARGET):
        return target[len(STS_JSON_TARGET) :]
    if exchange.method != "POST" or INVOKE_PATH.match(exchange.path):
        return None
    try:
        form = dict(urllib.parse.parse_qsl(exchange.request_body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        return None
    return form.get("Action")


def _params(exchange: Exchange) -> dict[str, str]:
    target = exchange.request_header("X-Amz-Target") or ""
    if target.startswith(STS_JSON_TARGET):
        params: dict[str, str] = {}
        _flatten(json.loads(exchange.request_body or b"{}"), "", params)
        return params
    return dict(urllib.parse.parse_qsl(exchange.request_body.decode("utf-8"), keep_blank_values=True))


def _answer_fields(exchange: Exchange) -> dict[str, str]:
    body = exchange.response_body.strip()
    if body.startswith(b"{"):
        fields: dict[str, str] = {}
        try:
            doc = json.loads(body)
        except ValueError:
            return fields
        _flatten(doc.get("AssumeRoleResult", doc), "", fields)
        return fields
    fields = _xml_fields(body)
    # Query protocol: everything sits under AssumeRoleResult/.
    return {k.removeprefix("AssumeRoleResult/"): v for k, v in fields.items()}


def _tags(params: dict[str, str]) -> dict[str, str]:
    tags: dict[str, str] = {}
    n = 1
    while f"Tags.member.{n}.Key" in params:
        tags[params[f"Tags.member.{n}.Key"]] = params.get(f"Tags.member.{n}.Value", "")
        n += 1
    return tags


def assume_role(exchange: Exchange) -> AssumeRole:
    params = _params(exchange)
    answer = _answer_fields(exchange)

    def pick(*names: str) -> str | None:
        for name in names:
            if name in answer:
                return answer[name]
        return None

    duration = params.get("DurationSeconds")
    return AssumeRole(
        exchange=exchange,
        params=params,
        role_arn=params.get("RoleArn"),
        session_name=params.get("RoleSessionName"),
        source_identity=params.get("SourceIdentity"),
        duration_seconds=int(duration) if duration is not None else None,
        policy=params.get("Policy"),
        tags=_tags(params),
        access_key_id=pick("Credentials/AccessKeyId", "Credentials.AccessKeyId"),
        secret_access_key=pick("Credentials/SecretAccessKey", "Credentials.SecretAccessKey"),
        session_token=pick("Credentials/SessionToken", "Credentials.SessionToken"),
        expiration=pick("Credentials/Expiration", "Credentials.Expiration"),
        assumed_role_arn=pick("AssumedRoleUser/Arn", "AssumedRoleUser.Arn"),
    )


def assume_roles(exchanges: list[Exchange]) -> list[AssumeRole]:
    return [assume_role(e) for e in exchanges if sts_action(e) == "AssumeRole"]


def _json(body: bytes) -> dict | None:
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def invokes(exchanges: list[Exchange]) -> list[Invoke]:
    out = []
    for e in exchanges:
        m = INVOKE_PATH.match(e.path)
        if e.method != "POST" or not m:
            continue
        out.append(
            Invoke(
                exchange=e,
                function=urllib.parse.unquote(m.group("name")),
                payload=_json(e.request_body),
                request_id=e.response_header("x-amzn-RequestId"),
                function_error=e.response_header("X-Amz-Function-Error"),
                answer=_json(e.response_body),
            )
        )
    return out


def _split(exchange: Exchange) -> tuple[str, dict[str, str]]:
    parts = urllib.parse.urlsplit(exchange.path)
    return parts.path, dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))


def s3_object(exchange: Exchange) -> tuple[str, str] | None:
    """(bucket, key) of a path-style S3 request on an object, None for anything else."""
    if exchange.request_header("X-Amz-Target") or INVOKE_PATH.match(exchange.path):
        return None
    path, _ = _split(exchange)
    bucket, _, key = path.lstrip("/").partition("/")
    if not bucket or not key:
        return None
    return bucket, urllib.parse.unquote(key)


def presigned(exchange: Exchange) -> bool:
    """A request authorized by a presigned URL's query (SigV4 `X-Amz-Signature`), not by its own
    Authorization header: in the Fargate suite, the task's fetch of its invocation and store of
    its result."""
    _, query = _split(exchange)
    return "X-Amz-Signature" in query and not exchange.request_header("Authorization")


def operation(exchange: Exchange) -> str:
    """The AWS API operation of a request, from what the wire carries: the X-Amz-Target of a JSON
    protocol (STS's, ECS's `AmazonEC2ContainerServiceV20141113.RunTask`: the part after the last
    dot), Lambda's Invoke path, a query-protocol Action (STS), S3's `x-id` or the method on an
    object path. Anything else is `<METHOD> <path>`, so that an unexpected request shows as what
    it is."""
    target = exchange.request_header("X-Amz-Target")
    if target:
        return target.rsplit(".", 1)[-1]
    if exchange.method == "POST" and INVOKE_PATH.match(exchange.path):
        return "Invoke"
    action = sts_action(exchange)
    if action:
        return action
    path, query = _split(exchange)
    if query.get("x-id"):
        return query["x-id"]
    if s3_object(exchange) is not None and exchange.method in S3_OBJECT_OPERATIONS:
        return S3_OBJECT_OPERATIONS[exchange.method]
    return f"{exchange.method} {path}"
