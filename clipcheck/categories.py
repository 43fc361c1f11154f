"""The default product catalogue used by /clip/classify and /clip/categories."""

DEFAULT_CATEGORIES = [
    # Footwear
    "shoes", "sneakers", "boots", "sandals", "high heels", "slippers",
    # Clothing
    "shirt", "t-shirt", "sweater", "hoodie", "jacket", "coat", "dress",
    "skirt", "pants", "jeans", "shorts", "suit", "swimsuit", "socks",
    # Bags and accessories
    "handbag", "backpack", "purse", "wallet", "suitcase", "belt", "hat",
    "scarf", "sunglasses", "watch", "necklace", "ring", "earrings",
    # Electronics
    "smartphone", "laptop", "headphones", "camera", "tablet",
    # Home and other
    "chair", "sofa", "lamp", "mug", "bicycle", "book", "toy",
]
