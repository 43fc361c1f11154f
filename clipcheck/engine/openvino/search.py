"""The int8 search: NNCF quantisation, keeping layers exact until the guard passes.

Quantisation settings (``quantize_tower``) were chosen on the known-answer
model, where they moved scores least; which layers stay exact is
``int8_search``'s answer (docs/runtime.md has the figures).
"""

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clipcheck.engine.calibration_set import CalibrationSet
from clipcheck.engine.openvino.compiled import TOWERS
from clipcheck.engine.openvino.guard import (
    GUARD_MAX_SCORE_GAP,
    INT8_RECIPE,
    GuardRecord,
    guard_figures,
    sample_scores,
)

logger = logging.getLogger(__name__)

# tower -> group -> the names of its matmuls
Groups = dict[str, dict[str, list[str]]]
# tower -> the groups kept exact
ExactGroups = dict[str, list[str]]
Towers = dict[str, Any]
Attempt = Callable[[str, ExactGroups, str | None], tuple[Towers, GuardRecord]]

# Restoration may keep at most this share of the layers its recipe quantises
# exact: past it the build would be int8 in name only, and it is refused.
MAX_EXACT_SHARE = 0.5
# Restoration stops below the guard's limit, not at it: the held-out sample
# is finite, and a build that just scrapes through is fragile.
RESTORED_MAX_SCORE_GAP = 0.8 * GUARD_MAX_SCORE_GAP
# Layers are ranked on a calibration subset this big (the final build uses all).
RANKING_CALIBRATION_SIZE = 16


def int8_search(*, exact_dir: Path, calibration: CalibrationSet, sample: CalibrationSet,
                threshold: float) -> tuple[Towers, GuardRecord]:
    """The int8 towers to serve and their guard record.

    The most int8 first, less until the guard passes:

    1. every matmul int8, the unquantised ops in the CPU's default precision
       (bf16 where it has native bf16);
    2. the sensitive layers (``_sensitive``) exact;
    3. the same with the unquantised ops in f32;
    4. accuracy restoration: the other layer groups ranked by how far each
       alone, quantised, moves the scores; the worst kept exact one at a
       time until the max score gap is at most ``RESTORED_MAX_SCORE_GAP``,
       unless more than ``MAX_EXACT_SHARE`` of them would be exact.

    Large towers (ViT-B/32) pass at step 1; small ones, where int8 rounding
    does not average out, need the rest. Where nothing passes, the record
    holds step 1's figures and int8 is refused.
    """
    import openvino as ov

    core = ov.Core()
    models = {kind: exact_dir / f"{kind}.xml" for kind in TOWERS}
    reference = sample_scores(models, sample, precision="f32")
    groups = {kind: quantisable_groups(core.read_model(models[kind])) for kind in TOWERS}
    sensitive = {kind: [group for group in groups[kind] if _sensitive(group)] for kind in TOWERS}
    latest: dict[str, tuple[tuple[str, ...], Any]] = {}  # kind -> (its exact groups, its quantised tower)

    def tower(kind: str, exact_groups: ExactGroups) -> Any:
        exact = tuple(exact_groups.get(kind, ()))
        if kind not in latest or latest[kind][0] != exact:
            # Read afresh: NNCF rewrites the model it is given (a clone shares its weights).
            latest[kind] = exact, quantize_tower(
                core.read_model(models[kind]), _tower_items(calibration, kind), kind=kind,
                exact=[name for group in exact for name in groups[kind][group]],
            )
        return latest[kind][1]

    steps: list[dict[str, Any]] = []

    def attempt(label: str, exact_groups: ExactGroups, precision: str | None) -> tuple[Towers, GuardRecord]:
        towers = {kind: tower(kind, exact_groups) for kind in TOWERS}
        guard = guard_figures(reference, sample_scores(towers, sample, precision=precision), threshold=threshold)
        return towers, _step_record(guard, label=label, precision=precision, steps=steps, exact_groups=exact_groups,
                                    groups=groups)

    first = attempt("every matmul int8", {}, None)
    if first[1]["passed"]:
        return first
    for precision in (None, "f32"):
        towers, record = attempt("sensitive layers exact", sensitive, precision)
        if record["passed"]:
            return towers, record
    ranked = _rank_groups(core, models, groups, sensitive, calibration, sample, reference)
    restored = _accuracy_restoration(attempt, ranked, groups=groups, sensitive=sensitive)
    if restored is not None:
        return restored
    # Refused: the record says what int8 would do (step 1) and every step tried.
    towers, record = first
    return towers, {**record, "steps": steps, "passed": False}


def _step_record(guard: GuardRecord, *, label: str, precision: str | None, steps: list[dict[str, Any]],
                 exact_groups: ExactGroups, groups: Groups) -> GuardRecord:
    """One step of ``int8_search``, logged and added to ``steps``; the guard record it would store."""
    steps.append({"step": label, "precision": precision, "max_score_gap": guard["max_score_gap"],
                  "agreement": guard["agreement"]})
    logger.info("int8 %s, unquantised ops at %s: max score gap %.4f, agreement %.2f%%", label,
                precision or "the CPU default", guard["max_score_gap"], 100 * guard["agreement"])
    return {**guard, "recipe": INT8_RECIPE, "precision": precision, "steps": steps,
            "exact_groups": sorted(f"{kind}:{group}" for kind, names in exact_groups.items() for group in names),
            "int8_layers": _layer_count(groups) - _layer_count(groups, exact_groups),
            "matmul_layers": _layer_count(groups)}


