"""Our ``tformer`` preset computes what the authors' TFormer computes, given the same weights.

The reference logits were recorded once from the authors' code (see ``tests/tformer_reference.py`` and
the fixture's ``command`` and ``commit``); this test needs no reference code.
"""

from __future__ import annotations

import json
import re

import pytest
import torch
from tformer_reference import FIXTURE, SWIN_DEPTHS, reference_inputs, reference_value

import mmfuse

# The reference's fusion block i takes (clinical, dermoscopy) for i < 2 and (dermoscopy, clinical) after;
# our rounds[d][0] always updates the primary (dermoscopy) stream.
_BLOCK_PARTS = {
    "norm1": "norm1",
    "norm2": "norm2",
    "relative_position_bias_table": "attn.relative_position_bias_table",
    "to_q": "attn.to_q",
    "to_kv": "attn.to_kv",
    "proj": "attn.proj",
    "mlp.0": "mlp.fc1",
    "mlp.2": "mlp.fc2",
}
_COMBINER_PARTS = {
    "primary_proj.0": "fusion_head_der.0",
    "auxiliary_proj.0": "fusion_head_cli.0",
    "widen": "fusion_meta.layers.0.project_in",
    "narrow": "fusion_meta.layers.0.project_out",
    "attention.norm_query": "fusion_meta.layers.0.fn.x_norm1",
    "attention.norm_context": "fusion_meta.layers.0.fn.c_norm1",
    "attention.to_q": "fusion_meta.layers.0.fn.attn.to_q",
    "attention.to_kv": "fusion_meta.layers.0.fn.attn.to_kv",
    "attention.proj": "fusion_meta.layers.0.fn.attn.proj",
    "attention.norm_mlp": "fusion_meta.layers.0.fn.x_norm2",
    "attention.mlp.0": "fusion_meta.layers.0.fn.mlp.fc1",
    "attention.mlp.2": "fusion_meta.layers.0.fn.mlp.fc2",
}
# Our Derm7pt task → the reference's classifier for it.
_HEADS = {
    "DIAG": "fc_diag",
    "PN": "fc_pn",
    "BWV": "fc_bwn",
    "VS": "fc_vs",
    "PIG": "fc_pig",
    "STR": "fc_str",
    "DaG": "fc_dag",
    "RS": "fc_rs",
}
# Built by the reference (its config's 128-class Swin classifier), read by nothing in its forward pass.
_REFERENCE_UNUSED = re.compile(r"cli_vit\.head\.")


def reference_name(name: str) -> str | None:
    """The reference's name for one of our parameters (``None``: ours only, e.g. the branch heads)."""
    encoder = re.fullmatch(r"primary_encoder\.stages\.(\d)\.(\d)\.(.+)", name)
    if encoder:
        stage, part, rest = int(encoder[1]), int(encoder[2]), encoder[3]
        if stage == 0:
            return f"cli_vit.patch_embed.{rest}" if part == 0 else f"cli_vit.layers.0.blocks.{rest}"
        if stage == 1:
            return f"cli_vit.layers.0.downsample.{rest}"
        if part == 0:
            return f"cli_vit.layers.{stage - 1}.blocks.{rest}"
        return f"cli_vit.norm.{rest}" if stage == 4 else f"cli_vit.layers.{stage - 1}.downsample.{rest}"
    block = re.fullmatch(r"fusion_blocks\.(\d)\.rounds\.(\d)\.(\d)\.(.+)", name)
    if block:
        stage, depth, stream, rest = int(block[1]), block[2], int(block[3]), block[4]
        part, _, kind = rest.rpartition(".") if rest.endswith(("weight", "bias")) else (rest, "", "")
        reference_stream = 1 - stream if stage <= 2 else stream
        return f"fusion_block{stage - 1}.layers.{depth}.{reference_stream}.{_BLOCK_PARTS[part]}" + (
            f".{kind}" if kind else ""
        )
    merge = re.fullmatch(r"fusion_blocks\.(\d)\.merge\.(\d)\.(.+)", name)
    if merge:
        modality = "der" if merge[2] == "0" else "cli"
        return f"downsample_{modality}{'_0' if merge[1] == '2' else ''}.{merge[3]}"
    if name.startswith("metadata_encoder.net."):
        return name.replace("metadata_encoder.net.", "meta_subnet.rnn.model.")
    combiner = re.fullmatch(r"combiner\.(.+)\.(weight|bias)", name)
    if combiner:
        return f"{_COMBINER_PARTS[combiner[1]]}.{combiner[2]}"
    head = re.fullmatch(r"heads\.fusion\.classifiers\.(\w+)\.(weight|bias)", name)
    if head:
        return f"{_HEADS[head[1]]}.{head[2]}"
    return None


@pytest.fixture(scope="module")
def reference():
    return json.loads(FIXTURE.read_text())


@pytest.fixture(scope="module")
def ours():
    swin = {"depths": SWIN_DEPTHS}
    return mmfuse.build_model("tformer", primary_options=swin, auxiliary_options=swin)  # Derm7pt's 8 tasks


def test_every_reference_parameter_it_uses_has_one_of_ours(reference, ours):
    mapped = {reference_name(n): tuple(p.shape) for n, p in ours.named_parameters() if reference_name(n)}
    used = {n: tuple(s) for n, s in reference["parameters"].items() if not _REFERENCE_UNUSED.match(n)}
    assert mapped == used
    ours_only = {n.split(".")[1] for n, _ in ours.named_parameters() if reference_name(n) is None}
    assert ours_only == {"primary", "auxiliary"}  # the branch heads mmfuse trains besides


def test_logits_equal_the_reference_code_with_the_same_weights(reference, ours):
    with torch.no_grad():
        for name, parameter in ours.named_parameters():
            source = reference_name(name)
            if source is not None:
                parameter.copy_(reference_value(source, tuple(parameter.shape)))
        metadata, clinical, dermoscopy = reference_inputs()
        logits = ours.eval()(dermoscopy, clinical, metadata=metadata).logits["fusion"]
    assert set(logits) == set(_HEADS)
    for task, head in _HEADS.items():
        torch.testing.assert_close(logits[task], torch.tensor(reference["logits"][head]), rtol=0, atol=1e-5)
