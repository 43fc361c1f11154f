from django.apps import AppConfig


class ListingsConfig(AppConfig):
    name = "listings"
    verbose_name = "Listings"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from clipcheck.metrics import register_collector
        from listings import checks  # noqa: F401  (registers the system checks)
        from listings import similarity, verdicts  # noqa: F401  (register their reason types)
        from listings.appeals import appeal_queue_stats
        from listings.metrics import ReviewQueueCollector
        from listings.review import review_queue_stats

        register_collector(ReviewQueueCollector(stats=review_queue_stats, appeal_stats=appeal_queue_stats))
