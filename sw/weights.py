"""Building a zoo network with its weights: a checkpoint file, or deterministic seeded weights
whose BatchNorm statistics are calibrated on the sample photographs."""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

from . import zoo
from .data import calibration_batch

DEFAULT_SEED = 0


class WeightsError(Exception):
    """A checkpoint that does not fit the network."""


class UnknownNameError(Exception):
    """An unknown network or layer name."""


def check_network(net: str) -> str:
    if net not in zoo.NETWORKS:
        raise UnknownNameError(f"unknown network {net!r}; valid networks: {', '.join(zoo.NETWORKS)}")
    return net


def describe_file(path: Path) -> str:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    return f"checkpoint {path} (sha256 {digest})"


def load_state_dict_checked(model: nn.Module, path: str | Path) -> str:
    """Load a checkpoint into `model`, or raise WeightsError naming every missing and unexpected
    key and every shape mismatch. Loads with weights_only=True: a checkpoint is untrusted."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad file
        raise WeightsError(f"{path} is not a PyTorch checkpoint that loads with weights_only=True: {e}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path} does not hold a state_dict (a mapping of names to tensors)")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: file {tuple(state[k].shape)}, network {tuple(own[k].shape)}"
              for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        lines = [f"{path} does not fit {type(model).__name__}:"]
        if missing:
            lines.append(f"  missing keys ({len(missing)}): {', '.join(missing[:20])}"
                         + (" ..." if len(missing) > 20 else ""))
        if unexpected:
            lines.append(f"  unexpected keys ({len(unexpected)}): {', '.join(unexpected[:20])}"
                         + (" ..." if len(unexpected) > 20 else ""))
        if shapes:
            lines.append(f"  shape mismatches ({len(shapes)}): " + "; ".join(shapes[:20]))
        lines.append("  Is this the checkpoint of this network (torchvision names for torchvision models)?")
        raise WeightsError("\n".join(lines))
    model.load_state_dict(state)
    return describe_file(path)


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, images: torch.Tensor) -> None:
    """Set every BatchNorm's running statistics to those of `images` (one pass, train mode,
    cumulative average), so activations of a randomly initialised network have the ranges that
    real photographs give."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    if not bns:
        return
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    model(images)
    model.eval()
    for m in bns:
        m.momentum = 0.1


def build_model(net: str, weights: str | Path | None = None, seed: int = DEFAULT_SEED):
    """(float model in eval mode, description of its weights)."""
    check_network(net)
    model = zoo.NETWORKS[net][0]()
    if weights is not None:
        desc = load_state_dict_checked(model, weights)
    else:
        zoo.init_weights(model, seed)
        calibrate_batchnorm(model, calibration_batch())
        desc = (f"deterministic (seed {seed}, He init; BatchNorm statistics calibrated on the "
                f"scikit-learn sample photographs) -- not trained weights")
    model.eval()
    return model, desc
