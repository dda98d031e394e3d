"""Register your own fusion block and use it by name.

python examples/custom_fusion.py
"""

import torch
import torch.nn.functional as F

import mmfuse
import mmfuse.registry


@mmfuse.register_fusion("channel_gate")
class ChannelGate(mmfuse.FusionBlock):
    """The auxiliary map's pooled descriptor gates the primary channels (squeeze-and-excitation style)."""

    def __init__(self, primary_channels: int, auxiliary_channels: int, hidden: int = 32) -> None:
        super().__init__(primary_channels, auxiliary_channels)
        self.gate = torch.nn.Sequential(
            torch.nn.Linear(auxiliary_channels, hidden),
            torch.nn.ReLU(),
            torch.nn.Linear(hidden, primary_channels),
        )

    def forward(self, primary, auxiliary):
        weights = torch.sigmoid(self.gate(F.adaptive_avg_pool2d(auxiliary, 1).flatten(1)))
        return primary * (1 + weights[:, :, None, None]), auxiliary


model = mmfuse.build_model("ammfm-swin", fusion="channel_gate", fusion_options={"hidden": 16})
print(mmfuse.registry.list_fusions())
print(type(model.fusion_blocks["2"]).__name__, model.config["fusion"], model.config["fusion_stages"])
