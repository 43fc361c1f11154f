"""Generated image-text domain of the known-answer models (``knownanswer.CHECKPOINT``,
``knownanswer.SIGLIP_CHECKPOINT``), captioned in English, German, French and Spanish.

Images show ONE flat-coloured object (a shape in a colour) on a varied,
low-saturation background (plain, gradient, noise, two-tone "table", white).
Objects are upright (triangle and star point up), rotated by at most
MAX_ROTATION_DEG, with radius 0.28-0.42 of the image side at a random
position.  Everything about an image (position, size, rotation, colour
jitter, background) is a pure function of ``seed``, so tests can regenerate
exactly the same picture and know the right answer.

Public API (all deterministic, numpy + Pillow only, no torch needed)::

    SHAPES                      # ("circle", "square", "triangle", "star", "cross", "ring")
    COLOURS                     # ("red", "green", "blue", "yellow", "purple", "orange", "black", "white")
    COLOUR_RGB                  # name -> nominal (r, g, b)
    render(shape, colour, seed=0, size=64, background="random") -> PIL.Image
        # RGB image; background="white" gives a plain white background,
        # background="transparent" gives an RGBA image whose background is
        # fully transparent (and black underneath: RGB=0 where alpha=0),
        # background=(r, g, b) gives a plain background of that colour.
    caption(shape, colour, template_index=0, language="en") -> str
        # full caption, len(FULL_TEMPLATES) variants in every language
    colour_caption(colour, i, language="en"), shape_caption(shape, i, language="en")
        # single-attribute captions
    colour_prompt(colour, language="en") -> str   # "a photo of a red object"  (zero-shot colour prompt)
    shape_prompt(shape, language="en") -> str     # "a photo of a circle"      (zero-shot shape prompt)
    FULL_TEMPLATES, COLOUR_TEMPLATES, SHAPE_TEMPLATES   # English; OTHER_TEMPLATES for the rest
    LANGUAGES                   # ("en", "de", "fr", "es")
    COLOUR_WORDS, SHAPE_WORDS   # language -> colour -> forms, shape -> (noun, gender)
    all_captions(language="en") -> list[str]   # every caption the trainer uses in a language
    heldout_items(per_pair=20, sizes=HELDOUT_SIZES) -> list[(shape, colour, seed, size)]
        # held-out set used for the printed metrics; seeds >= HELDOUT_SEED_BASE,
        # disjoint from the training seeds (< TRAIN_SEED_LIMIT).

Colours are chosen so that a pipeline bug gives a *wrong* answer:
  * RGB<->BGR swap turns red into blue (and orange into blue), blue into red;
  * compositing a transparent background onto black instead of white makes a
    black object vanish (note: transformers' CLIP image processor itself
    composites RGBA onto white; PIL's ``img.convert("RGB")`` drops alpha and
    so shows the black under ``render(..., background="transparent")``);
  * white objects are always drawn on clearly non-white backgrounds (unless
    ``background="white"`` is requested explicitly).
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "ring")
COLOURS: tuple[str, ...] = ("red", "green", "blue", "yellow", "purple", "orange", "black", "white")

COLOUR_RGB: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 160, 40),
    "blue": (30, 60, 220),
    "yellow": (240, 210, 20),
    "purple": (130, 40, 170),
    "orange": (245, 130, 20),
    "black": (20, 20, 20),
    "white": (245, 245, 245),
}

# Full captions: {a} is the article ("a"/"an") matching the following word.
FULL_TEMPLATES: tuple[str, ...] = (
    "{a} {c} {s}",
    "a photo of {a} {c} {s}",
    "a photo of {a} {c} {s} on a table",
    "{c} {s} product",
    "{a} {c} {s} on a plain background",
    "an image of {a} {c} {s}",
    "a picture of the {c} {s}",
    "product photo: {c} {s}",
    "a small {c} {s}",
    "the {c} {s}",
)
COLOUR_TEMPLATES: tuple[str, ...] = (
    "a photo of {a} {c} object",
    "something {c}",
    "{a} {c} thing",
    "{c} product",
)
SHAPE_TEMPLATES: tuple[str, ...] = (
    "a photo of {a} {s}",
    "{a} {s}",
    "{a} {s} shape",
    "{s} product",
)

TRAIN_SEED_LIMIT = 1_000_000
HELDOUT_SEED_BASE = 1_000_000
HELDOUT_SIZES: tuple[int, ...] = (64, 96, 128, 224)

# minimum RGB distance between the object colour and any background colour
_MIN_CONTRAST = 130.0
# objects are drawn upright (triangle/star point up) and rotated by at most this
MAX_ROTATION_DEG = 20.0


# ---------------------------------------------------------- other languages

# The listing languages of the domain (ISO 639-1). English is the base above;
# the others spell the same words as the service's default attribute
# vocabularies (clipcheck/default_attributes.py).
LANGUAGES: tuple[str, ...] = ("en", "de", "fr", "es")

# Colour forms per language. German: [base, -e, -er, -es, -en, -em];
# French and Spanish: [masc sg, fem sg, masc pl, fem pl].
COLOUR_WORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "en": {c: (c,) for c in COLOURS},
    "de": {
        "red": ("rot", "rote", "roter", "rotes", "roten", "rotem"),
        "green": ("grün", "grüne", "grüner", "grünes", "grünen", "grünem"),
        "blue": ("blau", "blaue", "blauer", "blaues", "blauen", "blauem"),
        "yellow": ("gelb", "gelbe", "gelber", "gelbes", "gelben", "gelbem"),
        "purple": ("violett", "violette", "violetter", "violettes", "violetten", "violettem"),
        "orange": (
            "orangefarben", "orangefarbene", "orangefarbener", "orangefarbenes", "orangefarbenen", "orangefarbenem",
        ),
        "black": ("schwarz", "schwarze", "schwarzer", "schwarzes", "schwarzen", "schwarzem"),
        "white": ("weiß", "weiße", "weißer", "weißes", "weißen", "weißem"),
    },
    "fr": {
        "red": ("rouge", "rouge", "rouges", "rouges"),
        "green": ("vert", "verte", "verts", "vertes"),
        "blue": ("bleu", "bleue", "bleus", "bleues"),
        "yellow": ("jaune", "jaune", "jaunes", "jaunes"),
        "purple": ("violet", "violette", "violets", "violettes"),
        "orange": ("orange", "orange", "orange", "orange"),
        "black": ("noir", "noire", "noirs", "noires"),
        "white": ("blanc", "blanche", "blancs", "blanches"),
    },
    "es": {
        "red": ("rojo", "roja", "rojos", "rojas"),
        "green": ("verde", "verde", "verdes", "verdes"),
        "blue": ("azul", "azul", "azules", "azules"),
        "yellow": ("amarillo", "amarilla", "amarillos", "amarillas"),
        "purple": ("morado", "morada", "morados", "moradas"),
        "orange": ("naranja", "naranja", "naranja", "naranja"),
        "black": ("negro", "negra", "negros", "negras"),
        "white": ("blanco", "blanca", "blancos", "blancas"),
    },
}

# Shape nouns per language with their grammatical gender (m, f, n).
SHAPE_WORDS: dict[str, dict[str, tuple[str, str]]] = {
    "en": {s: (s, "n") for s in SHAPES},
    "de": {
        "circle": ("Kreis", "m"), "square": ("Quadrat", "n"), "triangle": ("Dreieck", "n"),
        "star": ("Stern", "m"), "cross": ("Kreuz", "n"), "ring": ("Ring", "m"),
    },
    "fr": {
        "circle": ("cercle", "m"), "square": ("carré", "m"), "triangle": ("triangle", "m"),
        "star": ("étoile", "f"), "cross": ("croix", "f"), "ring": ("anneau", "m"),
    },
    "es": {
        "circle": ("círculo", "m"), "square": ("cuadrado", "m"), "triangle": ("triángulo", "m"),
        "star": ("estrella", "f"), "cross": ("cruz", "f"), "ring": ("anillo", "m"),
    },
}

# Templates of the other languages, as many per kind as the English ones
# (template i of every language says the same thing). Their fields are filled
# by ``_fields``: {s} the shape noun; German {ein}/{der}/{einem} the article
# and {c_ein}/{c_der}/{c_dem} the colour ending after it ({c_ein} also stands
# without an article, {c0}..{c5} are the forms by index); French {un}/{d_un}/
# {le}, Spanish {un}/{el}, and {c} the colour agreeing with the noun ({cm}/{cf}
# masculine/feminine for the colour-only captions).
OTHER_TEMPLATES: dict[str, dict[str, tuple[str, ...]]] = {
    "de": {
        "full": (
            "{ein} {c_ein} {s}",
            "ein Foto von {einem} {c_dem} {s}",
            "ein Foto von {einem} {c_dem} {s} auf einem Tisch",
            "{c_ein} {s}",
            "{ein} {c_ein} {s} auf einfarbigem Hintergrund",
            "ein Bild von {einem} {c_dem} {s}",
            "{der} {c_der} {s}",
            "Produktfoto: {c_ein} {s}",
            "{ein} {klein} {c_ein} {s}",
            "{ein} {s} aus {c5} Kunststoff",
        ),
        "colour": (
            "ein Foto von einem {c4} Objekt",
            "ein {c3} Ding",
            "ein {c2} Gegenstand",
            "{c3} Produkt",
        ),
        "shape": (
            "ein Foto von {einem} {s}",
            "{ein} {s}",
            "ein Bild von {einem} {s}",
            "Produkt: {s}",
        ),
    },
    "fr": {
        "full": (
            "{un} {s} {c}",
            "une photo {d_un} {s} {c}",
            "une photo {d_un} {s} {c} sur une table",
            "{s} {c}",
            "{un} {s} {c} sur un fond uni",
            "une image {d_un} {s} {c}",
            "{le}{s} {c}",
            "photo du produit : {s} {c}",
            "{un} {petit} {s} {c}",
            "photo {d_un} {s} {c}",
        ),
        "colour": (
            "une photo d'un objet {cm}",
            "quelque chose de {cm}",
            "une chose {cf}",
            "produit {cm}",
        ),
        "shape": (
            "une photo {d_un} {s}",
            "{un} {s}",
            "une image {d_un} {s}",
            "produit : {s}",
        ),
    },
    "es": {
        "full": (
            "{un} {s} {c}",
            "una foto de {un} {s} {c}",
            "una foto de {un} {s} {c} sobre una mesa",
            "{s} {c}",
            "{un} {s} {c} sobre un fondo liso",
            "una imagen de {un} {s} {c}",
            "{el} {s} {c}",
            "foto del producto: {s} {c}",
            "{un} {s} {c} {pequeno}",
            "foto de {un} {s} {c}",
        ),
        "colour": (
            "una foto de un objeto {cm}",
            "algo {cm}",
            "una cosa {cf}",
            "producto {cm}",
        ),
        "shape": (
            "una foto de {un} {s}",
            "{un} {s}",
            "una imagen de {un} {s}",
            "producto: {s}",
        ),
    },
}

# German articles and adjective-form indices by gender: nominative after
# ein / no article (strong), nominative after der/das (weak), dative (-en).
_DE_GENDER = {
    "m": {"ein": "ein", "einem": "einem", "der": "der", "klein": "kleiner", "c_ein": 2, "c_der": 1, "c_dem": 4},
    "n": {"ein": "ein", "einem": "einem", "der": "das", "klein": "kleines", "c_ein": 3, "c_der": 1, "c_dem": 4},
}


def _fields(language: str, shape: str | None, colour: str | None, forms: tuple[str, ...] = ()) -> dict[str, str]:
    forms = COLOUR_WORDS[language][colour] if colour else forms
    fields: dict[str, str] = {}
    if language == "de":
        fields.update({f"c{i}": form for i, form in enumerate(forms)})
    else:
        fields.update({"cm": forms[0], "cf": forms[1]} if forms else {})
    if shape is None:
        return fields
    noun, gender = SHAPE_WORDS[language][shape]
    fields["s"] = noun
    if language == "de":
        grammar = _DE_GENDER[gender]
        fields.update({k: v for k, v in grammar.items() if isinstance(v, str)})
        fields.update({k: forms[v] for k, v in grammar.items() if isinstance(v, int) and forms})
    elif language == "fr":
        feminine = gender == "f"
        fields["un"] = "une" if feminine else "un"
        fields["d_un"] = "d'une" if feminine else "d'un"
        fields["le"] = "l'" if noun[0] in "aeiouéè" else ("la " if feminine else "le ")
        fields["petit"] = "petite" if feminine else "petit"
        fields["c"] = forms[1 if feminine else 0] if forms else ""
    else:
        feminine = gender == "f"
        fields["un"] = "una" if feminine else "un"
        fields["el"] = "la" if feminine else "el"
        fields["pequeno"] = "pequeña" if feminine else "pequeño"
        fields["c"] = forms[1 if feminine else 0] if forms else ""
    return fields


def _caption_in(language: str, kind: str, template_index: int, shape: str | None = None, colour: str | None = None,
                forms: tuple[str, ...] = ()) -> str:
    if language not in OTHER_TEMPLATES:
        raise ValueError(f"unknown language {language!r}; expected one of {LANGUAGES}")
    templates = OTHER_TEMPLATES[language][kind]
    return templates[template_index % len(templates)].format(**_fields(language, shape, colour, forms))


def caption_in_other_colour(shape: str, forms, template_index: int = 0, language: str = "en") -> str:
    """A full caption whose colour is none of the domain's (no picture matches
    it), given by its forms as in COLOUR_WORDS; a single form serves every
    ending: ``caption_in_other_colour("star", ["rosa"], 0, "de")`` is
    ``"ein rosa Stern"``."""
    _check(shape, None)
    forms = (forms,) if isinstance(forms, str) else tuple(forms)
    if language == "en":
        t = FULL_TEMPLATES[template_index % len(FULL_TEMPLATES)]
        return t.format(a=_article(forms[0]), c=forms[0], s=shape)
    forms = forms * len(COLOUR_WORDS[language]["red"]) if len(forms) == 1 else forms
    return _caption_in(language, "full", template_index, shape=shape, forms=forms)


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def caption(shape: str, colour: str, template_index: int = 0, language: str = "en") -> str:
    """Full caption naming both colour and shape, e.g. ``"a photo of a red circle"``
    (``"ein Foto von einem roten Kreis"`` in German)."""
    _check(shape, colour)
    if language != "en":
        return _caption_in(language, "full", template_index, shape=shape, colour=colour)
    t = FULL_TEMPLATES[template_index % len(FULL_TEMPLATES)]
    return t.format(a=_article(colour), c=colour, s=shape)


def colour_caption(colour: str, template_index: int = 0, language: str = "en") -> str:
    """Caption naming only the colour (e.g. ``"something red"``)."""
    _check(None, colour)
    if language != "en":
        return _caption_in(language, "colour", template_index, colour=colour)
    t = COLOUR_TEMPLATES[template_index % len(COLOUR_TEMPLATES)]
    return t.format(a=_article(colour), c=colour)


def shape_caption(shape: str, template_index: int = 0, language: str = "en") -> str:
    """Caption naming only the shape (e.g. ``"a circle shape"``)."""
    _check(shape, None)
    if language != "en":
        return _caption_in(language, "shape", template_index, shape=shape)
    t = SHAPE_TEMPLATES[template_index % len(SHAPE_TEMPLATES)]
    return t.format(a=_article(shape), s=shape)


def colour_prompt(colour: str, language: str = "en") -> str:
    """Zero-shot colour prompt: ``"a photo of a red object"``."""
    return colour_caption(colour, 0, language)


def shape_prompt(shape: str, language: str = "en") -> str:
    """Zero-shot shape prompt: ``"a photo of a circle"``."""
    return shape_caption(shape, 0, language)


def _check(shape, colour):
    if shape is not None and shape not in SHAPES:
        raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")
    if colour is not None and colour not in COLOURS:
        raise ValueError(f"unknown colour {colour!r}; expected one of {COLOURS}")


# ---------------------------------------------------------------- geometry


def _polygon(shape: str, cx: float, cy: float, r: float, theta: float):
    def pts(radii, n, offset=0.0):
        out = []
        for k in range(n):
            ang = theta + offset + 2 * math.pi * k / n
            rr = radii[k % len(radii)]
            out.append((cx + rr * math.cos(ang), cy + rr * math.sin(ang)))
        return out

    if shape == "square":
        return pts([r], 4, math.pi / 4)
    if shape == "triangle":
        return pts([r * 1.1], 3, -math.pi / 2)
    if shape == "star":
        return pts([r * 1.1, r * 0.45], 10, -math.pi / 2)
    if shape == "cross":
        w = 0.32 * r
        base = [(w, -r), (w, -w), (r, -w), (r, w), (w, w), (w, r),
                (-w, r), (-w, w), (-r, w), (-r, -w), (-w, -w), (-w, -r)]
        c, s = math.cos(theta), math.sin(theta)
        return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in base]
    raise ValueError(shape)


def _mask(shape: str, size: int, cx: float, cy: float, r: float, theta: float) -> np.ndarray:
    """Anti-aliased coverage mask in [0, 1], drawn at 4x and box-downsampled."""
    ss = 4
    big = Image.new("L", (size * ss, size * ss), 0)
    d = ImageDraw.Draw(big)
    X, Y, R = cx * ss, cy * ss, r * ss
    if shape == "circle":
        d.ellipse([X - R, Y - R, X + R, Y + R], fill=255)
    elif shape == "ring":
        d.ellipse([X - R, Y - R, X + R, Y + R], fill=255)
        ri = R * 0.58
        d.ellipse([X - ri, Y - ri, X + ri, Y + ri], fill=0)
    else:
        d.polygon([(x * ss, y * ss) for x, y in _polygon(shape, cx, cy, r, theta)], fill=255)
    small = big.resize((size, size), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32) / 255.0


# -------------------------------------------------------------- background


def _tint(rng: np.random.Generator) -> np.ndarray:
    """A low-saturation background colour (greys, beiges, pale/dark tints)."""
    h = rng.uniform(0, 1)
    s = rng.uniform(0.0, 0.28)
    v = rng.choice([rng.uniform(0.25, 0.55), rng.uniform(0.55, 1.0)], p=[0.3, 0.7])
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return np.array(rgb, dtype=np.float32) * 255.0


def _far_tint(rng: np.random.Generator, obj: np.ndarray) -> np.ndarray:
    for _ in range(200):
        c = _tint(rng)
        if np.linalg.norm(c - obj) >= _MIN_CONTRAST:
            return c
    # fallback: mid grey is far from every object colour we use
    return np.array([128.0, 128.0, 128.0], dtype=np.float32)


def _background(rng: np.random.Generator, size: int, obj: np.ndarray) -> np.ndarray:
    kind = rng.choice(6, p=[0.15, 0.25, 0.2, 0.15, 0.15, 0.10])
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    a = _far_tint(rng, obj)
    if kind == 5:  # plain white / near white (only when the object is not white-ish)
        w = np.array([255.0, 255.0, 255.0]) - rng.uniform(0, 12)
        a = w if np.linalg.norm(w - obj) >= _MIN_CONTRAST else a
        bg = np.broadcast_to(a, (size, size, 3)).copy()
    elif kind == 0:  # plain
        bg = np.broadcast_to(a, (size, size, 3)).copy()
    elif kind in (1, 2):  # linear gradient (+ noise for kind 2)
        b = _far_tint(rng, obj)
        ang = rng.uniform(0, 2 * math.pi)
        t = xx * math.cos(ang) + yy * math.sin(ang)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        bg = a[None, None, :] * (1 - t[..., None]) + b[None, None, :] * t[..., None]
    elif kind == 3:  # noise texture
        bg = np.broadcast_to(a, (size, size, 3)).copy()
    else:  # "table": two tones split at a horizon
        b = _far_tint(rng, obj)
        horizon = rng.uniform(0.3, 0.7)
        bg = np.where((yy < horizon)[..., None], a[None, None, :], b[None, None, :])
    if kind in (2, 3, 4):
        sigma = rng.uniform(3, 16)
        bg = bg + rng.normal(0, sigma, size=(size, size, 1 if rng.random() < 0.5 else 3))
    return bg


# ------------------------------------------------------------------ render


def render(shape: str, colour: str, seed: int = 0, size: int = 64, background="random") -> Image.Image:
    """Render one object.

    ``seed`` fixes pose, colour jitter and background; the same seed with a
    different shape/colour keeps the pose (and, as far as contrast allows,
    the background).  ``size`` is the square side in pixels.
    ``background``: "random" (default), "white", "transparent" (returns RGBA,
    RGB=0 under alpha=0), or an (r, g, b) tuple for a plain colour.
    """
    _check(shape, colour)
    rng = np.random.default_rng([int(seed), 7919])
    r = rng.uniform(0.28, 0.42) * size
    margin = r * 1.1 + 1
    cx = rng.uniform(margin, size - margin)
    cy = rng.uniform(margin, size - margin)
    theta = math.radians(rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG))
    jitter = rng.uniform(-14, 14, size=3)
    obj = np.clip(np.array(COLOUR_RGB[colour], dtype=np.float32) + jitter, 0, 255)
    bg_rng = np.random.default_rng([int(seed), 104729])
    m = _mask(shape, size, cx, cy, r, theta)[..., None]

    if background == "transparent":
        rgb = np.broadcast_to(obj, (size, size, 3)) * (m > 0)
        alpha = m[..., 0] * 255.0
        arr = np.concatenate([rgb, alpha[..., None]], axis=-1)
        return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "RGBA")
    if background == "random":
        bg = _background(bg_rng, size, obj)
    elif background == "white":
        bg = np.full((size, size, 3), 255.0, dtype=np.float32)
    else:
        bg = np.broadcast_to(np.array(background, dtype=np.float32), (size, size, 3))
    # mild shading on the object so it is not perfectly flat
    shade = 1.0 + rng.uniform(-0.08, 0.08) * ((np.mgrid[0:size, 0:size][0] / size) - 0.5)[..., None]
    img = bg * (1 - m) + np.clip(obj * shade, 0, 255) * m
    return Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8), "RGB")


def all_captions(language: str = "en") -> list[str]:
    """Every caption the trainer can emit in ``language`` (full, colour-only,
    shape-only); every language has as many of each kind as English."""
    out = []
    for s in SHAPES:
        for c in COLOURS:
            out += [caption(s, c, k, language) for k in range(len(FULL_TEMPLATES))]
    for c in COLOURS:
        out += [colour_caption(c, k, language) for k in range(len(COLOUR_TEMPLATES))]
    for s in SHAPES:
        out += [shape_caption(s, k, language) for k in range(len(SHAPE_TEMPLATES))]
    return out


def heldout_items(per_pair: int = 20, sizes=HELDOUT_SIZES) -> list[tuple[str, str, int, int]]:
    """Held-out (shape, colour, seed, size) tuples, ``per_pair`` per shape/colour pair.

    Seeds start at HELDOUT_SEED_BASE (training uses seeds < TRAIN_SEED_LIMIT);
    sizes cycle through ``sizes`` so the processor's resize path is exercised.
    """
    items = []
    k = 0
    for si, s in enumerate(SHAPES):
        for ci, c in enumerate(COLOURS):
            for j in range(per_pair):
                items.append((s, c, HELDOUT_SEED_BASE + k, sizes[(j + si + ci) % len(sizes)]))
                k += 1
    return items
