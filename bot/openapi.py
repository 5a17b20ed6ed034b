"""Checks requests and responses against an OpenAPI 3.0 description.

Used by the stand-ins (the Cloudflare simulator, the GitHub stand-in) to hold what they serve
to the published contracts. Schemas are checked with OpenAPI 3.0 semantics (``nullable``,
``readOnly``, formats) by ``openapi-schema-validator``; each problem becomes one line of text.

    contract = Contract(spec)
    op, params = contract.find("GET", "/repos/o/r/commits/abc/status")
    problems = contract.check_response(op, 200, payload)
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from jsonschema.exceptions import ValidationError
from openapi_schema_validator import (
    OAS30ReadValidator,
    OAS30Validator,
    OAS30WriteValidator,
    oas30_format_checker,
)

METHODS = ("get", "post", "put", "patch", "delete")
MAX_ERRORS = 5
ANY: dict[str, Any] = {}  # shared "no schema"; never mutated


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    regex: re.Pattern[str]
    spec: dict[str, Any]


class Contract:
    """Finds the operation for a request and reports how a request or response breaks it."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.components = spec["components"]
        self.operations: list[Operation] = []
        for template, item in spec["paths"].items():
            pattern = re.escape(template)
            for name in re.findall(r"\{(\w+)\}", template):
                # GitHub marks a path parameter that spans segments (a file's path)
                span = ".+" if name in _multi_segment(self, item, name) else "[^/]+"
                pattern = pattern.replace(re.escape("{" + name + "}"), f"(?P<{name}>{span})")
            for method in METHODS:
                if method in item:
                    self.operations.append(
                        Operation(
                            method.upper(), template, re.compile(f"^{pattern}$"), item[method]
                        )
                    )
        self._validators: dict[tuple[int, str], Any] = {}

    def find(self, method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
        for op in self.operations:
            if op.method == method.upper():
                found = op.regex.match(path)
                if found:
                    return op, found.groupdict()
        return None

    # -- schema plumbing ---------------------------------------------------------------------

    def _resolve(self, node: Any) -> Any:
        while isinstance(node, dict) and "$ref" in node:
            parts = node["$ref"].removeprefix("#/").split("/")
            node = self.spec
            for part in parts:
                node = node[part]
        return node

    def _errors(self, schema: dict[str, Any], value: Any, *, mode: str) -> list[str]:
        """Problems of ``value``; ``mode`` is "read" (responses: readOnly allowed), "write"
        (request bodies: readOnly refused) or "param" (a parameter: neither applies)."""
        # keyed by identity: every schema checked lives in the loaded spec for good
        key = (id(schema), mode)
        validator = self._validators.get(key)
        if validator is None:
            # the components ride along so "#/components/..." references resolve
            wrapped = {"allOf": [schema], "components": self.components}
            kind = {"read": OAS30ReadValidator, "write": OAS30WriteValidator}.get(
                mode, OAS30Validator
            )
            validator = kind(wrapped, format_checker=oas30_format_checker)
            self._validators[key] = validator
        found = []
        for error in validator.iter_errors(value):
            for leaf in _leaves(error):
                where = ".".join(str(p) for p in leaf.absolute_path) or "(root)"
                found.append(f"{leaf.message[:300]} at {where}")
                if len(found) == MAX_ERRORS:
                    return found
        return found

    # -- requests ----------------------------------------------------------------------------

    def check_request(
        self,
        op: Operation,
        path_params: Mapping[str, str],
        query: Iterable[tuple[str, str]],
        headers: Mapping[str, str],
        body: bytes,
    ) -> list[str]:
        where = f"{op.method} {op.template} request"
        problems: list[str] = []
        declared = {}
        for raw in op.spec.get("parameters", []):
            param = self._resolve(raw)
            declared[(param["in"], param["name"])] = param
        for (place, name), param in declared.items():
            if place == "path" and name in path_params:
                schema = self._resolve(param.get("schema", ANY))
                value = _coerce(path_params[name], schema)
                for e in self._errors(schema, value, mode="param"):
                    problems.append(f"{where}: path parameter {name}: {e}")
        given = list(query)
        for name, value in given:
            param = declared.get(("query", name))
            if param is None:
                problems.append(f"{where}: query parameter {name} is not in the contract")
                continue
            schema = self._resolve(param.get("schema", ANY))
            for e in self._errors(schema, _coerce(value, schema), mode="param"):
                problems.append(f"{where}: query parameter {name}: {e}")
        names = {name for name, _ in given}
        for (place, name), param in declared.items():
            if place == "query" and param.get("required") and name not in names:
                problems.append(f"{where}: required query parameter {name} is missing")
        problems += self._check_credentials(op, headers, where)
        problems += self._check_request_body(op, headers, body, where)
        return problems

    def _check_credentials(
        self, op: Operation, headers: Mapping[str, str], where: str
    ) -> list[str]:
        schemes = op.spec.get("security", self.spec.get("security", []))
        if not schemes:
            return []
        auth = headers.get("authorization", "")
        for requirement in schemes:
            if "api_token" in requirement and auth.lower().startswith("bearer "):
                return []
            if "api_key" in requirement and headers.get("x-auth-key"):
                return []
        return [f"{where}: no credentials the operation accepts (Bearer token expected)"]

    def _check_request_body(
        self, op: Operation, headers: Mapping[str, str], body: bytes, where: str
    ) -> list[str]:
        declared = self._resolve(op.spec.get("requestBody"))
        if not declared:
            return [f"{where}: the operation takes no body"] if body.strip() else []
        if not body.strip():
            return [f"{where}: the body is required"] if declared.get("required") else []
        media = declared.get("content", {}).get("application/json")
        if media is None:
            return []  # multipart uploads are not checked here
        kind = headers.get("content-type", "").split(";")[0].strip()
        if kind != "application/json":
            return [f"{where}: content type is {kind or 'missing'}, not application/json"]
        try:
            value = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return [f"{where}: the body is not valid JSON"]
        schema = self._resolve(media.get("schema", ANY))
        return [f"{where}: body: {e}" for e in self._errors(schema, value, mode="write")]

    # -- responses ---------------------------------------------------------------------------

    def check_response(self, op: Operation, status: int, payload: Any) -> list[str]:
        where = f"{op.method} {op.template} response {status}"
        responses = op.spec.get("responses", {})
        declared = (
            responses.get(str(status))
            or responses.get(f"{status // 100}XX")
            or responses.get("default")
        )
        if declared is None:
            return [f"{where}: status {status} is not in the contract"]
        declared = self._resolve(declared)
        media = declared.get("content", {}).get("application/json")
        if media is None:
            return []
        schema = self._resolve(media.get("schema", ANY))
        if status >= 400:
            schema = self._failure_part(schema)
        return [f"{where}: {e}" for e in self._errors(schema, payload, mode="read")]

    def _failure_part(self, schema: dict[str, Any]) -> dict[str, Any]:
        """For 4XX the official file combines the success schema (``success: true``) and the
        failure envelope (``success: false``) in one ``allOf``, which nothing can satisfy.
        The failure envelope alone is what Cloudflare sends, so only that part is checked."""
        parts = schema.get("allOf")
        if isinstance(parts, list):
            for part in parts:
                if isinstance(part, dict) and part.get("$ref", "").endswith("-failure"):
                    return part
        return schema


def _multi_segment(contract: Contract, item: dict[str, Any], name: str) -> set[str]:
    """``{name}`` when some operation of ``item`` declares that path parameter with
    ``x-multi-segment: true`` (it may hold slashes), else the empty set."""
    for method in METHODS:
        for raw in item.get(method, {}).get("parameters", []):
            param = contract._resolve(raw)
            same = param.get("in") == "path" and param.get("name") == name
            if same and param.get("x-multi-segment"):
                return {name}
    return set()


def _leaves(error: ValidationError) -> Iterator[ValidationError]:
    """The specific failures under a ``oneOf``/``anyOf`` ("is not valid under any of the
    given schemas" says nothing about what to fix)."""
    if error.context:
        for sub in error.context:
            yield from _leaves(sub)
    else:
        yield error


def _coerce(value: str, schema: dict[str, Any]) -> Any:
    """Query strings as the schema's type, so ``force=true`` checks as a boolean."""
    kind = schema.get("type")
    try:
        if kind == "boolean" and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if kind == "integer":
            return int(value)
        if kind == "number":
            return float(value)
    except ValueError:
        return value
    return value
