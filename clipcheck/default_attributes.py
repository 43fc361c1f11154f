"""The default vocabularies: product attributes and their values, per language.

``DEFAULT_ATTRIBUTES`` is ``CLIPCHECK["ATTRIBUTES"]``, the English one;
``DEFAULT_ATTRIBUTES_BY_LANGUAGE`` is ``CLIPCHECK["ATTRIBUTES_BY_LANGUAGE"]``,
the others. A value that inflects is the list of its forms, its name first:
German [base, -e, -er, -es, -en, -em], French and Spanish [masculine
singular, feminine singular, masculine plural, feminine plural]; a rewrite
puts the other value's form at the same index (clipcheck.attributes).

The colours include the eight of the known-answer model's domain
(knownanswer/domain.py) in each language, spelt as its captions spell them,
so its tests run on the defaults.
"""

# The languages a text may be written in: English and those with a vocabulary
# and translated messages (clipcheck/locale).
LANGUAGES = ("en", "de", "fr", "es")
DEFAULT_LANGUAGE = "en"

DEFAULT_ATTRIBUTES = {
    "colour": [
        "red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white", "grey",
        "beige", "navy", "gold", "silver",
    ],
    "material": [
        "leather", "cotton", "wool", "silk", "denim", "linen", "polyester", "suede", "canvas", "wooden",
        "metal", "plastic", "glass", "ceramic", "rubber",
    ],
    "pattern": [
        "striped", "plaid", "floral", "polka dot", "paisley", "camouflage", "leopard print", "houndstooth",
    ],
}


def _german(base: str) -> list[str]:
    """A German adjective's forms: [base, -e, -er, -es, -en, -em]."""
    return [base, *(base + ending for ending in ("e", "er", "es", "en", "em"))]


def _romance(masculine: str, feminine: str, masculine_plural: str, feminine_plural: str) -> list[str]:
    return [masculine, feminine, masculine_plural, feminine_plural]


DEFAULT_ATTRIBUTES_BY_LANGUAGE = {
    "de": {
        "colour": [
            _german("rot"), _german("orangefarben"), _german("gelb"), _german("grün"), _german("blau"),
            _german("violett"), "rosa", _german("braun"), _german("schwarz"), _german("weiß"), _german("grau"),
            "beige", _german("marineblau"), _german("golden"), _german("silbern"),
        ],
        # Nouns ("eine Tasche aus Leder"): one form each.
        "material": [
            "Leder", "Baumwolle", "Wolle", "Seide", "Denim", "Leinen", "Polyester", "Wildleder", "Segeltuch",
            "Holz", "Metall", "Kunststoff", "Glas", "Keramik", "Gummi",
        ],
        "pattern": [
            _german("gestreift"), _german("kariert"), _german("geblümt"), _german("gepunktet"), "Paisley",
            "Camouflage", "Leopardenmuster", "Hahnentritt",
        ],
    },
    "fr": {
        "colour": [
            _romance("rouge", "rouge", "rouges", "rouges"), _romance("orange", "orange", "orange", "orange"),
            _romance("jaune", "jaune", "jaunes", "jaunes"), _romance("vert", "verte", "verts", "vertes"),
            _romance("bleu", "bleue", "bleus", "bleues"), _romance("violet", "violette", "violets", "violettes"),
            _romance("rose", "rose", "roses", "roses"), "marron", _romance("noir", "noire", "noirs", "noires"),
            _romance("blanc", "blanche", "blancs", "blanches"), _romance("gris", "grise", "gris", "grises"),
            _romance("beige", "beige", "beiges", "beiges"), _romance("doré", "dorée", "dorés", "dorées"),
            _romance("argenté", "argentée", "argentés", "argentées"),
        ],
        "material": [
            "cuir", "coton", "laine", "soie", "denim", "lin", "polyester", "daim", "toile", "bois", "métal",
            "plastique", "verre", "céramique", "caoutchouc",
        ],
        "pattern": [
            _romance("rayé", "rayée", "rayés", "rayées"), "à carreaux", _romance("fleuri", "fleurie", "fleuris", "fleuries"),
            "à pois", "paisley", "camouflage", "léopard", "pied-de-poule",
        ],
    },
    "es": {
        "colour": [
            _romance("rojo", "roja", "rojos", "rojas"), _romance("naranja", "naranja", "naranja", "naranja"),
            _romance("amarillo", "amarilla", "amarillos", "amarillas"), _romance("verde", "verde", "verdes", "verdes"),
            _romance("azul", "azul", "azules", "azules"), _romance("morado", "morada", "morados", "moradas"),
            _romance("rosa", "rosa", "rosas", "rosas"), _romance("marrón", "marrón", "marrones", "marrones"),
            _romance("negro", "negra", "negros", "negras"), _romance("blanco", "blanca", "blancos", "blancas"),
            _romance("gris", "gris", "grises", "grises"), _romance("beige", "beige", "beiges", "beiges"),
            _romance("dorado", "dorada", "dorados", "doradas"),
            _romance("plateado", "plateada", "plateados", "plateadas"),
        ],
        "material": [
            "cuero", "algodón", "lana", "seda", "denim", "lino", "poliéster", "ante", "lona", "madera", "metal",
            "plástico", "vidrio", "cerámica", "goma",
        ],
        "pattern": [
            _romance("rayado", "rayada", "rayados", "rayadas"), "a cuadros",
            _romance("floreado", "floreada", "floreados", "floreadas"), "de lunares", "cachemira", "camuflaje",
            "de leopardo", "pata de gallo",
        ],
    },
}
