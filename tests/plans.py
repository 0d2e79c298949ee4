"""What the database plans to do with a query: the tests that say a read goes through an index."""

from django.db import connection


def plan(query) -> str:
    """The database's plan for `query` (a queryset, or SQL as run), one line."""
    sql, params = (query, []) if isinstance(query, str) else query.query.sql_with_params()
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
            return " | ".join(row[-1] for row in cursor.fetchall())
        # The tables here are tiny: ask whether an index plan exists, as it would be chosen at scale.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        return " | ".join(row[0].strip() for row in cursor.fetchall())
