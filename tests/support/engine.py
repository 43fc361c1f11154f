"""Watching what reaches the model."""


class EncoderCalls:
    """Counts the engine's forward passes: image batches and text batches."""

    def __init__(self):
        self.image_calls = []
        self.text_calls = []

    @property
    def images_encoded(self):
        return sum(self.image_calls)

    @property
    def texts_encoded(self):
        return sum(self.text_calls)
