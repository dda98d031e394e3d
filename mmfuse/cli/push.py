"""``mmfuse push RUN_OR_MODEL_DIR REPO_ID``: publish a model (config, weights, card) to the Hugging Face Hub."""

from __future__ import annotations

import argparse
from pathlib import Path

from mmfuse.errors import UsageError


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "push",
        help="upload a run's model (card filled from its metrics.json) or a saved model directory to the Hub",
    )
    parser.add_argument(
        "path",
        metavar="RUN_OR_MODEL_DIR",
        help="a run directory of `mmfuse train` (uses RUN/model, metrics.json and config.yaml) or a "
        "directory written by save_pretrained (uploaded as is)",
    )
    parser.add_argument(
        "repo_id", metavar="REPO_ID", help="the Hub repository, OWNER/NAME (created if needed)"
    )
    parser.add_argument("--private", action="store_true", help="create the repository as private")
    parser.add_argument("--branch", help="push to this branch instead of the default one")
    parser.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing")
    parser.add_argument("--token", help="Hub token (default: HF_TOKEN or the `hf auth login` token)")
    parser.add_argument("--message", default="Upload mmfuse model", help="commit message")
    parser.add_argument(
        "--replace-card",
        action="store_true",
        help="overwrite a README.md the repository already has (default: keep it, upload config and weights)",
    )
    parser.add_argument("--license", help="the card's license (default: apache-2.0)")
    parser.add_argument(
        "--tag",
        action="append",
        dest="tags",
        metavar="TAG",
        help="a card tag (repeatable; replaces the defaults)",
    )
    parser.add_argument(
        "--dataset",
        action="append",
        dest="datasets",
        metavar="ID",
        help="a Hub dataset id trained on (repeatable)",
    )
    parser.add_argument(
        "--base-model",
        action="append",
        dest="base_model",
        metavar="ID",
        help="a Hub model this one starts from",
    )
    parser.add_argument(
        "--with-space",
        metavar="SPACE_ID",
        help="also create the Gradio Space OWNER/NAME whose app.py serves this model with `mmfuse serve`'s page",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mmfuse.hub import CONFIG_FILE, from_pretrained, upload_model_files
    from mmfuse.runs import MODEL_DIR as RUN_MODEL_DIR
    from mmfuse.runs import RunDir

    folder = Path(args.path)
    from mmfuse.hub.names import checked_repo_id

    checked_repo_id(args.repo_id, "REPO_ID")  # both before anything is uploaded: never half a publication
    if args.with_space:
        checked_repo_id(args.with_space, "--with-space")
    upload = {
        "token": args.token,
        "private": args.private or None,
        "branch": args.branch,
        "create_pr": args.create_pr,
        "commit_message": args.message,
        "replace_card": args.replace_card,
    }
    run_dir = RunDir.named_by(folder)
    if run_dir is not None:
        model = run_dir.load_model()
        metrics, training_config = run_dir.read_metrics(), run_dir.read_config()
        card = {
            "license": args.license,
            "tags": args.tags,
            "datasets": args.datasets,
            "base_model": args.base_model,
        }
        url = model.push_to_hub(
            args.repo_id,
            metrics=metrics,
            training_config=training_config,
            **upload,
            **{k: v for k, v in card.items() if v is not None},
        )
    elif (folder / CONFIG_FILE).is_file():
        given = [
            f"--{n.replace('_', '-')}"
            for n in ("license", "tags", "datasets", "base_model")
            if getattr(args, n)
        ]
        if given:
            raise UsageError(
                f"{', '.join(given)} fill the card of a run directory; {folder} is a model directory whose "
                "README.md is uploaded as it is: edit its front matter instead"
            )
        from_pretrained(folder)  # never publish a model that does not load
        url = upload_model_files(folder, args.repo_id, **upload)
    else:
        raise FileNotFoundError(
            f"{folder} is neither a run directory (with {RUN_MODEL_DIR}/{CONFIG_FILE}) nor a model "
            f"directory (with {CONFIG_FILE})"
        )
    print(f"pushed {folder} to {args.repo_id}: {url}")
    if args.with_space:
        from mmfuse.space import push_space

        space = push_space(args.repo_id, args.with_space, token=args.token, private=args.private or None)
        print(f"demo Space {args.with_space}: {space}")
    return 0
