"""FusionM4Net end to end on a synthetic release: train the first stage, fit the metadata second stage.

python examples/fusionm4net_second_stage.py [WORKDIR]

Tiny backbones and two epochs, so it runs in under a minute on a CPU; the same steps with the real
release and `examples/configs/paper.yaml --preset fusionm4net` reproduce the method (docs/choosing.md).
"""

import sys
import tempfile
import warnings
from pathlib import Path

import torch

from mmfuse.data import load_table
from mmfuse.data.formats.derm7pt import official_metadata_encoding
from mmfuse.data.synth import synthesize
from mmfuse.evaluation import (
    SecondStage,
    evaluation_dataset,
    final_probabilities,
    head_metrics,
    predict_split,
)
from mmfuse.pipeline import train
from mmfuse.training import resolve

work = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp())
warnings.simplefilter("ignore", UserWarning)  # tiny splits: some tasks show one class only
data = {"root": str(synthesize(work / "derm7pt", cases=60, size=40, seed=0).root)}
config = resolve(
    {
        "model": {
            "preset": "fusionm4net",
            "primary": "test_resnet",
            "auxiliary": "test_resnet",
            "img_size": 32,
            "head_options": {"hidden": [32, 16]},
        },
        "data": data,
        "train": {"epochs": 2, "batch_size": 8, "lr": 1e-3, "swa": {"epochs": 0}},
        "evaluation": {"tta": False, "plots": False},
    }
)
model = train(config, work / "run", evaluate=False, progress=False).model.eval()

# Stage one's Eq. 4 probabilities on cases it did not train on (validation) and on the test split.
table, encoding = load_table(data), official_metadata_encoding()
stage_one, metadata, labels = {}, {}, {}
for split in ("valid", "test"):
    predictions = predict_split(model, evaluation_dataset(model, data, split))
    stage_one[split] = final_probabilities(predictions, model.head_weights_dict)
    metadata[split] = encoding.encode([r.metadata for r in table.split_records(split)])[0]
    labels[split] = predictions.labels

second = SecondStage(model.tasks, classifier="logistic").fit(
    stage_one["valid"], metadata["valid"], labels["valid"]
)
stage_two = second.predict_proba(stage_one["test"], metadata["test"])
for name, probabilities in (("first stage", stage_one["test"]), ("second stage, with metadata", stage_two)):
    report = head_metrics(probabilities, labels["test"], model.tasks)
    print(f"{name}: test AVG AUC {report['avg_auc']:.3f}, AVG ACC {report['avg_acc']:.3f}")
assert all(torch.allclose(stage_two[t.name].sum(1), torch.ones(len(labels["test"]))) for t in model.tasks)
