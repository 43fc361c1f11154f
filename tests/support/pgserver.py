"""The vector tests' private PostgreSQL with pgvector: the benchmark's (bench.pgserver), never a copy."""

from bench.pgserver import PgvectorServer, pgvector_server_start

__all__ = ["PgvectorServer", "pgvector_server_start"]
