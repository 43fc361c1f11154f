"""Listing test data shared by the listings tests and their fixtures."""

RED = (200, 30, 30)
# Under the tiny test checkpoint the red photo scores well above zero with
# MATCHING_TEXT and zero with MISMATCHING_TEXT; the ``split_threshold``
# fixture puts the threshold between them so a test decides which text matches.
MATCHING_TEXT = "a blue bag"
MISMATCHING_TEXT = "red shoe"
