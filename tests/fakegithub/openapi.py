"""Check recorded requests against GitHub's own OpenAPI description of its REST API.

The fake GitHub answers whatever we ask; this makes sure what we ask exists on the real
GitHub: the method and path template, the path and query parameters, and the JSON body
against the operation's request schema. The 13 MB description is loaded and indexed
once per process (`load_spec`).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from jsonschema import Draft4Validator
from jsonschema.exceptions import best_match

from .server import GHES_PREFIX, RecordedRequest

SPEC_PATH = (
    Path(__file__).resolve().parents[2]
    / "node_modules/@octokit/openapi/generated/api.github.com.json"
)
GRAPHQL_PATHS = ("/graphql", "/api/graphql")
# Path parameters that may span several segments (a file path in the contents API).
MULTI_SEGMENT_PARAMS = {"path"}


def _openapi_to_jsonschema(node: Any) -> Any:
    """OpenAPI 3.0's `nullable: true` as plain JSON Schema (type or anyOf with null)."""
    if isinstance(node, list):
        return [_openapi_to_jsonschema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _openapi_to_jsonschema(value) for key, value in node.items()}
    if converted.pop("nullable", False) is not True:
        return converted
    if "enum" in converted and None not in converted["enum"]:
        converted["enum"] = [*converted["enum"], None]
    kind = converted.get("type")
    if isinstance(kind, str):
        converted["type"] = [kind, "null"]
        return converted
    return {"anyOf": [converted, {"type": "null"}]}


@dataclass
class Operation:
    template: str
    method: str
    parameters: list[dict[str, Any]]
    body_schema: dict[str, Any] | None
    body_required: bool
    validator: Draft4Validator | None = None


class OpenAPISpec:
    """An index of the description's operations, and the checks run on each request."""

    def __init__(self, spec: dict[str, Any]) -> None:
        components = spec.get("components", {})
        self._components = {
            kind: _openapi_to_jsonschema(components.get(kind, {}))
            for kind in ("schemas", "parameters", "requestBodies")
        }
        self._paths: list[tuple[re.Pattern[str], int, str, dict[str, Operation]]] = []
        for template, item in spec["paths"].items():
            shared = item.get("parameters", [])
            operations: dict[str, Operation] = {}
            for method, op in item.items():
                if method == "parameters":
                    continue
                params = [self._deref(p) for p in [*shared, *op.get("parameters", [])]]
                body = self._deref(op.get("requestBody", {})) if "requestBody" in op else None
                schema = None
                if body is not None:
                    content = body.get("content", {})
                    media: dict[str, Any] = content.get("application/json") or next(
                        iter(content.values()), {}
                    )
                    schema = _openapi_to_jsonschema(media.get("schema"))
                operations[method.upper()] = Operation(
                    template, method.upper(), params, schema, bool(body and body.get("required"))
                )
            literal = sum(1 for seg in template.split("/") if seg and not seg.startswith("{"))
            self._paths.append((self._compile(template), literal, template, operations))
        self._paths.sort(key=lambda entry: -entry[1])

    def _deref(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            ref = node["$ref"]
            assert ref.startswith("#/components/"), ref
            target: Any = self._components
            for part in ref.removeprefix("#/components/").split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = target
        return node

    @staticmethod
    def _compile(template: str) -> re.Pattern[str]:
        pattern = ""
        for part in re.split(r"(\{[^}]+\})", template):
            if part.startswith("{"):
                name = part[1:-1]
                body = ".+" if name in MULTI_SEGMENT_PARAMS else "[^/]+"
                pattern += f"(?P<{name.replace('-', '_')}>{body})"
            else:
                pattern += re.escape(part)
        return re.compile(pattern + "$")

    def _validator(self, op: Operation) -> Draft4Validator:
        if op.validator is None:
            # The wrapper holds the components so that "#/components/..." refs resolve.
            schema = {"allOf": [op.body_schema], "components": self._components}
            op.validator = Draft4Validator(schema)
        return op.validator

    def violations(
        self, method: str, path: str, query: dict[str, list[str]], body: Any
    ) -> list[str]:
        """What is wrong with one request (empty when it is a valid GitHub request)."""
        path = path.removeprefix(GHES_PREFIX) if path.startswith(GHES_PREFIX + "/") else path
        if path in GRAPHQL_PATHS:
            if (
                method != "POST"
                or not isinstance(body, dict)
                or not isinstance(body.get("query"), str)
            ):
                return ["GraphQL requests must be POST with a JSON body holding a `query` string"]
            return []
        candidates = [
            (match, ops) for pattern, _, _, ops in self._paths if (match := pattern.match(path))
        ]
        if not candidates:
            return [f"no such path in GitHub's REST API: {path}"]
        found = next(((m, ops[method]) for m, ops in candidates if method in ops), None)
        if found is None:
            template = next(iter(candidates[0][1].values())).template
            return [f"method {method} not allowed on {template}"]
        match, op = found
        problems: list[str] = []
        path_values = {name: unquote(value) for name, value in match.groupdict().items()}
        for param in op.parameters:
            name, where = param["name"], param["in"]
            if where == "path":
                value = path_values.get(name.replace("-", "_"))
                if value is not None:
                    problems += self._check_value(param, [value], f"path parameter {name}")
            elif where == "query":
                if name in query:
                    problems += self._check_value(param, query[name], f"query parameter {name}")
                elif param.get("required"):
                    problems.append(f"missing required query parameter {name}")
        known = {p["name"] for p in op.parameters if p["in"] == "query"}
        problems += [f"unknown query parameter {name}" for name in query if name not in known]
        problems += self._check_body(op, body)
        return [f"{method} {path} ({op.template}): {p}" for p in problems]

    def _check_value(self, param: dict[str, Any], values: list[str], what: str) -> list[str]:
        schema = _openapi_to_jsonschema(param.get("schema", {}))
        kind = schema.get("type")
        if kind != "array" and len(values) > 1:
            return [f"{what} given {len(values)} times"]
        if kind == "array":
            candidate: Any = values
        else:
            candidate = _coerce(values[0], kind)
            if candidate is _INVALID:
                return [f"{what}={values[0]!r} is not a valid {kind}"]
        error = best_match(Draft4Validator(schema).iter_errors(candidate))
        return [f"{what}={values[0]!r}: {error.message}"] if error else []

    def _check_body(self, op: Operation, body: Any) -> list[str]:
        if body is None:
            return ["a JSON body is required"] if op.body_required else []
        if op.body_schema is None:
            return ["this operation takes no request body"]
        error = best_match(self._validator(op).iter_errors(body))
        if error is None:
            return []
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        return [f"body at {where}: {error.message}"]

    def check(self, requests: Iterable[RecordedRequest]) -> list[str]:
        """Violations of every recorded request, each named once."""
        seen: dict[str, None] = {}
        for request in requests:
            for problem in self.violations(
                request.method, request.path, request.query, request.body
            ):
                seen.setdefault(problem)
        return list(seen)


_INVALID = object()


def _coerce(value: str, kind: Any) -> Any:
    if kind == "integer":
        try:
            return int(value)
        except ValueError:
            return _INVALID
    if kind == "number":
        try:
            return float(value)
        except ValueError:
            return _INVALID
    if kind == "boolean":
        return {"true": True, "false": False}.get(value, _INVALID)
    return value


@functools.lru_cache(maxsize=1)
def load_spec(path: Path = SPEC_PATH) -> OpenAPISpec:
    """GitHub's REST description, parsed and indexed once per process."""
    with path.open(encoding="utf-8") as fh:
        return OpenAPISpec(json.load(fh))
