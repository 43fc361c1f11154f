from django.db import models


class ClipcheckPermissions(models.Model):
    """Carrier of clipcheck's own permissions; it has no table.

    The app stores nothing, but permissions need a content type. Granting
    ``clipcheck.run_batch_analysis`` to a user or group (admin, or
    ``user.user_permissions.add(...)``) lets them call /clip/analyze-batch,
    which reads files on the server.
    """

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [("run_batch_analysis", "Can run batch analysis on server-side files")]
        verbose_name = "clipcheck permission"
