"""report.html and evaluation outputs against edited, damaged and mismatched run files.

One tiny trained run (with robustness curves) is copied for each case, without its model so that the page
is built in a fraction of a second; every case edits the copy's files and runs ``mmfuse report``.
"""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from browser import browser_skip_reason, chromium
from hostile import assert_contract, assert_unchanged, fingerprint, invoke
from test_training_fixtures import make_release, tiny_config, write_config

from mmfuse.cli import main
from mmfuse.evaluation.html_report import CONTENT_SECURITY_POLICY

PAYLOAD = """"'><script>document.title="pwned"</script><img src=x onerror="document.title='pwned'">"""
COPIED = (
    "config.yaml",
    "log.csv",
    "metrics.json",
    "weight_search.json",
    "calibration.json",
    "robustness.json",
    "splits.csv",
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report-files")
    release = make_release(tmp / "derm7pt")
    run = tmp / "run"
    assert main(["train", str(write_config(tmp / "run.yaml", tiny_config(release))), "--out", str(run)]) == 0
    assert main(["evaluate", str(run), "--bootstrap", "20", "--robustness", "--corruptions", "jpeg"]) == 0
    return run


@pytest.fixture
def run(trained, tmp_path):
    """A copy of the trained run's files (no model), with its report built from them."""
    copy = tmp_path / "run"
    copy.mkdir()
    for name in COPIED:
        shutil.copy(trained / name, copy / name)
    assert main(["report", str(copy)]) == 0
    return copy


def _load(path: Path):
    return json.loads(path.read_text())


def _save(path: Path, content) -> None:
    path.write_text(json.dumps(content))


class _Scripts(HTMLParser):
    """Everything in a page that a browser could execute or fetch."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []
        self.csp: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "iframe", "object", "embed", "base", "form"):
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"{tag} {name}={value}")
            if name in ("src", "href", "action") and not (value or "").startswith(("data:", "#")):
                self.found.append(f"{tag} {name}={value}")
        if tag == "meta" and dict(attrs).get("http-equiv") == "Content-Security-Policy":
            self.csp.append(dict(attrs)["content"])


def _executable(page: str) -> _Scripts:
    parser = _Scripts()
    parser.feed(page)
    return parser


# -- item: every value is escaped, numbers are numbers, the page keeps its no-script promise --------------

RENAMED = {"test", "valid", "DIAG", "PN", "MEL", "NEV", "jpeg", "probabilities", "avg_auc"}


def _hostile(value):
    """Every string value and every free name (split, task, class, corruption) with PAYLOAD appended."""
    if isinstance(value, dict):
        return {(k + PAYLOAD if k in RENAMED else k): _hostile(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_hostile(v) for v in value]
    return value + PAYLOAD if isinstance(value, str) else value


@pytest.mark.slow
def test_script_in_every_string_of_the_run_files_is_shown_as_text_never_run(run, tmp_path):
    for name in ("metrics.json", "weight_search.json", "calibration.json", "robustness.json"):
        _save(run / name, _hostile(_load(run / name)))
    metrics = _load(run / "metrics.json")
    split = next(k for k in metrics if k.startswith("test"))
    metrics[split][PAYLOAD] = metrics[split]["primary"]  # a head named by the payload
    _save(run / "metrics.json", metrics)
    (run / "config.yaml").write_text(f"note: {json.dumps(PAYLOAD)}\n</pre>{PAYLOAD}\n")
    hostile_folder = tmp_path / "run<script>alert(1)<"
    run.rename(hostile_folder)
    assert main(["report", str(hostile_folder)]) == 0
    page = (hostile_folder / "report.html").read_text()
    scripts = _executable(page)
    assert scripts.found == []
    assert scripts.csp == [CONTENT_SECURITY_POLICY] and "script-src" not in CONTENT_SECURITY_POLICY
    assert page.count("&lt;script&gt;document.title=") >= 15  # the names are on the page, as text
    reason = browser_skip_reason()
    if reason:
        return
    with chromium() as driver:
        driver.get((hostile_folder / "report.html").resolve().as_uri())
        assert driver.title.startswith("mmfuse run report")
        assert driver.execute_script("return document.scripts.length") == 0


NUMERIC_SCRIPT = [
    ("weight_search.json", ("step",)),
    ("weight_search.json", ("score",)),
    ("metrics.json", ("test", "final", "ci", "resamples")),
    ("metrics.json", ("test", "final", "ci", "seed")),
    ("metrics.json", ("test", "final", "ci", "level")),
    ("metrics.json", ("test", "final", "avg_auc")),
    ("robustness.json", ("cases",)),
    ("robustness.json", ("auxiliary", "jpeg", 0, "severity")),
    ("calibration.json", ("test", "before", "mean_ece")),
    ("calibration.json", ("temperatures", "primary", "DIAG")),
]


def _set(document, path, value):
    node = document
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "path"), NUMERIC_SCRIPT, ids=lambda p: p if isinstance(p, str) else ".".join(map(str, p))
)
def test_script_in_a_numeric_field_is_refused_naming_the_file_and_key(run, name, path):
    document = _load(run / name)
    _set(document, path, PAYLOAD)
    _save(run / name, document)
    before = fingerprint(run)
    outcome = invoke("report", run)
    assert_contract(outcome, allowed=(1,), names=[run / name, "".join(f"[{json.dumps(k)}]" for k in path)])
    assert_unchanged(before, run)  # the previous page stays


# -- item: damaged run files are one error naming the file, never a traceback -----------------------------


def _edit(name, change):
    def apply(run: Path) -> None:
        path = run / name
        if name.endswith(".json"):
            document = _load(path)
            change(document)
            _save(path, document)
        else:
            path.write_text(change(path.read_text()))

    return apply


def _raw(name, text):
    def apply(run: Path) -> None:
        (run / name).write_bytes(text if isinstance(text, bytes) else text.encode())

    return apply


DAMAGED = {
    "metrics is a list": (
        _raw("metrics.json", "[]"),
        "metrics.json: the top level must be an object",
    ),
    "a split is a list": (_edit("metrics.json", lambda d: d.update(test=[1])), '["test"] must be an object'),
    "a string AUC": (
        _edit("metrics.json", lambda d: _set(d, ("test", "final", "avg_auc"), "0.8")),
        '["test"]["final"]["avg_auc"] must be a finite number in [0, 1] or null',
    ),
    "an AUC of 1e400": (
        _raw("metrics.json", '{"test": {"final": {"avg_auc": 1e400}}}'),
        '["avg_auc"] must be',
    ),
    "no final head": (
        _edit("metrics.json", lambda d: d["test"].pop("final")),
        '["test"]["final"] must be present',
    ),
    "missing tasks": (
        _edit("metrics.json", lambda d: d["test"]["final"].pop("tasks")),
        '["test"]["final"]["tasks"] must be present',
    ),
    "classes as a list": (
        _edit("metrics.json", lambda d: _set(d, ("test", "final", "tasks", "DIAG", "classes"), ["MEL"])),
        '["classes"] must be an object',
    ),
    "an interval of one value": (
        _edit("metrics.json", lambda d: _set(d, ("test", "final", "ci", "avg_auc"), [0.5])),
        '["ci"]["avg_auc"] must be a [low, high] interval',
    ),
    "an integer of 5000 digits": (
        _raw("metrics.json", '{"test": ' + "9" * 5000 + "}"),
        "metrics.json: not valid JSON",
    ),
    "deeply nested": (_raw("metrics.json", "[" * 100_000 + "]" * 100_000), "metrics.json: nested too deeply"),
    "not UTF-8": (_raw("metrics.json", b'{"test": "\xff"}'), "metrics.json: not UTF-8"),
    "weights as a list": (
        _edit("weight_search.json", lambda d: d.update(weights=[1, 0, 0])),
        '["weights"] must be an object',
    ),
    "surface point without fusion": (
        _edit("weight_search.json", lambda d: d["surface"][0].pop("fusion")),
        '["surface"][0]["fusion"] must be present',
    ),
    "ECE as a list": (
        _edit("calibration.json", lambda d: _set(d, ("test", "before", "ece"), [0.1])),
        '["test"]["before"]["ece"] must be an object',
    ),
    "temperatures of a head as a number": (
        _edit("calibration.json", lambda d: _set(d, ("temperatures", "primary"), 1.5)),
        '["temperatures"]["primary"] must be an object',
    ),
    "robustness without curves": (
        _edit("robustness.json", lambda d: [d.pop("auxiliary"), d.pop("primary")]),
        "robustness.json: the top level must be an object with the curves of",
    ),
    "robustness without clean": (
        _edit("robustness.json", lambda d: d.pop("clean")),
        '["clean"] must be present',
    ),
    "robustness curve cut short": (
        _edit("robustness.json", lambda d: d["primary"]["jpeg"].pop()),
        '["primary"]["jpeg"] must be as many severities as',
    ),
    "robustness curve missing a corruption": (
        _edit("robustness.json", lambda d: d["auxiliary"].pop("jpeg")),
        '["auxiliary"]["jpeg"] must be present',
    ),
    "log without epoch": (
        _edit("log.csv", lambda t: t.replace("epoch", "round", 1)),
        "log.csv: no 'epoch' column",
    ),
    "split sizes without a split column": (
        _edit("splits.csv", lambda t: t.replace("split", "fold", 1)),
        "splits.csv: no 'split' column",
    ),
    "log with a word for a number": (_edit("log.csv", lambda t: t.rstrip("\n") + "x\n"), "log.csv, row"),
    "log with an extra cell": (
        _edit("log.csv", lambda t: t + "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16\n"),
        "log.csv, row",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(DAMAGED))
def test_a_damaged_run_file_is_one_error_naming_it_and_the_page_is_kept(run, case):
    damage, message = DAMAGED[case]
    damage(run)
    before = fingerprint(run)
    outcome = invoke("report", run)
    assert_contract(outcome, allowed=(1,), names=[message])
    assert_unchanged(before, run)


# -- item: evaluation outputs record their data; outputs of other data are never mixed ----------------------


@pytest.mark.slow
def test_every_evaluation_output_records_the_data_it_was_computed_on(trained):
    metrics, robustness = _load(trained / "metrics.json"), _load(trained / "robustness.json")
    calibration, search = _load(trained / "calibration.json"), _load(trained / "weight_search.json")
    test = metrics["data"]["test"]
    assert set(test) == {"root", "format", "split", "cases", "fingerprint"}
    assert (
        test["split"] == "test" and test["format"] == "derm7pt" and test["fingerprint"].startswith("sha256:")
    )
    assert (
        test["cases"]
        == robustness["cases"]
        == len((trained / "predictions_test.csv").read_text().splitlines()) - 1
    )
    assert robustness["data"] == calibration["data"]["test"] == test
    assert search["data"]["split"] == "valid" and search["data"]["fingerprint"] != test["fingerprint"]
    assert robustness["primary_only"] is False


@pytest.fixture(scope="module")
def other_release(trained):
    return make_release(trained.parent / "other", seed=1)


@pytest.mark.slow
def test_robustness_on_other_data_is_refused_in_the_run_and_written_with_out(
    trained, other_release, tmp_path, capsys
):
    before = fingerprint(trained)
    args = ["evaluate", str(trained), "--data", str(other_release), "--bootstrap", "0", "--robustness"]
    outcome = invoke(*args, "--corruptions", "jpeg")
    assert_contract(outcome, allowed=(1,), names=["--out DIR", str(other_release)])
    assert_unchanged(before, trained)

    out = tmp_path / "other-eval"
    assert main([*args, "--corruptions", "jpeg", "--out", str(out)]) == 0
    robustness = _load(out / "robustness.json")
    assert robustness["data"]["root"] == str(other_release.resolve())
    assert robustness["data"] == _load(out / "metrics.json")["data"]["test"]
    assert robustness["data"]["fingerprint"] != _load(trained / "metrics.json")["data"]["test"]["fingerprint"]

    # that file copied into the run: the report refuses to show it beside the run's own metrics
    copy = tmp_path / "run"
    shutil.copytree(trained, copy, ignore=shutil.ignore_patterns("model", "checkpoints"))
    shutil.copy(out / "robustness.json", copy / "robustness.json")
    before = fingerprint(copy)
    outcome = invoke("report", copy)
    assert_contract(
        outcome,
        allowed=(1,),
        names=["robustness.json was computed on other data", str(other_release.resolve())],
    )
    assert_unchanged(before, copy)


@pytest.mark.slow
def test_robustness_primary_only_ignores_the_auxiliary_images_and_says_so(trained, tmp_path):
    out = tmp_path / "primary-only"
    args = [
        "evaluate",
        str(trained),
        "--bootstrap",
        "0",
        "--primary-only",
        "--robustness",
        "--corruptions",
        "jpeg",
    ]
    assert main([*args, "--out", str(out)]) == 0
    robustness, metrics = _load(out / "robustness.json"), _load(out / "metrics.json")
    assert robustness["primary_only"] is True
    assert "auxiliary" not in robustness and "absent" not in robustness["primary"]
    # the clean point is the --primary-only evaluation itself: the primary head alone answers
    assert robustness["clean"]["final"] == {k: metrics["test"]["final"][k] for k in ("avg_auc", "avg_acc")}
    assert robustness["clean"]["final"] == robustness["clean"]["primary"]
    assert main(["report", str(out)]) == 0
    assert "auxiliary images ignored (<code>--primary-only</code>)" in (out / "report.html").read_text()


@pytest.mark.slow
def test_robustness_into_the_run_is_refused_when_its_dataset_changed_since_training(trained, tmp_path):
    import csv

    run, release = tmp_path / "run", tmp_path / "release"
    shutil.copytree(trained, run, ignore=shutil.ignore_patterns("checkpoints"))
    original = _load(trained / "metrics.json")["data"]["test"]["root"]
    shutil.copytree(original, release)
    config = run / "config.yaml"
    config.write_text(config.read_text().replace(f"root: {original}\n", f"root: {release}\n"))
    table = release / "meta" / "meta.csv"
    with open(table, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:  # the same cases, relabelled since training
        row["streaks"] = "irregular" if row["streaks"] == "absent" else "absent"
    with open(table, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    before = fingerprint(run)
    outcome = invoke("evaluate", run, "--bootstrap", "0", "--robustness", "--corruptions", "jpeg")
    assert_contract(outcome, allowed=(1,), names=["was computed on other data than", run / "metrics.json"])
    assert_unchanged(before, run)


def _heading_and_title(page: str) -> tuple[str, str]:
    return page.split("<h1>", 1)[1].split("</h1>", 1)[0], page.split("<title>", 1)[1].split("</title>", 1)[0]


def test_the_first_screen_names_model_and_data_then_results_and_ends_with_the_configuration(run, trained):
    shutil.copytree(trained / "model", run / "model")
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    heading, title = _heading_and_title(page)
    assert heading == "ammfm-swin on derm7pt (derm7pt format)" and heading in title
    order = [page.index(marker) for marker in ("<h1>", 'class="headline"', 'id="metrics"', 'id="config"')]
    assert order == sorted(order)  # title, results, figures and tables, configuration last
    assert "<details open>" not in page[order[-1] :]  # the configuration is collapsed
    sizes = page.split('class="meta">', 1)[1].split("</p>", 1)[0]
    assert "backbones test_convnext + test_efficientnet" in sizes and "trained 20" in sizes
    assert "train " in sizes and "valid " in sizes and "test " in sizes


def test_the_headline_shows_what_the_weight_search_chose_and_each_heads_validation_score(run):
    search = _load(run / "weight_search.json")
    headline = (run / "report.html").read_text().split('class="headline"', 1)[1].split("</table>", 1)[0]
    for head, weight in search["weights"].items():
        row = headline.split(f"<td>{head}</td>", 1)[1].split("</tr>", 1)[0]
        assert f"<td>{weight:.2f}</td>" in row
        assert f"<td>{100 * search['head_scores'][head]:.1f}</td>" in row
    assert headline.index("<td>final</td>") < headline.index("<td>primary</td>")
    assert f"<td>{100 * search['score']:.1f}</td>" in headline.split("<td>final</td>", 1)[1].split("</tr>")[0]


def test_the_synthetic_banner_appears_exactly_for_synthetic_data(run):
    page = (run / "report.html").read_text()
    assert page.count('class="banner"') == 1 and "Synthetic data" in page
    root = Path(_load(run / "metrics.json")["data"]["test"]["root"])
    marker = root / "SYNTHETIC.json"
    hidden = marker.rename(root / "synthetic-provenance.json")  # the same release, no longer marked
    try:
        assert main(["report", str(run)]) == 0
    finally:
        hidden.rename(marker)
    page = (run / "report.html").read_text()
    assert 'class="banner"' not in page and "Synthetic data" not in page


def test_the_weight_surface_colours_span_the_scores_near_the_best_not_a_poor_corner():
    from mmfuse.evaluation.html_figures import surface_figure

    step = 0.1
    grid = [(i * step, j * step) for i in range(11) for j in range(11 - i)]
    points = [
        {"primary": p, "auxiliary": a, "fusion": max(0.0, 1 - p - a), "score": 0.85 + 0.05 * p}
        for p, a in grid
    ]
    points[0]["score"] = 0.10  # the fusion head alone learned nothing
    figure = surface_figure(points, {"primary": 1.0, "auxiliary": 0.0, "fusion": 0.0}, "avg_auc")
    low, high = figure.axes[0].collections[0].get_clim()
    assert high == pytest.approx(90.0) and low > 80.0  # the 5-point spread of the other points shows
