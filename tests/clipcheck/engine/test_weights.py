"""The PyTorch model loaded tensor by tensor in its serving dtype (clipcheck.engine.weights)."""

import shutil

import pytest
import torch
from transformers import CLIPModel

from clipcheck.engine import weights


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_the_parameters_are_those_from_pretrained_gives(tiny_model_dir, dtype):
    loaded = weights.clip_model_load(tiny_model_dir, dtype)
    reference = CLIPModel.from_pretrained(tiny_model_dir, dtype=dtype).eval()
    expected = reference.state_dict()
    assert not loaded.training
    assert set(loaded.state_dict()) == set(expected)
    for name, tensor in loaded.state_dict().items():
        assert tensor.dtype == expected[name].dtype, name
        assert torch.equal(tensor, expected[name]), name


@pytest.mark.parametrize("damage", [lambda data: data[:-100], lambda data: data[:6], lambda data: data + b"\0"])
def test_a_damaged_checkpoint_is_refused_by_the_safetensors_library(tiny_model_dir, tmp_path, damage):
    copy = tmp_path / "damaged"
    shutil.copytree(tiny_model_dir, copy)
    path = copy / weights.SAFETENSORS_FILE
    path.write_bytes(damage(path.read_bytes()))
    assert weights.safetensors_index(path) is None
    with pytest.raises(Exception) as refused:
        weights.clip_model_load(copy, torch.bfloat16)
    assert "Safetensor" in refused.type.__name__


def test_other_checkpoint_layouts_load_through_from_pretrained(tiny_model_dir, tmp_path):
    copy = tmp_path / "bin-checkpoint"
    shutil.copytree(tiny_model_dir, copy)
    torch.save(CLIPModel.from_pretrained(tiny_model_dir).state_dict(), copy / "pytorch_model.bin")
    (copy / weights.SAFETENSORS_FILE).unlink()
    loaded = weights.clip_model_load(copy, torch.bfloat16)
    reference = CLIPModel.from_pretrained(tiny_model_dir, dtype=torch.bfloat16).state_dict()
    assert all(torch.equal(tensor, reference[name]) for name, tensor in loaded.state_dict().items())
