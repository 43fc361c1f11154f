"""The quality badges' colours meet WCAG AA: the page at / and the admin's score badges."""

import re
from pathlib import Path

import pytest

from tests.support.colours import contrast_ratio, css_rgb

TEMPLATE = Path(__file__).resolve().parents[1] / "templates" / "index.html"


def test_the_contrast_ratio_is_the_wcag_one():
    assert contrast_ratio((0, 0, 0), (255, 255, 255)) == pytest.approx(21)
    assert contrast_ratio((118, 118, 118), (255, 255, 255)) == pytest.approx(4.54, abs=0.01)


def stylesheet():
    return re.search(r"<style>(.*?)</style>", TEMPLATE.read_text(), re.S).group(1)


def test_every_quality_badge_meets_wcag_aa():
    css = stylesheet()
    qualities = dict(re.findall(r"\.quality-([\w-]+)\s*\{\s*--quality:\s*(#[0-9a-fA-F]{6})", css))
    from clipcheck.settings import DEFAULTS

    assert set(DEFAULTS["QUALITY_BANDS"]) <= set(qualities)
    badge = re.search(r"\.badge\s*\{([^}]*)\}", css).group(1)
    text = css_rgb(re.search(r"(?<![-\w])color:\s*(#[0-9a-fA-F]{6})", badge).group(1))
    fallback = re.search(r"var\(--quality,\s*(#[0-9a-fA-F]{6})\)", badge).group(1)
    for name, background in {**qualities, "unknown label": fallback}.items():
        assert contrast_ratio(text, css_rgb(background)) >= 4.5, name


def test_every_admin_score_badge_meets_wcag_aa():
    css = (TEMPLATE.parents[1] / "listings" / "static" / "listings" / "admin.css").read_text()
    bands = dict(re.findall(r'\.clip-score\[data-quality="([\w-]+)"\]\s*\{\s*--band-colour:\s*(#[0-9a-fA-F]{6})', css))
    fallback = re.search(r"\.clip-score\s*\{\s*--band-colour:\s*(#[0-9a-fA-F]{6})", css).group(1)
    from clipcheck.settings import DEFAULTS

    assert set(DEFAULTS["QUALITY_BANDS"]) <= set(bands)
    badge = re.search(r"\.clip-score \.clip-band\s*\{([^}]*)\}", css).group(1)
    text = css_rgb(re.search(r"(?<![-\w])color:\s*(#[0-9a-fA-F]{6})", badge).group(1))
    for name, background in {**bands, "a project's own band": fallback}.items():
        assert contrast_ratio(text, css_rgb(background)) >= 4.5, name
