"""Execution-provider profiles: which onnxruntime backend runs a package, and proof that it does.

onnxruntime silently falls back to the CPU when a GPU or NPU provider cannot load (missing CUDA
libraries, a driver update, the wrong wheel). A clinic would then get correct but slow images;
a hospital would blame the model for the latency. So after every session is made we read
`session.get_providers()` and compare it with what was asked: the `auto` profile logs what it
got; a profile the user named that did not load is a `HidiffError` saying what is missing.

Profiles (see docs/runtime.md; only `cpu` and `auto`-on-CPU have run on real hardware here):
- `cuda`: TensorRT when present (fp16 engines, engine cache), else CUDA; fp16 graphs
  preferred; IO binding with OrtValues so the encoder's features stay on the GPU across steps.
- `openvino`: Intel CPU / GPU / NPU through the OpenVINO provider (`openvino:GPU`, `openvino:NPU`).
- `qnn`: Qualcomm NPU (HTP backend); int8 graphs preferred.
- `coreml`: Apple Neural Engine / GPU (ML Program format).
- `directml`: any DirectX 12 GPU on Windows.
- `cpu`: threads from the machine, full graph optimisation, optimised model cached on disk.
- `auto`: the first of cuda, coreml, directml, openvino, qnn, cpu that this onnxruntime offers.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnxruntime as ort

from edge_runtime.atomic import atomic_write_text
from edge_runtime.errors import HidiffError
from edge_runtime.machine import cpu_model

log = logging.getLogger("hidiff.providers")

CPU_EP = "CPUExecutionProvider"
GraphOptimization = Literal["disable", "basic", "extended", "all"]
_OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


@dataclass(frozen=True)
class Profile:
    """One way of running a package: onnxruntime providers in order of preference."""

    name: str
    providers: tuple[str, ...]
    # Package precisions to use, best first, when the package ships several.
    precisions: tuple[str, ...]
    # OrtValue device of IO binding ("cpu" means plain numpy feeds are as fast).
    device: str
    io_binding: bool
    # What to install when none of `providers` loads.
    needs: str


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            "cuda",
            ("TensorrtExecutionProvider", "CUDAExecutionProvider"),
            ("fp16", "fp32"),
            device="cuda",
            io_binding=True,
            needs="onnxruntime-gpu (instead of onnxruntime) with the CUDA 12 and cuDNN 9 "
            "libraries on the library path; TensorRT 10 optional; an NVIDIA driver",
        ),
        Profile(
            "openvino",
            ("OpenVINOExecutionProvider",),
            ("int8", "fp16", "fp32"),
            device="cpu",
            io_binding=False,
            needs="onnxruntime-openvino (instead of onnxruntime) and, for GPU/NPU, Intel's "
            "GPU or NPU driver",
        ),
        Profile(
            "qnn",
            ("QNNExecutionProvider",),
            ("int8", "fp16", "fp32"),
            device="cpu",
            io_binding=False,
            needs="onnxruntime-qnn on a Snapdragon device (Windows on ARM or Android) with the "
            "QNN HTP backend library",
        ),
        Profile(
            "coreml",
            ("CoreMLExecutionProvider",),
            ("fp16", "fp32"),
            device="cpu",
            io_binding=False,
            needs="macOS with the onnxruntime wheel for macOS (it includes CoreML)",
        ),
        Profile(
            "directml",
            ("DmlExecutionProvider",),
            ("fp16", "fp32"),
            device="cpu",
            io_binding=False,
            needs="Windows with onnxruntime-directml (instead of onnxruntime) and a DirectX 12 GPU",
        ),
        Profile(
            "cpu",
            (CPU_EP,),
            ("fp32", "int8"),
            device="cpu",
            io_binding=False,
            needs="onnxruntime",
        ),
    )
}
AUTO_ORDER: tuple[str, ...] = ("cuda", "coreml", "directml", "openvino", "qnn", "cpu")
PROFILE_NAMES: tuple[str, ...] = ("auto", *AUTO_ORDER)


def hidiff_cache_root() -> Path:
    """The runtime's own cache: $HIDIFF_CACHE_DIR, else $XDG_CACHE_HOME/hidiff or ~/.cache/hidiff."""
    env = os.environ.get("HIDIFF_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hidiff"


def default_cache_dir() -> Path:
    """Where optimised graphs and TensorRT engines are kept."""
    return hidiff_cache_root() / "onnxruntime"


def machine_threads() -> int:
    """CPU cores this process may use (the affinity mask, which containers restrict)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class RuntimeOptions:
    """Session settings that are not the provider's choice."""

    # None: every core this process may use (`machine_threads`).
    intra_op_threads: int | None = None
    # One graph runs at a time in a sampler loop; parallelism is inside the operators.
    inter_op_threads: int = 1
    graph_optimization: GraphOptimization = "all"
    # Cache of CPU-optimised graphs and TensorRT engines; None disables caching.
    cache_dir: Path | None = field(default_factory=default_cache_dir)
    device_id: int = 0
    # OpenVINO's device_type: "CPU", "GPU", "NPU" (`--provider openvino:NPU`).
    openvino_device: str = "CPU"

    def __post_init__(self) -> None:
        if self.graph_optimization not in _OPT_LEVELS:
            raise HidiffError(
                f"unknown graph optimisation level {self.graph_optimization!r}; "
                f"choose one of {sorted(_OPT_LEVELS)}"
            )
        if self.intra_op_threads is not None and self.intra_op_threads < 1:
            raise HidiffError(f"intra_op_threads must be >= 1, got {self.intra_op_threads}")


def parse_provider(spec: str) -> tuple[str, str | None]:
    """'openvino:NPU' -> ('openvino', 'NPU'); names are case-insensitive."""
    name, _, device = spec.strip().partition(":")
    name = name.lower()
    if name not in PROFILE_NAMES:
        raise HidiffError(f"unknown provider {spec!r}; choose one of {', '.join(PROFILE_NAMES)}")
    if device and name != "openvino":
        raise HidiffError(f"provider {name!r} takes no device suffix (got {spec!r})")
    return name, device or None


def resolve_profile(spec: str, available: Sequence[str] | None = None) -> Profile:
    """The profile to use for `spec`, checked against this onnxruntime's providers.

    A named profile none of whose providers this onnxruntime offers is refused here, before a
    session is made; `auto` takes the first profile in AUTO_ORDER that is offered.
    """
    name, _ = parse_provider(spec)
    offered = list(ort.get_available_providers() if available is None else available)
    if name == "auto":
        for candidate in AUTO_ORDER:
            if any(p in offered for p in PROFILES[candidate].providers):
                return PROFILES[candidate]
        return PROFILES["cpu"]
    profile = PROFILES[name]
    if not any(p in offered for p in profile.providers):
        raise HidiffError(
            f"provider {name!r} asked for, but this onnxruntime "
            f"({ort.__version__}) offers only {', '.join(offered) or 'nothing'}; it needs "
            f"{profile.needs}"
        )
    return profile


def choose_precision(profile: Profile, shipped: Sequence[str], asked: str | None = None) -> str:
    """The package precision to run: `asked` if shipped, else the profile's best shipped one."""
    if asked is not None:
        if asked not in shipped:
            raise HidiffError(
                f"precision {asked!r} asked for, but the package ships only {sorted(shipped)}"
            )
        return asked
    for p in profile.precisions:
        if p in shipped:
            return p
    return sorted(shipped)[0]


def provider_list(
    profile: Profile,
    options: RuntimeOptions,
    available: Sequence[str],
    device: str | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """(provider, options) pairs for InferenceSession, filtered by what is available; the CPU
    provider always closes the list so unsupported operators still have a home."""
    cache = options.cache_dir
    wanted: list[tuple[str, dict[str, Any]]] = []
    for ep in profile.providers:
        if ep not in available:
            continue
        if ep == "TensorrtExecutionProvider":
            opts: dict[str, Any] = {"device_id": options.device_id, "trt_fp16_enable": True}
            if cache is not None:
                opts |= {
                    "trt_engine_cache_enable": True,
                    "trt_engine_cache_path": str(cache / "trt"),
                }
        elif ep in ("CUDAExecutionProvider", "DmlExecutionProvider"):
            opts = {"device_id": options.device_id}
        elif ep == "OpenVINOExecutionProvider":
            opts = {"device_type": device or options.openvino_device}
        elif ep == "QNNExecutionProvider":
            lib = "QnnHtp.dll" if platform.system() == "Windows" else "libQnnHtp.so"
            opts = {"backend_path": lib}
        elif ep == "CoreMLExecutionProvider":
            opts = {"ModelFormat": "MLProgram", "MLComputeUnits": "ALL"}
        else:
            opts = {}
        wanted.append((ep, opts))
    if not any(ep == CPU_EP for ep, _ in wanted):
        wanted.append((CPU_EP, {}))
    return wanted


def session_options(options: RuntimeOptions) -> ort.SessionOptions:
    """Threads from the machine, the graph optimisation level, sequential execution."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = options.intra_op_threads or machine_threads()
    so.inter_op_num_threads = options.inter_op_threads
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = _OPT_LEVELS[options.graph_optimization]
    return so


@dataclass
class SessionHandle:
    """A session and the facts about it that a user may need to see."""

    session: ort.InferenceSession
    profile: Profile
    requested: list[str]
    provider: str  # what onnxruntime actually runs first
    from_cache: bool = False
    cache_path: Path | None = None

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())


def _cached_cpu_model(
    model: bytes, options: RuntimeOptions
) -> tuple[bytes | None, Path | None, ort.SessionOptions]:
    """(cached optimised bytes or None, where to write one, session options to use).

    The cache key is the source graph's sha256, the optimisation level, onnxruntime's version
    and the CPU, because optimised graphs hold layout choices for one machine and one ORT. A
    cached file is used only if its own sha256 (a sidecar written after it) still matches.
    """
    so = session_options(options)
    if options.cache_dir is None or options.graph_optimization == "disable":
        return None, None, so
    key_src = "|".join(
        [
            hashlib.sha256(model).hexdigest(),
            options.graph_optimization,
            ort.__version__,
            platform.machine(),
            cpu_model(),
        ]
    )
    key = hashlib.sha256(key_src.encode()).hexdigest()[:32]
    path = options.cache_dir / f"{key}.opt.onnx"
    sidecar = path.with_suffix(".sha256")
    if path.is_file() and sidecar.is_file():
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() == sidecar.read_text().strip():
            # Already optimised for this machine: load it as is.
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            return data, path, so
        log.warning("optimised-model cache %s is corrupt; rebuilding it", path)
    return None, path, so


def _cache_writable(folder: Path) -> bool:
    """Create the cache folder; a read-only home only costs the cache, never the run."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log.warning("optimised-model cache %s unavailable (%s); running without it", folder, exc)
        return False
    if not os.access(folder, os.W_OK | os.X_OK):
        log.warning("optimised-model cache %s is not writable; running without it", folder)
        return False
    return True


def _write_cache(tmp: Path, final: Path) -> None:
    if not tmp.is_file():
        return
    data = tmp.read_bytes()
    os.replace(tmp, final)
    atomic_write_text(final.with_suffix(".sha256"), hashlib.sha256(data).hexdigest() + "\n")


def create_session(
    model: bytes,
    provider: str = "auto",
    options: RuntimeOptions | None = None,
    available: Sequence[str] | None = None,
    name: str = "model",
) -> SessionHandle:
    """An onnxruntime session for the graph `model` (its verified bytes) on `provider`.

    After the session is made, its providers are compared with what was asked: `auto` logs the
    provider in use; a named profile that did not load raises HidiffError naming what is missing.
    """
    options = options or RuntimeOptions()
    offered = list(ort.get_available_providers() if available is None else available)
    profile = resolve_profile(provider, offered)
    _, device = parse_provider(provider)
    wanted = provider_list(profile, options, offered, device)

    from_cache = False
    cache_path: Path | None = None
    tmp: Path | None = None
    if profile.name == "cpu":
        cached, cache_path, so = _cached_cpu_model(model, options)
        if cached is not None:
            model, from_cache = cached, True
        elif cache_path is not None and _cache_writable(cache_path.parent):
            tmp = cache_path.with_name(f".{cache_path.name}.partial-{os.getpid()}")
            so.optimized_model_filepath = str(tmp)
            # ORT warns that the saved graph is specific to this machine: it is, by design
            # (the cache key names the machine), so keep that warning off the user's terminal.
            so.log_severity_level = 3
    else:
        so = session_options(options)

    try:
        session = ort.InferenceSession(
            model,
            sess_options=so,
            providers=[ep for ep, _ in wanted],
            provider_options=[opts for _, opts in wanted],
        )
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph/RuntimeException
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise HidiffError(f"onnxruntime could not load {name} on {profile.name}: {exc}") from exc
    if tmp is not None and cache_path is not None:
        _write_cache(tmp, cache_path)

    handle = SessionHandle(
        session=session,
        profile=profile,
        requested=[ep for ep, _ in wanted],
        provider=session.get_providers()[0],
        from_cache=from_cache,
        cache_path=cache_path,
    )
    check_loaded(handle, provider, name)
    return handle


def check_loaded(handle: SessionHandle, asked: str, name: str = "model") -> None:
    """Compare the provider onnxruntime actually uses with the profile asked for."""
    got = handle.provider
    profile = handle.profile
    first_wanted = handle.requested[0]
    if parse_provider(asked)[0] == "auto":
        if got != first_wanted:
            log.warning(
                "%s: asked onnxruntime for %s, it runs on %s (fallback)", name, first_wanted, got
            )
        else:
            log.info("%s runs on %s (profile %s)", name, got, profile.name)
        return
    if got not in profile.providers:
        raise HidiffError(
            f"provider {profile.name!r} asked for, but onnxruntime loaded {got} instead of "
            f"{' or '.join(profile.providers)}: {profile.needs} must be installed and working"
        )
    if got != first_wanted:
        log.warning("%s: %s did not load; running on %s", name, first_wanted, got)
    else:
        log.info("%s runs on %s", name, got)


_ORT_TO_NUMPY = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


def numpy_dtype(ort_type: str) -> np.dtype:
    """The numpy dtype of an onnxruntime tensor type string such as 'tensor(float16)'."""
    try:
        return np.dtype(_ORT_TO_NUMPY[ort_type])
    except KeyError:
        raise HidiffError(f"unsupported graph tensor type {ort_type}") from None


class SessionRunner:
    """Runs a session with feeds cast to the graph's declared types.

    With IO binding (the cuda profile, or `io_binding=True`), inputs become OrtValues on the
    profile's device and outputs can stay there (`keep_on_device`), so features computed once by
    the encoder are not copied back and forth at every sampler step. Numpy alone does this.
    """

    def __init__(self, handle: SessionHandle, io_binding: bool | None = None) -> None:
        self.handle = handle
        self.session = handle.session
        self.io_binding = handle.profile.io_binding if io_binding is None else io_binding
        self.device = handle.profile.device if handle.provider != CPU_EP else "cpu"
        self.device_id = 0
        self.input_types = {i.name: numpy_dtype(i.type) for i in self.session.get_inputs()}
        self.output_names = [o.name for o in self.session.get_outputs()]

    def to_device(self, array: np.ndarray, name: str) -> ort.OrtValue:
        """An OrtValue of `array` (cast to input `name`'s type) on this runner's device."""
        arr = np.ascontiguousarray(array, dtype=self.input_types[name])
        return ort.OrtValue.ortvalue_from_numpy(arr, self.device, self.device_id)

    def run(
        self,
        feeds: Mapping[str, np.ndarray | ort.OrtValue],
        outputs: Sequence[str] | None = None,
        keep_on_device: bool = False,
    ) -> dict[str, np.ndarray | ort.OrtValue]:
        """Outputs by name; OrtValues when `keep_on_device` (IO binding only), else numpy."""
        names = list(outputs or self.output_names)
        missing = set(self.input_types) - set(feeds)
        if missing:
            raise HidiffError(f"graph inputs not fed: {sorted(missing)}")
        if not self.io_binding:
            cast = {
                k: np.ascontiguousarray(
                    v.numpy() if isinstance(v, ort.OrtValue) else v, dtype=self.input_types[k]
                )
                for k, v in feeds.items()
                if k in self.input_types
            }
            return dict(zip(names, self.session.run(names, cast), strict=True))
        binding = self.session.io_binding()
        for k, v in feeds.items():
            if k not in self.input_types:
                continue
            value = v if isinstance(v, ort.OrtValue) else self.to_device(v, k)
            binding.bind_ortvalue_input(k, value)
        for n in names:
            binding.bind_output(n, self.device, self.device_id)
        self.session.run_with_iobinding(binding)
        values = binding.get_outputs()
        if keep_on_device:
            return dict(zip(names, values, strict=True))
        return {n: v.numpy() for n, v in zip(names, values, strict=True)}
