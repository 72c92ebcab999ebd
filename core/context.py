"""The current request's id, so audit rows written deep in services name the request that caused them."""

from contextvars import ContextVar

current_request_id: ContextVar[str] = ContextVar("current_request_id", default="")
