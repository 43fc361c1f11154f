"""The page at ``/``: check a photo against a text, told what the running model knows.

With the known-answer model (``knownanswer.CHECKPOINT``, the one ``clip_demo``
serves) the page says that it knows coloured shapes and offers a few sample
pictures of its domain, each with its right text and a wrong one, so a first
visitor gets both answers in two clicks. The pictures are drawn by
``knownanswer.domain.render`` (deterministic) and kept once drawn.
"""

import io
from dataclasses import dataclass
from functools import lru_cache

from django.http import Http404, HttpResponse
from django.utils.cache import patch_cache_control
from django.views.generic import TemplateView

import knownanswer
from clipcheck.reasons import reason_types
from clipcheck.services.thresholds import model_shown
from clipcheck.settings import clip_settings
from knownanswer import domain

# Seeds apart from the trainer's (< 1,000,000), the held-out set's and the demo catalogue's.
SAMPLE_SEED_BASE = 7_000_000
SAMPLE_SIZE = 160
SAMPLE_MAX_AGE = 24 * 60 * 60


@dataclass(frozen=True)
class Sample:
    """A picture of the known-answer domain, the text that describes it and one that does not."""

    shape: str
    colour: str
    seed: int
    wrong_shape: str
    wrong_colour: str

    @property
    def name(self):
        return f"{self.colour}-{self.shape}"

    @property
    def right_text(self):
        return domain.caption(self.shape, self.colour)

    @property
    def wrong_text(self):
        return domain.caption(self.wrong_shape, self.wrong_colour)


# A wrong colour, a wrong shape, and both wrong: each gives its own reasons.
SAMPLES = (
    Sample("star", "red", SAMPLE_SEED_BASE + 1, wrong_shape="star", wrong_colour="blue"),
    Sample("circle", "green", SAMPLE_SEED_BASE + 2, wrong_shape="square", wrong_colour="green"),
    Sample("triangle", "yellow", SAMPLE_SEED_BASE + 3, wrong_shape="ring", wrong_colour="purple"),
)
SAMPLES_BY_NAME = {sample.name: sample for sample in SAMPLES}


def demo_model_active() -> bool:
    """Whether the running model is the known-answer one (as ``clip_demo`` configures it)."""
    return knownanswer.is_checkpoint(clip_settings.MODEL)


def words(items) -> str:
    """``a, b and c``."""
    items = [str(item) for item in items]
    return ", ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else "".join(items)


@lru_cache(maxsize=len(SAMPLES))
def sample_png(name) -> bytes:
    sample = SAMPLES_BY_NAME[name]
    buffer = io.BytesIO()
    domain.render(sample.shape, sample.colour, seed=sample.seed, size=SAMPLE_SIZE).save(buffer, format="PNG")
    return buffer.getvalue()


class HomeView(TemplateView):
    template_name = "index.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        demo = demo_model_active()
        categories = [str(category) for category in clip_settings.CATEGORIES or []]
        context.update(
            model=model_shown(staff=False),
            categories=words(categories),
            category_count=len(categories),
            demo=demo,
            shapes=words(domain.SHAPES),
            colours=words(domain.COLOURS),
            samples=SAMPLES if demo else (),
            placeholder=f"e.g. {SAMPLES[0].right_text}" if demo else "e.g. what the photo shows, as the listing says it",
            # The page shows reasons by their label, never by their code.
            reason_labels={reason_type.code: reason_type.label for reason_type in reason_types()},
        )
        return context


def sample_picture(request, name):
    """A sample picture of the page (PNG); only while the known-answer model runs."""
    if name not in SAMPLES_BY_NAME or not demo_model_active():
        raise Http404("No such sample picture.")
    response = HttpResponse(sample_png(name), content_type="image/png")
    patch_cache_control(response, public=True, max_age=SAMPLE_MAX_AGE)
    return response
