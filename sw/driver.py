"""Host side of one engine run, free of any transport: lay out memory, compute the register
values, decode the output. A transport (the simulator here; a serial link on a board) loads the
images, writes the registers, starts, waits, and reads back."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..hw import regs
from . import fmformat, layout


@dataclass
class LayerSpec:
    """One layer as the engine runs it (the content of `fmprune golden`'s files)."""
    name: str
    input: np.ndarray            # int8 C x H x W
    weight: np.ndarray           # int8 K x C/g x k x k
    bias: np.ndarray             # int32 K
    multiplier: np.ndarray
    shift: np.ndarray
    stride: int
    padding: int
    depthwise: bool
    clamp_lo: int
    clamp_hi: int

    @property
    def out_shape(self):
        c, h, w = self.input.shape
        k = self.weight.shape[-1]
        return (self.weight.shape[0], (h + 2 * self.padding - k) // self.stride + 1,
                (w + 2 * self.padding - k) // self.stride + 1)

    @classmethod
    def from_files(cls, folder) -> "LayerSpec":
        import json
        from pathlib import Path
        d = Path(folder)
        meta = json.loads((d / "meta.json").read_text())
        if meta["activation"] == "leaky":
            raise ValueError(f"{meta['layer']}: leaky ReLU is not fused in the engine")
        ld = {n: np.load(d / f"{n}.npy") for n in ("input", "weight", "bias", "multiplier", "shift")}
        return cls(meta["layer"], ld["input"], ld["weight"], ld["bias"], ld["multiplier"], ld["shift"],
                   meta["stride"], meta["padding"], meta["kind"] == "depthwise", meta["clamp_min"], meta["clamp_max"])


@dataclass
class Job:
    """Memory images and register values for one run."""
    regs: dict
    fm_image: bytes
    w_words: list                # ints, P bytes each (lane 0 in the low byte)
    out_bytes: int               # size of the output region
    in_traffic: fmformat.Traffic
    extra: dict = field(default_factory=dict)


def words_to_ints(words: np.ndarray) -> list:
    u = words.astype(np.int8).view(np.uint8).astype(object)
    return [sum(int(b) << (8 * i) for i, b in enumerate(row)) for row in u]


def prepare(spec: LayerSpec, lanes: int, *, eps: int = 0, dense_mode: bool = False,
            in_layout: str = "compressed", out_layout: str = "compressed", eps_out: int = 0,
            in_base: int = 0, w_base: int = 0, out_base: int = 0) -> Job:
    layout.check_lanes(lanes)
    c, h, w = spec.input.shape
    kout, cg, k, _ = spec.weight.shape
    ko, ho, wo = spec.out_shape
    fm_image, traffic = fmformat.encode(spec.input, in_layout, eps=0)
    wwords = layout.pack_weights(spec.weight, lanes, spec.depthwise)
    pwords = layout.pack_params(spec.bias, spec.multiplier, spec.shift, lanes).reshape(-1, lanes)
    p_base = w_base + len(wwords)
    all_words = words_to_ints(np.concatenate([wwords, pwords.view(np.int8)]))
    r = dict(KERNEL=k, STRIDE=spec.stride, PAD=spec.padding, DEPTHWISE=int(spec.depthwise),
             DENSE_MODE=int(dense_mode), IN_LAYOUT=int(in_layout == "compressed"),
             OUT_LAYOUT=int(out_layout == "compressed"), CLAMP_LO=spec.clamp_lo & 0xFF,
             CLAMP_HI=spec.clamp_hi & 0xFF, EPS_IN=eps, EPS_OUT=eps_out, IN_C=c, IN_H=h, IN_W=w,
             OUT_K=kout, OUT_H=ho, OUT_W=wo, IN_BASE=in_base, W_BASE=w_base, P_BASE=p_base,
             OUT_BASE=out_base)
    assert set(r) == set(regs.DESCRIPTOR)
    if in_base:
        fm_image = bytes(in_base) + fm_image
    if w_base:
        all_words = [0] * w_base + all_words
    return Job(r, fm_image, all_words, fmformat.region_bytes(ko, ho, wo, out_layout), traffic,
               dict(out_layout=out_layout, out_shape=(ko, ho, wo), out_base=out_base))


def decode_output(job: Job, out_memory: bytes) -> np.ndarray:
    base = job.extra["out_base"]
    return fmformat.decode(out_memory[base:base + job.out_bytes], *job.extra["out_shape"], job.extra["out_layout"])
