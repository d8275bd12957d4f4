"""Device and dtype choice: CUDA, then Apple MPS, then CPU; bf16 (or fp16) on a GPU, fp32 on the CPU."""
import torch

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def pick_device(wanted: str) -> str:
    if wanted in ("", "auto"):
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    if wanted.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device '{wanted}' was asked for, but torch sees no CUDA device (torch {torch.__version__})")
    if wanted == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise RuntimeError("device 'mps' was asked for, but this torch build has no usable MPS")
    return wanted


def pick_dtype(wanted: str, device: str):
    if wanted not in ("", "auto"):
        if wanted not in DTYPES:
            raise RuntimeError(f"dtype '{wanted}' is not one of auto, {', '.join(DTYPES)}")
        return DTYPES[wanted]
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "mps":
        return torch.float16
    return torch.float32
