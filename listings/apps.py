from django.apps import AppConfig


class ListingsConfig(AppConfig):
    name = "listings"
    verbose_name = "Listings"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from clipcheck.metrics import register_collector

        # Imported for what they register: the system checks, the reason types.
        from listings import checks, similarity, verdicts  # noqa: F401
        from listings.appeals import appeal_queue_stats
        from listings.metrics import ReviewQueueCollector
        from listings.review import review_queue_stats

        register_collector(ReviewQueueCollector(stats=review_queue_stats, appeal_stats=appeal_queue_stats))
