import pytest
from django.db import connection

from clipcheck import vectors


@pytest.mark.pgvector
@pytest.mark.django_db
def test_probe():
    vectors.vector_backend_forget()
    print(connection.vendor, connection.settings_dict["NAME"], vectors.vector_backend())
    assert vectors.vector_backend().name == "pgvector"
