"""The similarity tests run on whatever database the run uses: SQLite or
PostgreSQL without pgvector (the numpy path), or, with ``--pgvector``, a
private PostgreSQL with pgvector (tests marked ``pgvector`` run only then)."""

import pytest

from clipcheck import vectors

# make_listing, split_threshold, everything_matches, moderator: tests/support/listing_fixtures.py


@pytest.fixture(autouse=True)
def listing_media(media_root):
    return media_root


@pytest.fixture(autouse=True)
def fresh_vector_backend():
    # Each test database is looked at anew (tables, indexes).
    vectors.vector_backend_forget()
    yield
    vectors.vector_backend_forget()


@pytest.fixture
def seller(django_user_model):
    from django.contrib.auth.models import Permission

    def make(name):
        user = django_user_model.objects.create_user(username=name)
        user.user_permissions.add(Permission.objects.get(content_type__app_label="listings", codename="add_listing"))
        return user

    return make
