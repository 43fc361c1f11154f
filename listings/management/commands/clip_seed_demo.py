"""manage.py clip_seed_demo: a demo catalogue of listings with pictures of the known-answer domain."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from listings.demo import demo_listings_create


class Command(BaseCommand):
    help = (
        "Create pending listings with pictures of the known-answer domain (a coloured shape each) to try the "
        "admin and the audit; manage.py clip_demo does it all with the known-answer model."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--count", type=int, default=100, help="Listings to create (default 100).")
        parser.add_argument("--seed", type=int, default=0, help="Random seed: the same seed, the same catalogue.")
        parser.add_argument(
            "--mismatch-share", type=float, default=0.2,
            help="Share of listings whose description names another colour or shape (default 0.2).",
        )

    def handle(self, *args: Any, count: int, seed: int, mismatch_share: float, **options: Any) -> None:
        if count < 1:
            raise CommandError("--count must be at least 1.")
        if not 0 <= mismatch_share <= 1:
            raise CommandError("--mismatch-share must be between 0 and 1.")
        listings = demo_listings_create(count=count, seed=seed, mismatch_share=mismatch_share)
        self.stdout.write(f"Created {len(listings)} listings (#{listings[0].pk} to #{listings[-1].pk}).")