def _accuracy_restoration(attempt: Attempt, ranked: list[tuple[str, str]], *, groups: Groups,
                          sensitive: ExactGroups) -> tuple[Towers, GuardRecord] | None:
    """Step 4 of ``int8_search``: the ``ranked`` groups kept exact one at a time (f32) beside the
    sensitive ones, until ``attempt`` passes with a gap of at most ``RESTORED_MAX_SCORE_GAP``
    (its towers and record) or more than ``MAX_EXACT_SHARE`` of them would be exact (None)."""
    restorable = _layer_count(groups) - _layer_count(groups, sensitive)
    exact_groups = sensitive
    for kind, group in ranked:
        restored = _layer_count(groups, exact_groups) - _layer_count(groups, sensitive) + len(groups[kind][group])
        if restored > MAX_EXACT_SHARE * restorable:
            return None
        exact_groups = {**exact_groups, kind: [*exact_groups[kind], group]}
        towers, record = attempt(f"{kind}:{group} restored", exact_groups, "f32")
        if record["passed"] and record["max_score_gap"] <= RESTORED_MAX_SCORE_GAP:
            return towers, record
    return None


def _layer_count(groups: Groups, only: ExactGroups | None = None) -> int:
    return sum(
        len(names) for kind in TOWERS for group, names in groups[kind].items()
        if only is None or group in only.get(kind, ())
    )


def quantisable_groups(model: Any) -> dict[str, list[str]]:
    """The tower's matmuls (and the patch embedding's convolution) NNCF may
    quantise, grouped as restoration keeps them exact: one group per block's
    attention inputs (q, k, v share their input's quantiser), one per other
    matmul."""
    groups: dict[str, list[str]] = {}
    for op in model.get_ordered_ops():
        if op.get_type_name() not in ("MatMul", "Convolution"):
            continue
        name = op.get_friendly_name()
        module = name.removeprefix("__module.").split("/")[0]
        if "self_attn.q_proj" in module or "self_attn.k_proj" in module or "self_attn.v_proj" in module:
            module = module[:module.index("self_attn.") + len("self_attn.")] + "qkv"
        groups.setdefault(module, []).append(name)
    return groups


def _sensitive(group: str) -> bool:
    # The patch embedding sees raw colours and each attention block's output
    # projection mixes heads: on the known-answer model int8 moved scores most there.
    return "patch_embedding" in group or "out_proj" in group


def _rank_groups(core: Any, models: dict[str, Path], groups: Groups, sensitive: ExactGroups,
                 calibration: CalibrationSet, sample: CalibrationSet, reference: Sequence[float]) -> list[tuple[str, str]]:
    """The groups restoration may keep exact, as (tower, group), the one whose
    int8 alone moves scores most first (the other tower exact, unquantised
    ops in f32)."""
    gaps = []
    for kind in TOWERS:
        for group in groups[kind]:
            if group in sensitive[kind]:
                continue
            alone = quantize_tower(
                core.read_model(models[kind]), _tower_items(calibration, kind, RANKING_CALIBRATION_SIZE), kind=kind,
                exact=[name for other, others in groups[kind].items() if other != group for name in others],
            )
            scores = sample_scores({**models, kind: alone}, sample, precision="f32")
            gaps.append((float(np.max(np.abs(np.asarray(scores) - np.asarray(reference)))), kind, group))
    return [(kind, group) for _, kind, group in sorted(gaps, key=lambda item: -item[0])]


def _tower_items(calibration: CalibrationSet, kind: str, limit: int | None = None) -> list[dict[str, np.ndarray]]:
    items = calibration.image_items() if kind == "image" else calibration.text_items()
    return items[:limit] if limit else items


def quantize_tower(model: Any, items: list[dict[str, np.ndarray]], *, kind: str, exact: Sequence[str] = ()) -> Any:
    """NNCF post-training int8 of one tower, calibrated on ``items`` (one input each).

    Settings chosen on the known-answer model, where they moved scores least:
    the mixed preset (asymmetric activations: GELU outputs are one-sided),
    SmoothQuant at 0.5 (NNCF's default 0.95 moved the known-answer model's
    text scores twice as far). The layers named in ``exact`` stay exact.
    """
    import nncf

    nncf.set_log_level(logging.ERROR)
    advanced = nncf.AdvancedQuantizationParameters(
        smooth_quant_alphas=nncf.AdvancedSmoothQuantParameters(matmul=0.5)
    )
    return nncf.quantize(
        model, nncf.Dataset(items), model_type=nncf.ModelType.TRANSFORMER, preset=nncf.QuantizationPreset.MIXED,
        subset_size=len(items), ignored_scope=nncf.IgnoredScope(names=list(exact), validate=False),
        advanced_parameters=advanced,
    )
