"""Fast inserts of many new rows: PostgreSQL's COPY, with ``bulk_create`` as the portable fallback (SQLite).

The ingest path spends most of its time in the ORM compiling multi-row INSERTs; COPY skips that work.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection, models


def _column(field: models.Field) -> str:
    if field.column is None:  # only a field with no database column has none: never a concrete one
        raise ValueError(f"{field} has no database column")
    return field.column


def bulk_insert(model: type[models.Model], objs: Sequence[models.Model], *, batch_size: int = 2000) -> None:
    """Insert ``objs`` (new instances, defaults already set by their constructors) in one statement stream.

    Unlike ``bulk_create`` the objects get no primary keys back. A unique violation raises Django's
    ``IntegrityError`` and, inside ``atomic()``, rolls the whole batch back, as ``bulk_create`` would.
    """
    if not objs:
        return
    if connection.vendor != "postgresql":
        model._default_manager.bulk_create(objs, batch_size=batch_size)
        return
    from psycopg.types.json import Jsonb

    meta = model._meta
    fields = [f for f in meta.concrete_fields if not (f.primary_key and isinstance(f, models.AutoField))]
    for field in fields:
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            raise ValueError(f"bulk_insert does not fill {meta.label}.{field.name} (auto_now)")
    json_columns = [isinstance(f, models.JSONField) for f in fields]
    attnames = [f.attname for f in fields]
    quote = connection.ops.quote_name
    sql = f"COPY {quote(meta.db_table)} ({', '.join(quote(_column(f)) for f in fields)}) FROM STDIN"
    connection.ensure_connection()
    with connection.wrap_database_errors, connection.connection.cursor() as cursor, cursor.copy(sql) as copy:
        for obj in objs:
            copy.write_row(
                [
                    Jsonb(value) if is_json and value is not None else value
                    for value, is_json in zip(
                        (getattr(obj, name) for name in attnames), json_columns, strict=True
                    )
                ]
            )


def insert_rows(model: type[models.Model], columns: Sequence[str], rows: Sequence[Sequence]) -> None:
    """Insert plain rows (values in ``columns`` order, attribute names; JSON columns already encoded as JSON
    text) without building model instances: one COPY on PostgreSQL, ``bulk_create`` elsewhere.

    Building a model instance costs more than writing its row; the ingest hot path hands rows straight over.
    """
    if not rows:
        return
    meta = model._meta
    if connection.vendor != "postgresql":
        import json

        json_columns = {f.attname for f in meta.concrete_fields if isinstance(f, models.JSONField)}
        objs = []
        for row in rows:
            values = dict(zip(columns, row, strict=True))
            for name in json_columns & values.keys():
                values[name] = json.loads(values[name]) if values[name] is not None else None
            objs.append(model(**values))
        model._default_manager.bulk_create(objs, batch_size=2000)
        return
    quote = connection.ops.quote_name
    column_of = {f.attname: _column(f) for f in meta.concrete_fields}
    db_columns = [column_of[name] for name in columns]
    sql = f"COPY {quote(meta.db_table)} ({', '.join(map(quote, db_columns))}) FROM STDIN"
    connection.ensure_connection()
    with connection.wrap_database_errors, connection.connection.cursor() as cursor, cursor.copy(sql) as copy:
        write = copy.write_row
        for row in rows:
            write(row)
