"""manage.py clip_demo: the five-minute offline demo in one command.

Migrates the database, seeds the demo catalogue, audits it with the
known-answer model (committed in the repository: no download) so the review
queue has work in it, creates a moderator, a superuser and a seller with an
API token, prints how to use them, and serves.
"""

import shlex
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.test.utils import override_settings

import knownanswer
from clipcheck.engine import get_engine
from clipcheck.errors import ModelUnavailable
from clipcheck.services.adaptations import adaptation_active
from clipcheck.settings import clip_settings
from clipcheck.watchdog import StallWatchdog
from knownanswer import domain
from listings import demo
from listings.audit import local, records
from listings.settings import listings_settings

# One host in everything the demo prints and serves, and in the docs.
HOST = "127.0.0.1"
# Where the sample photo of the printed upload command is written (under MEDIA_ROOT).
SAMPLE_DIRECTORY = "demo-sample"
# The storefront page docs/demo.md serves to try CORS.
CORS_EXAMPLE_ORIGIN = f"http://{HOST}:5500"


def port_number(value: str) -> int:
    port = int(value)
    if not 1 <= port <= 65535:
        raise ValueError(value)
    return port


class Command(BaseCommand):
    help = (
        "The offline demo: migrate, seed the demo catalogue, audit it with the known-answer model, "
        "create a demo moderator, superuser and seller (with an API token) and start the server."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=port_number, default=8000, help=f"Port on {HOST} (default 8000).")
        parser.add_argument("--no-serve", action="store_true", help="Prepare everything, print the URLs, don't serve.")
        parser.add_argument(
            "--count", type=int, default=100,
            help="Listings to seed when the database has no demo listings yet (default 100).",
        )
        parser.add_argument("--seed", type=int, default=0, help="Random seed of the catalogue (default 0).")
        parser.add_argument(
            "--reset-credentials", action="store_true",
            help="New passwords for the demo accounts and a new token for the seller "
                 "(by default a rerun keeps them).",
        )

    def handle(
        self, *args: Any, port: int, no_serve: bool, count: int, seed: int, reset_credentials: bool, **options: Any
    ) -> None:
        if count < 1:
            raise CommandError("--count must be at least 1.")
        threshold = knownanswer.calibrated_threshold()
        demo_clipcheck = {
            **clip_settings.user_settings,
            "MODEL": str(knownanswer.CHECKPOINT),
            "THRESHOLD": threshold,
            # The prompt wording the known-answer model learnt.
            "PROMPT_TEMPLATE": "a photo of a {}",
            # The categories it knows (the demo listings' categories are shapes), on their own scale.
            "CATEGORIES": list(domain.SHAPES),
            "CLASSIFY_THRESHOLD": knownanswer.SHAPE_PROMPT_THRESHOLD,
        }
        # The demo's settings hold for this process only: the audit here and
        # the server started below.
        # SETTINGS_MODULE: runserver names it in its banner.
        with override_settings(CLIPCHECK=demo_clipcheck, SETTINGS_MODULE=settings.SETTINGS_MODULE):
            self.stdout.write(f"Model: {knownanswer.CHECKPOINT} (known-answer CLIP), threshold {threshold}.")
            self.prepare(count=count, seed=seed, port=port, reset_credentials=reset_credentials)
            if no_serve:
                return
            self.stdout.write(f"Starting the server on {HOST}:{port} (Ctrl-C stops it).")
            call_command("runserver", f"{HOST}:{port}", use_reloader=False)

    def adapt(self) -> None:
        """Learn the category adaptation from the demo catalogue's categories (once per model)."""
        if adaptation_active() is not None:
            self.stdout.write("Category adaptation: already active, kept.")
            return
        try:
            call_command("clip_adapt", "--apply", "--no-progress", "--by", "clip_demo", stdout=self.stdout)
        except CommandError as exc:  # the demo goes on with the zero-shot prompts
            self.stdout.write(f"Category adaptation not promoted: {exc}")

    def prepare(self, *, count: int, seed: int, port: int, reset_credentials: bool) -> None:
        if clip_settings.BATCH_ROOT:
            Path(clip_settings.BATCH_ROOT).mkdir(parents=True, exist_ok=True)
        call_command("migrate", interactive=False, verbosity=0)
        self.stdout.write("Database migrated.")

        existing = demo.demo_catalogue_score()
        if existing.mismatches + existing.correct:
            self.stdout.write(
                f"Demo catalogue already seeded ({existing.mismatches + existing.correct} listings): reusing it."
            )
        else:
            created = demo.demo_listings_create(count=count, seed=seed)
            self.stdout.write(f"Seeded {len(created)} demo listings.")

        # The demo's audit is watched as clip_audit's is (LISTINGS["AUDIT_STALL_SECONDS"]).
        with StallWatchdog(listings_settings.AUDIT_STALL_SECONDS, what="clip_demo's audit") as watchdog:
            try:
                get_engine()
            except ModelUnavailable as exc:  # the operator gets the path and the exception
                raise CommandError(f"The known-answer model is unusable: {exc.reason}")
            watchdog.progress()
            self.adapt()
            watchdog.progress()
            summary = local.audit_run(
                options=records.AuditOptions().resolved(), on_chunk=watchdog.progress, on_skipped=watchdog.progress,
            )
        self.stdout.write(
            f"Audit: {summary.checked} checked, {summary.skipped} already up to date, "
            f"{summary.flagged} sent to review, {summary.failed} failed."
        )
        for line in demo.demo_catalogue_score().as_lines():
            self.stdout.write(line)
        self.introduce(base_url=f"http://{HOST}:{port}", reset_credentials=reset_credentials)

    def introduce(self, *, base_url: str, reset_credentials: bool) -> None:
        """The demo's accounts, an upload that works as printed, and the pages to open."""
        self.stdout.write(
            "\nAccounts (made on the first run and kept; --reset-credentials makes new passwords and token):"
        )
        for user in demo.demo_users_create(reset_credentials=reset_credentials):
            role = "superuser" if user.is_superuser else f"moderator ({demo.MODERATORS_GROUP} group)"
            secret = f"password {user.password}" if user.password else "(password kept: as printed before)"
            self.stdout.write(f"  {role:<28} user {user.username}  {secret}")
        seller = demo.demo_seller_create(reset_credentials=reset_credentials)
        self.stdout.write(f"  {'seller (may upload)':<28} user {seller.username}  token {seller.token}")

        photo = demo.demo_sample_photo_write(Path(settings.MEDIA_ROOT) / SAMPLE_DIRECTORY)
        self.stdout.write(f"\nUpload a listing as {seller.username} (POST /upload, a sample photo written for it):")
        self.stdout.write("  " + demo.demo_upload_curl(base_url=base_url, token=seller.token, photo=photo))
        self.stdout.write("For Python (docs/client.md), the same as environment variables:")
        self.stdout.write(
            f"  export CLIPCHECK_URL={base_url} CLIPCHECK_TOKEN={seller.token} "
            f"CLIPCHECK_PHOTO={shlex.quote(str(photo))}"
        )
        origins = ", ".join(settings.CORS_ALLOWED_ORIGINS)
        self.stdout.write(
            f"Pages on other origins may call the API: {origins}." if origins else
            f"Pages on other origins may not call the API: start with CORS_ALLOWED_ORIGINS={CORS_EXAMPLE_ORIGIN} "
            "(the page's exact origin; docs/demo.md)."
        )

        self.stdout.write("\nOpen:")
        for path, what in (
            ("/", "try a photo and a text"),
            ("/admin/listings/reviewqueueitem/", "the review queue (log in as demo-moderator)"),
            ("/admin/", "the admin (demo-admin)"),
            ("/api/docs/", "the API, with Try it out"),
        ):
            self.stdout.write(f"  {base_url + path:<56} {what}")
