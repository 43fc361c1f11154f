"""Users and tokens for API tests."""

from django.contrib.auth.models import Permission, User
from rest_framework.authtoken.models import Token


def user_with_token(username="client", *, permissions=()):
    """A user holding ``permissions`` ("app_label.codename") and its API token key."""
    user = User.objects.create_user(username=username)  # no password: tokens only, no hashing cost
    for name in permissions:
        app_label, codename = name.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return user, Token.objects.create(user=user).key


def moderators_group():
    """The Moderators group as its migration creates it (transactional tests flush migration data)."""
    import importlib

    from django.contrib.auth.models import Group

    migration = importlib.import_module("listings.migrations.0008_moderators_group")
    group, _ = Group.objects.get_or_create(name=migration.GROUP_NAME)
    group.permissions.set([
        Permission.objects.get(content_type__app_label=app_label, codename=codename)
        for app_label, codename in migration.PERMISSIONS
    ])
    return group
