"""Business logic of the /clip/* endpoints: plain ``entity_action`` functions, no HTTP.

Reads live in ``clipcheck.selectors``; the writes and computations are here,
one module per concern:

- ``thresholds``: the model in use, the default and calibrated thresholds;
- ``analyses``: image/text pairs scored and stored as ``Analysis`` rows;
- ``embeddings``: image embeddings computed once and reused;
- ``classification``: zero-shot classification over category prompts;
- ``batch``: batch analysis of server-side image files;
- ``calibration_data``: labelled pairs scored for ``clip_calibrate``.
"""
