"""The default ``CLIPCHECK["ATTRIBUTES"]``: product attributes and their values.

The colours include the eight of the known-answer model's domain
(knownanswer/domain.py), so its tests run on the defaults.
"""

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
