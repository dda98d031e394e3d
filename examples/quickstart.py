"""Build AMMFM, run it on a random image pair, and print its parameter counts.

python examples/quickstart.py
"""

import torch

from mmfuse import build_model

model = build_model("ammfm-swin").eval()  # pretrained=True downloads timm's ImageNet weights
baseline = build_model("baseline-swin")

primary = torch.randn(1, 3, 224, 224)  # e.g. a dermoscopy image, ImageNet-normalised
auxiliary = torch.randn(1, 3, 224, 224)  # e.g. the clinical photograph of the same lesion

out = model(primary=primary, auxiliary=auxiliary)
print({head: tuple(out.logits[head]["DIAG"].shape) for head in out.logits})

probabilities = model.predict(primary=primary, auxiliary=auxiliary)  # Eq. 4, head weights 1/3 each
print("DIAG:", dict(zip(model.tasks[0].classes, probabilities["DIAG"][0].tolist(), strict=True)))
print("without the auxiliary image:", model.predict(primary=primary)["DIAG"][0].tolist())

millions = {
    name: sum(p.numel() for p in m.parameters()) / 1e6
    for name, m in (("ammfm-swin", model), ("baseline-swin", baseline))
}
print(", ".join(f"{name} {count:.2f} M" for name, count in millions.items()))
