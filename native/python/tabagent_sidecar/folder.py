"""Checks on a model folder before transformers touches it: safetensors only, no custom code unless allowed."""
import json
import os


class RefusedModel(Exception):
    """The folder cannot be served as asked; the message says why and what to do."""


def read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise RefusedModel(f"{os.path.basename(path)} is not readable JSON: {err}") from err


def check_folder(path, trust_remote_code):
    if not os.path.isdir(path):
        raise RefusedModel(f"{path} is not a folder")
    config = read_json(os.path.join(path, "config.json"))
    if config is None:
        raise RefusedModel(f"{path} has no config.json: not a transformers model folder")
    if not isinstance(config, dict):
        raise RefusedModel("config.json must hold a JSON object")
    if config.get("auto_map") and not trust_remote_code:
        raise RefusedModel(
            "this model needs its own Python code (config.json has auto_map); it runs only when the model's "
            "config entry sets trustRemoteCode: true, after you have read that code"
        )
    names = os.listdir(path)
    if not any(n.endswith(".safetensors") for n in names):
        pickles = [n for n in names if n.endswith((".bin", ".pt", ".pth", ".ckpt"))]
        if pickles:
            raise RefusedModel(
                f"only pickle weights ({', '.join(sorted(pickles)[:3])}): the sidecar loads safetensors only, because "
                "unpickling runs arbitrary code. Convert the weights to safetensors and serve that folder"
            )
        raise RefusedModel("no weights: the folder holds no .safetensors file")
    return config
