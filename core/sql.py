"""Query helpers for the hot paths that filter by many values at once.

``field__in=ids`` with a thousand ids writes a thousand placeholders: Django prepares each value and the
database driver parses the long statement in Python, which costs more than the server takes to run it (the
detectors ask it for every user of a batch, several times a batch). :class:`AnyOf` says the same with one
array parameter on PostgreSQL (``field = ANY(%s)``, which the server plans as it plans ``IN``), and falls back
to ``IN`` elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import BooleanField, Expression, F
from django.db.models.expressions import Combinable
from django.db.models.lookups import In
from django.db.models.sql.compiler import SQLCompiler


class AnyOf(Expression):
    """A filter: ``field`` is one of ``values`` (``.filter(AnyOf("mailbox_id", ids))``), as ``field__in``
    would say it."""

    conditional = True

    def __init__(self, field: str | Expression, values: Iterable[Any]) -> None:
        super().__init__(output_field=BooleanField())
        self.lhs: Any = F(field) if isinstance(field, str) else field
        self.values = list(values)

    def get_source_expressions(self) -> list[Any]:
        return [self.lhs]

    def set_source_expressions(self, exprs: Sequence[Combinable | Expression]) -> None:
        (self.lhs,) = exprs

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> tuple[str, Any]:
        if connection.vendor != "postgresql":
            return In(self.lhs, self.values).as_sql(compiler, connection)
        lhs, params = compiler.compile(self.lhs)
        field = self.lhs.output_field
        values = [field.get_db_prep_value(value, connection) for value in self.values]
        return f"{lhs} = ANY(%s::{field.db_type(connection)}[])", (*params, values)
