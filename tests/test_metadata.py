"""Patient metadata as a third input: encoding, data formats, the model, missing metadata, training."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from test_training_fixtures import make_release, tiny_config

import mmfuse
from mmfuse.data import fit_metadata_encoding, load_table
from mmfuse.data.formats.derm7pt import METADATA_FIELDS, official_metadata_encoding
from mmfuse.data.formats.paired_csv import read_schema
from mmfuse.head_mixing import mix_heads
from mmfuse.metadata import MetadataEncoding

REPO = Path(__file__).resolve().parents[1]
TRAIN_ROWS = [
    {"sex": "female", "age": "30"},
    {"sex": "male", "age": "50"},
    {"sex": "", "age": "unknown"},
]


def test_encoding_equals_a_hand_computed_example():
    encoding = MetadataEncoding.fit(TRAIN_ROWS, ["sex", {"column": "age", "type": "numeric"}])
    assert encoding.columns == ["sex=female", "sex=male", "age"]
    # age: training mean 40, population std 10 (the third row has no age and does not count).
    values, present, report = encoding.encode(
        [*TRAIN_ROWS, {"sex": "Male", "age": "70"}, {"sex": "other", "age": "forty"}]
    )
    expected = torch.tensor(
        [
            [1.0, 0.0, -1.0],
            [0.0, 1.0, 1.0],
            [0.0, 0.0, 0.0],  # both missing: zeros, and the case counts as without metadata
            [0.0, 1.0, 3.0],  # a validation value is standardised with the training statistics
            [0.0, 0.0, 0.0],  # an unseen category and text in a numeric field: unknown, reported
        ]
    )
    assert torch.equal(values, expected)
    assert present.tolist() == [True, True, False, True, False]
    assert report.missing == {"sex": 1, "age": 1}
    assert report.unknown == {"sex": 1, "age": 1} and report.examples == {"sex": ["other"], "age": ["forty"]}
    assert report.absent == 2 and "2 cases without any metadata" in report.describe()


def test_encoding_round_trips_as_plain_data():
    encoding = MetadataEncoding.fit(TRAIN_ROWS, ["sex", "age"])
    assert encoding.fields[1].kind == "numeric"  # inferred: every training value that is present parses
    again = MetadataEncoding.from_dict(encoding.to_dict())
    assert again == encoding and again.size == 3
    with pytest.raises(ValueError, match="kind must be one of"):
        MetadataEncoding.from_dict({"fields": [{"name": "x", "kind": "ordinal"}]})


def test_fit_errors_name_the_field():
    with pytest.raises(ValueError, match="'height' is not in the data"):
        MetadataEncoding.fit(TRAIN_ROWS, ["height"])


def test_derm7pt_official_vector_has_20_values_in_the_reference_order():
    encoding = official_metadata_encoding()
    assert encoding.size == 20
    assert [f.name for f in METADATA_FIELDS] == ["difficulty", "elevation", "location", "sex", "management"]
    row = {
        "difficulty": "high",
        "elevation": "nodular",
        "location": "acral",
        "sex": "male",
        "management": "excision",
    }
    values, present, _ = encoding.encode([row])
    assert values[0].nonzero().flatten().tolist() == [2, 5, 12, 16, 17] and present.all()


def _real_meta() -> Path | None:
    path = Path(os.environ.get("MMFUSE_DERM7PT_META", REPO.parent / "shared" / "derm7pt" / "meta.csv"))
    return path if path.is_file() else None


@pytest.mark.skipif(_real_meta() is None, reason="the real Derm7pt meta.csv is not available here")
def test_the_official_vector_covers_every_real_derm7pt_case():
    from mmfuse.data.records import read_table

    _, rows = read_table(_real_meta())
    records = [
        {
            key: row[column]
            for key, column in {
                "difficulty": "level_of_diagnostic_difficulty",
                "elevation": "elevation",
                "location": "location",
                "sex": "sex",
                "management": "management",
            }.items()
        }
        for row in rows
    ]
    values, present, report = official_metadata_encoding().encode(records)
    assert len(rows) == 1011 and present.all() and not report.unknown
    assert torch.equal(values.sum(dim=1), torch.full((1011,), 5.0))  # one category per field


def test_derm7pt_adapter_fits_on_the_training_split(tmp_path):
    release = make_release(tmp_path / "derm7pt", cases=30)
    encoding, report = fit_metadata_encoding({"root": str(release), "metadata": True})
    assert encoding == official_metadata_encoding()
    assert report.cases == len(load_table({"root": str(release)}).split_records("train"))
    picked, _ = fit_metadata_encoding({"root": str(release), "metadata": ["sex", "elevation"]})
    assert picked.columns[:2] == ["sex=female", "sex=male"]


def test_paired_csv_metadata_columns_are_typed_in_the_schema(tmp_path):
    (tmp_path / "cases.csv").write_text(
        "case,p,a,split,age,site,DIAG\n"
        "1,x.png,,train,20,head,benign\n"
        "2,y.png,,train,40,trunk,malignant\n"
        "3,z.png,,valid,,limb,benign\n"
        "4,w.png,,test,99,head,malignant\n"
    )
    schema = tmp_path / "schema.yaml"
    schema.write_text(
        "table: cases.csv\nprimary: p\nauxiliary: a\ncase_id: case\nsplit: split\n"
        "metadata: [age, {column: site, type: categorical}]\n"
        "tasks: [{name: DIAG, classes: [benign, malignant]}]\n"
    )
    assert read_schema(schema).metadata == ("age", "site")
    config = {"format": "paired_csv", "root": str(tmp_path), "schema": str(schema), "metadata": True}
    encoding, report = fit_metadata_encoding(config)
    # Statistics of the two training rows only: age mean 30, std 10; sites seen in training only.
    assert encoding.to_dict()["fields"] == [
        {"name": "age", "kind": "numeric", "mean": 30.0, "std": 10.0},
        {"name": "site", "kind": "categorical", "categories": ["head", "trunk"]},
    ]
    valid = load_table(config).split_records("valid")
    values, present, report = encoding.encode([r.metadata for r in valid])
    assert values.tolist() == [[0.0, 0.0, 0.0]] and not present.any()
    assert report.missing == {"age": 1} and report.unknown == {"site": 1}


def _metadata_model(tiny_model_kwargs, **overrides):
    encoding = MetadataEncoding.fit(TRAIN_ROWS, ["sex", "age"])
    return mmfuse.build_model(
        "ammfm-swin",
        metadata=encoding,
        metadata_encoder_options={"hidden": 8, "out_features": 4},
        **tiny_model_kwargs,
        **overrides,
    ).eval()


def test_metadata_is_an_optional_third_input(tiny_model_kwargs, image_pair):
    model = _metadata_model(tiny_model_kwargs)
    primary, auxiliary = image_pair
    metadata = torch.tensor([[1.0, 0.0, -1.0], [0.0, 1.0, 1.0]])
    out = model(primary=primary, auxiliary=auxiliary, metadata=metadata)
    assert set(out.logits) == {"primary", "auxiliary", "fusion"} and out.features["metadata"].shape == (2, 4)
    assert (
        model.combiner.out_features
        == model.primary_encoder.channels[-1] + model.auxiliary_encoder.channels[-1] + 4
    )
    other = model(primary=primary, auxiliary=auxiliary, metadata=metadata.flip(0))
    assert not torch.allclose(out.logits["fusion"]["DIAG"], other.logits["fusion"]["DIAG"])
    assert torch.equal(out.logits["primary"]["DIAG"], other.logits["primary"]["DIAG"])
    with pytest.raises(ValueError, match="makes 3"):
        model(primary=primary, auxiliary=auxiliary, metadata=torch.zeros(2, 5))


def test_missing_metadata_is_handled_like_a_missing_auxiliary_image(tiny_model_kwargs, image_pair):
    model = _metadata_model(tiny_model_kwargs)
    primary, auxiliary = image_pair
    without = model(primary=primary, auxiliary=auxiliary)
    assert set(without.logits) == {"primary", "auxiliary"}  # the fusion head needs metadata: dropped
    metadata = torch.tensor([[1.0, 0.0, -1.0], [0.0, 1.0, 1.0]])
    mixed = model.predict(
        primary=primary, auxiliary=auxiliary, metadata=metadata, metadata_present=torch.tensor([True, False])
    )
    full = model.predict(primary=primary, auxiliary=auxiliary, metadata=metadata)
    none = model.predict(primary=primary, auxiliary=auxiliary)
    for task in mixed:
        # Row 1 lacks metadata: it gets exactly the answer of a call without metadata; row 0 the full one.
        assert torch.allclose(mixed[task][1], none[task][1], atol=1e-6)
        assert torch.allclose(mixed[task][0], full[task][0], atol=1e-6)
        assert not torch.allclose(full[task][1], none[task][1])


def test_eq4_renormalises_per_row_over_the_heads_present():
    p = {h: {"T": torch.tensor([[1.0, 0.0], [1.0, 0.0]])} for h in ("primary", "auxiliary")}
    p["fusion"] = {"T": torch.tensor([[0.0, 1.0], [0.0, 1.0]])}
    weights = {"primary": 0.25, "auxiliary": 0.25, "fusion": 0.5}
    mixed = mix_heads(p, weights, head_present={"fusion": torch.tensor([True, False])})["T"]
    assert torch.allclose(mixed, torch.tensor([[0.5, 0.5], [1.0, 0.0]]))
    only_fusion = mix_heads(
        p, {"primary": 0, "auxiliary": 0, "fusion": 1}, head_present={"fusion": torch.tensor([False, True])}
    )
    assert torch.allclose(only_fusion["T"], torch.tensor([[1.0, 0.0], [0.0, 1.0]]))


def test_models_without_metadata_are_unchanged(tiny_model_kwargs, image_pair):
    model = mmfuse.build_model("ammfm-swin", **tiny_model_kwargs)
    assert not model.uses_metadata and model.metadata_encoder is None
    assert "heads.fusion.classifiers.DIAG.weight" in model.state_dict()
    assert not any(k.startswith(("combiner.", "metadata_encoder.")) for k in model.state_dict())
    with pytest.raises(ValueError, match="no metadata input"):
        model(primary=image_pair[0], auxiliary=image_pair[1], metadata=torch.zeros(2, 3))


def test_saved_model_keeps_its_encoding(tiny_model_kwargs, tmp_path, image_pair):
    model = _metadata_model(tiny_model_kwargs)
    model.save_pretrained(tmp_path / "m")
    loaded = mmfuse.from_pretrained(tmp_path / "m")
    assert loaded.metadata_encoding == model.metadata_encoding
    metadata, present = loaded.encode_metadata([{"sex": "male", "age": "60"}, {}])
    assert metadata.tolist() == [[0.0, 1.0, 2.0], [0.0, 0.0, 0.0]] and present.tolist() == [True, False]
    a = model(primary=image_pair[0], auxiliary=image_pair[1], metadata=metadata).logits["fusion"]["DIAG"]
    b = loaded(primary=image_pair[0], auxiliary=image_pair[1], metadata=metadata).logits["fusion"]["DIAG"]
    assert torch.allclose(a, b)


@pytest.mark.slow
def test_training_with_metadata_fits_on_train_and_evaluates(tmp_path, capsys):
    from mmfuse.pipeline import train

    release = make_release(tmp_path / "derm7pt", cases=24, size=32)
    config = tiny_config(
        release,
        data={"metadata": ["sex", "elevation", "location"]},
        train={"epochs": 1, "swa": {"epochs": 0, "anneal_epochs": 1}},
    )
    result = train(config, tmp_path / "run", evaluate=True, progress=False)
    model = result.model
    assert model.uses_metadata and model.metadata_encoding.columns[0] == "sex=female"
    assert "fusion" in result.metrics["test"]
    assert "metadata of" in capsys.readouterr().err
    loaded = mmfuse.from_pretrained(tmp_path / "run" / "model")
    assert loaded.metadata_encoding == model.metadata_encoding

    import json

    from mmfuse.cli import main

    case = load_table({"root": str(release)}).split_records("test")[0]
    predict = ["predict", str(tmp_path / "run"), "--primary", str(case.primary_path), "--json"]
    predict += ["--auxiliary", str(case.auxiliary_path or case.primary_path)]
    capsys.readouterr()
    assert main([*predict, "--metadata", "sex=male", "--metadata", "location=back"]) == 0
    assert json.loads(capsys.readouterr().out)["metadata_used"] is True
    assert main(predict) == 0
    assert json.loads(capsys.readouterr().out)["metadata_used"] is False


def test_onnx_export_of_a_metadata_model_takes_the_metadata_as_a_third_input(
    tiny_model_kwargs, tmp_path, image_pair
):
    import numpy as np

    from mmfuse.export import export_onnx, onnx_session

    model = _metadata_model(tiny_model_kwargs)
    report = export_onnx(model, tmp_path / "m.onnx")  # parity with torch, metadata included, checked
    session = onnx_session(report.path)
    assert [i.name for i in session.get_inputs()] == ["primary", "auxiliary", "metadata"]
    rows = torch.tensor([[1.0, 0.0, -1.0], [0.0, 1.0, 1.0]])
    feed = {"primary": image_pair[0].numpy(), "auxiliary": image_pair[1].numpy(), "metadata": rows.numpy()}
    outputs = session.run(None, feed)
    expected = model.predict(*image_pair, metadata=rows)
    for task, out in zip(model.tasks, outputs, strict=True):
        np.testing.assert_allclose(out, expected[task.name].numpy(), atol=1e-4)
    # An input of the graph, not a constant folded in: other metadata, other probabilities.
    feed["metadata"] = rows.flip(0).numpy()
    assert not np.allclose(session.run(None, feed)[0], outputs[0], atol=1e-6)
    primary_only = export_onnx(model, tmp_path / "p.onnx", modalities=("primary",))
    assert [i.name for i in onnx_session(primary_only.path).get_inputs()] == ["primary"]


def test_data_stats_reports_missing_metadata_per_split(tmp_path, capsys):
    import csv
    import json

    from mmfuse.cli import main

    release = make_release(tmp_path / "derm7pt", cases=30)
    meta = release / "meta" / "meta.csv"
    rows = list(csv.DictReader(meta.open()))
    rows[0]["sex"], rows[1]["location"] = "", "elbow"  # one missing value, one unknown category
    with meta.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert main(["data", "stats", "derm7pt", str(release), "--metadata", "--json"]) == 0
    reports = json.loads(capsys.readouterr().out)["metadata"]
    assert sum(r["missing"].get("sex", 0) for r in reports.values()) == 1
    assert sum(r["unknown"].get("location", 0) for r in reports.values()) == 1
    assert main(["data", "stats", "derm7pt", str(release), "--metadata"]) == 0
    assert "1 unknown ['elbow']" in capsys.readouterr().out
