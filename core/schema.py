"""OpenAPI description of the API token authentication (drf-spectacular finds it once imported)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.openapi import AutoSchema
from rest_framework.request import Request


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "core.authentication.ApiTokenAuthentication"
    name = "ApiToken"

    def get_security_definition(self, auto_schema: AutoSchema) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token created by an administrator (API tokens page), bound to a tenant.",
        }


_ERROR = {
    "description": "",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorDetail"}}},
}
_ERRORS = {
    "400": "Invalid parameters or body: the fields at fault are named",
    "401": "No credentials, or an invalid or revoked token",
    "403": "Authenticated, but the role or the token's scope or tenant does not allow it",
    "404": "No such object (or not visible to this caller), or a page past the last",
}


def document_error_responses(
    result: dict, generator: SchemaGenerator, request: Request | None, public: bool
) -> dict:
    """Postprocessing hook: the error answers every operation can give, declared where they apply (a 400
    where there are parameters or a body, a 404 where the path names an object), as ``{"detail": …}`` or
    ``{field: [messages]}``."""
    result.setdefault("components", {}).setdefault("schemas", {})["ErrorDetail"] = {
        "type": "object",
        "properties": {"detail": {"type": "string"}},
        "additionalProperties": True,
    }
    for path, methods in result.get("paths", {}).items():
        for operation in methods.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            codes = ["401", "403"]
            if operation.get("parameters") or operation.get("requestBody"):
                codes.append("400")
            names = {p.get("name") for p in operation.get("parameters", [])}
            if "{" in path or "page" in names:  # an object that is not there, a page past the last
                codes.append("404")
            ok = operation["responses"].get("200", {}).get("content", {})
            for code in codes:
                response = operation["responses"].setdefault(code, {**_ERROR, "description": _ERRORS[code]})
                if "text/plain" in ok:  # a text format (CEF) answers its errors as text too
                    response["content"] = {
                        **response.get("content", {}),
                        "text/plain": {"schema": {"type": "string"}},
                    }
    return result
