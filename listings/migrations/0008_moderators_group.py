"""The ``Moderators`` group: exactly the permissions the review workbench needs.

Give a moderator account ``is_staff`` (to reach the admin) and this group.
See docs/moderation.md.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUP_NAME = "Moderators"
PERMISSIONS = [
    ("listings", "view_listing"),
    ("listings", "moderate_listing"),
    ("listings", "view_moderationdecision"),
    ("listings", "view_listingcheckfailure"),
]


def create_group(apps, schema_editor):
    # Permissions are normally created after migrate (post_migrate); a
    # fresh database needs them now.
    app_config = apps.get_app_config("listings")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0, using=schema_editor.connection.alias)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.using(schema_editor.connection.alias).get_or_create(name=GROUP_NAME)
    permissions = [
        Permission.objects.using(schema_editor.connection.alias).get(
            content_type__app_label=app_label, codename=codename
        )
        for app_label, codename in PERMISSIONS
    ]
    group.permissions.set(permissions)


def delete_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.using(schema_editor.connection.alias).filter(name=GROUP_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("listings", "0007_review_workbench"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_group, delete_group)]
