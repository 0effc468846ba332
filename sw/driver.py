"""Host side of one engine run, free of any transport: lay out memory, compute the register
values, decode the output. A transport (the simulator here; a serial link on a board) loads the
images, writes the registers, starts, waits, and reads back."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import fmformat, layout, regs


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

    def golden(self, eps: int = 0) -> np.ndarray:
        """The expected output: the golden arithmetic (sw/quant.py) on this spec."""
        from . import quant
        from .golden import conv2d_int
        acc = conv2d_int(quant.prune(self.input, eps), self.weight, self.bias, self.stride, self.padding,
                         self.input.shape[0] if self.depthwise else 1)
        return quant.requantize(acc, self.multiplier, self.shift, quant.Activation("clamp", self.clamp_lo, self.clamp_hi))

    def crop(self, size: int) -> "LayerSpec":
        """The centre size x size of the input (a shorter simulation of the same layer)."""
        c, h, w = self.input.shape
        k = self.weight.shape[-1]
        size = max(size, k - 2 * self.padding)
        if size >= h and size >= w:
            return self
        y0, x0 = max(0, (h - size) // 2), max(0, (w - size) // 2)
        x = np.ascontiguousarray(self.input[:, y0:y0 + size, x0:x0 + size])
        return LayerSpec(f"{self.name}[crop {x.shape[1]}x{x.shape[2]}]", x, self.weight, self.bias, self.multiplier,
                         self.shift, self.stride, self.padding, self.depthwise, self.clamp_lo, self.clamp_hi)

    @classmethod
    def from_qlayer(cls, name: str, layer, x) -> "LayerSpec":
        """The engine's part of a golden-model layer. Leaky ReLU is not fused: the engine clamps to
        [-128, 127] (as the golden model does before the slope) and the host applies the slope."""
        return cls(name, x, layer.weight, layer.bias, layer.multiplier, layer.shift, layer.stride, layer.padding,
                   layer.kind == "depthwise", layer.act.lo, layer.act.hi)

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
            in_base: int = 0, w_base: int = 0, out_base: int = 0, weight_buffer: bool = False) -> Job:
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
             OUT_BASE=out_base, WEIGHT_BUFFER=int(weight_buffer))
    assert set(r) == set(regs.DESCRIPTOR)
    if in_base:
        fm_image = bytes(in_base) + fm_image
    if w_base:
        all_words = [0] * w_base + all_words
    return Job(r, fm_image, all_words, fmformat.region_bytes(ko, ho, wo, out_layout), traffic,
               dict(out_layout=out_layout, out_shape=(ko, ho, wo), out_base=out_base, lanes=lanes,
                    weight_buffer=bool(weight_buffer)))


def decode_output(job: Job, out_memory: bytes) -> np.ndarray:
    base = job.extra["out_base"]
    return fmformat.decode(out_memory[base:base + job.out_bytes], *job.extra["out_shape"], job.extra["out_layout"])


class Transport:
    """Executes a prepared Job on an engine: loads the memory images, writes the registers,
    starts, waits (with a cycle budget), reads back. Returns a dict with at least `out` (bytes of
    the output region), `counters` (register name -> value), `error`, `timeout`."""

    def execute(self, job: Job) -> dict:
        raise NotImplementedError


def check_run(name: str, job: Job, result: dict) -> np.ndarray:
    """A transport's result for `job`, checked and decoded. Raises if the engine was still busy
    when the budget ran out, if it refused the descriptor, or if the output read back is not what
    the engine says it wrote, or if the engine's ID register (when the result has it) is not that
    of an engine with the job's lane count. OUT_BYTES must equal the bytes the decoded output
    takes in its layout.
    A run that ended early or wrote part of its output fails this, and in the compressed layout
    (whose size depends on the values) so does, almost always, an output read back stale or from
    the wrong place. A dense run writes its whole region, so there only the count is checked."""
    if "id" in result and result["id"] != regs.engine_id(job.extra["lanes"]):
        raise RuntimeError(f"{name}: the engine's ID register reads 0x{result['id']:08X}, not 0x"
                           f"{regs.engine_id(job.extra['lanes']):08X} (an fmprune engine of {job.extra['lanes']} lanes): "
                           f"prepare the job for the engine's lane count")
    if result.get("timeout"):
        raise RuntimeError(f"{name}: the engine was still busy when the cycle budget ran out")
    if result.get("error"):
        code = result["error"]
        err, meaning = regs.ERRORS.get(code, ("UNKNOWN", "unknown"))
        raise RuntimeError(f"{name}: the engine refused the layer: error {code} {err} ({meaning})")
    again = "Run the layer again; if it repeats, the engine or the link is faulty"
    try:
        y = decode_output(job, result["out"])
    except ValueError as e:
        raise RuntimeError(f"{name}: the output read back does not decode ({e}): a stale or partial result. "
                           f"{again}") from None
    _, written = fmformat.encode(y, job.extra["out_layout"])
    reported = int(result["counters"]["OUT_BYTES"])
    if reported != written.total:
        raise RuntimeError(f"{name}: the engine reports {reported} output bytes written, but the output read back "
                           f"takes {written.total} in the {job.extra['out_layout']} layout: a stale or partial "
                           f"result. {again}")
    return y


def run_layer(spec: LayerSpec, transport: Transport, lanes: int, **options) -> tuple[np.ndarray, dict]:
    """Encode, run, check and decode: the engine's output tensor and the transport's result."""
    job = prepare(spec, lanes, **options)
    result = transport.execute(job)
    y = check_run(spec.name, job, result)
    result["job"] = job
    return y, result
