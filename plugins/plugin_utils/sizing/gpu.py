# -*- coding: utf-8 -*-
# Copyright: difyops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""GPU assignment, inference engine and the largest model tier that fits.

VRAM need = weights (parameters x bytes per parameter) + KV cache for the planned context
(2 x layers x kv_heads x head_dim x bytes per token and sequence) + a fixed runtime overhead per
GPU, and it must fit within the engine's share of VRAM (vLLM's default 0.9).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

GPU_MEMORY_UTILIZATION = 0.9
RUNTIME_OVERHEAD_MIB = 1536  # CUDA context, activations, graphs: per GPU
DEFAULT_CONTEXT_TOKENS = 8192
DEFAULT_CONCURRENT_SEQUENCES = {"vllm": 4, "ollama": 1}

# Series sold for data centres: vLLM serves them; other GPUs get Ollama with GGUF models.
DATA_CENTRE_MARKERS = ("A100", "H100", "H200", "H20", "B100", "B200", "GB200", "GH200", "L40", "L4", "A10", "A30", "A40",
                       "V100", "T4", "MI300")
VLLM_MIN_COMPUTE_CAPABILITY = 7.0


@dataclass(frozen=True)
class ModelTier:
    """An open model family member, described by what its VRAM need depends on and where each
    quantization's weights come from (a tier without a checkpoint for a quantization never gets it:
    vLLM's online FP8 first loads the bf16 weights whole, so it cannot make a model fit)."""

    name: str
    params_b: float
    layers: int
    kv_heads: int
    head_dim: int
    repo: str  # Hugging Face repository of the bf16 weights
    gated: bool  # that repository asks for an accepted licence: a token is needed to download it
    fp8_repo: Optional[str]  # an FP8 checkpoint (compressed-tensors, ungated), or None
    awq_repo: Optional[str]  # a 4-bit AWQ checkpoint (ungated), or None
    ollama: str  # Ollama library name; the tag adds the quantization


# Largest first: the plan takes the first that fits.
MODEL_TIERS = (
    ModelTier("llama-3.1-405b-instruct", 405.9, 126, 8, 128, "meta-llama/Llama-3.1-405B-Instruct", True,
              "RedHatAI/Meta-Llama-3.1-405B-Instruct-FP8-dynamic", "hugging-quants/Meta-Llama-3.1-405B-Instruct-AWQ-INT4",
              "llama3.1:405b-instruct"),
    ModelTier("llama-3.3-70b-instruct", 70.6, 80, 8, 128, "meta-llama/Llama-3.3-70B-Instruct", True,
              "RedHatAI/Llama-3.3-70B-Instruct-FP8-dynamic", "casperhansen/llama-3.3-70b-instruct-awq", "llama3.3:70b-instruct"),
    ModelTier("qwen2.5-32b-instruct", 32.8, 64, 8, 128, "Qwen/Qwen2.5-32B-Instruct", False,
              "RedHatAI/Qwen2.5-32B-Instruct-FP8-dynamic", "Qwen/Qwen2.5-32B-Instruct-AWQ", "qwen2.5:32b-instruct"),
    ModelTier("qwen2.5-14b-instruct", 14.8, 48, 8, 128, "Qwen/Qwen2.5-14B-Instruct", False,
              "RedHatAI/Qwen2.5-14B-Instruct-FP8-dynamic", "Qwen/Qwen2.5-14B-Instruct-AWQ", "qwen2.5:14b-instruct"),
    ModelTier("llama-3.1-8b-instruct", 8.0, 32, 8, 128, "meta-llama/Llama-3.1-8B-Instruct", True,
              "RedHatAI/Meta-Llama-3.1-8B-Instruct-FP8-dynamic", "hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4",
              "llama3.1:8b-instruct"),
    ModelTier("llama-3.2-3b-instruct", 3.2, 28, 8, 128, "meta-llama/Llama-3.2-3B-Instruct", True,
              "RedHatAI/Llama-3.2-3B-Instruct-FP8-dynamic", "AMead10/Llama-3.2-3B-Instruct-AWQ", "llama3.2:3b-instruct"),
    ModelTier("qwen2.5-0.5b-instruct", 0.5, 24, 2, 64, "Qwen/Qwen2.5-0.5B-Instruct", False,
              None, "Qwen/Qwen2.5-0.5B-Instruct-AWQ", "qwen2.5:0.5b-instruct"),
)

# Quantizations per engine, highest precision first: (name, bytes per parameter, KV bytes).
QUANTIZATIONS = {
    "vllm": (("bf16", 2.0, 2), ("fp8", 1.0, 1), ("awq-int4", 0.55, 1)),
    "ollama": (("q8_0", 1.06, 2), ("q4_k_m", 0.61, 2)),
}
FP8_MIN_COMPUTE_CAPABILITY = 8.9
# vLLM's faster AWQ kernels (awq_marlin) need Ampere or newer; older GPUs use the plain AWQ kernels.
AWQ_MARLIN_MIN_COMPUTE_CAPABILITY = 8.0
# Ollama tag suffix per quantization (the library spells the k-quants in capitals).
OLLAMA_TAG_SUFFIX = {"q8_0": "q8_0", "q4_k_m": "q4_K_M"}


def weights_source(tier: ModelTier, engine: str, quant: str, capability: float) -> Optional[Dict[str, Any]]:
    """What the engine loads for a tier at a quantization, or None when no such checkpoint exists.

    vLLM: the repository, the ``--quantization`` method that matches the checkpoint (None for
    bf16), the KV cache type the VRAM need counted, and whether the repository is gated. Ollama:
    the library tag of the quantization."""
    if engine == "ollama":
        return {"weights": "%s-%s" % (tier.ollama, OLLAMA_TAG_SUFFIX[quant]), "quantization_method": None,
                "kv_cache_dtype": "f16", "gated": False}
    kv_cache = "fp8" if {entry[0]: entry[2] for entry in QUANTIZATIONS["vllm"]}[quant] == 1 else "auto"
    if quant == "bf16":
        return {"weights": tier.repo, "quantization_method": None, "kv_cache_dtype": kv_cache, "gated": tier.gated}
    repo = tier.fp8_repo if quant == "fp8" else tier.awq_repo
    if repo is None:
        return None
    if quant == "fp8":
        method = "compressed-tensors"
    else:
        method = "awq_marlin" if capability >= AWQ_MARLIN_MIN_COMPUTE_CAPABILITY else "awq"
    return {"weights": repo, "quantization_method": method, "kv_cache_dtype": kv_cache, "gated": False}


def usable_gpus(gpus: Sequence[Dict[str, Any]]) -> Tuple[List[Dict[str, Any]], List[str]]:
    """GPUs the inference service can take whole: MIG-enabled devices are left out (with a note),
    and of mixed models the largest group of one model is used so tensor parallelism is even."""
    notes = []
    whole = []
    for gpu in gpus:
        if gpu.get("mig_mode") in (True, "enabled", 1):
            notes.append("GPU %s (%s) has MIG enabled and is left to its MIG users" % (gpu.get("index"), gpu.get("name")))
        else:
            whole.append(gpu)
    groups: Dict[Tuple[str, int], List[Dict[str, Any]]] = {}
    for gpu in whole:
        groups.setdefault((str(gpu.get("name")), int(gpu["memory_total_mib"])), []).append(gpu)
    if not groups:
        return [], notes
    best = max(groups.values(), key=lambda g: (len(g) * int(g[0]["memory_total_mib"]), len(g)))
    for key, group in groups.items():
        if group is not best:
            notes.append("%d x %s left unassigned: tensor parallelism needs identical GPUs" % (len(group), key[0]))
    # Tensor parallel size must be a power of two that divides the attention heads.
    size = 1
    while size * 2 <= len(best):
        size *= 2
    if size < len(best):
        notes.append("%d of %d identical GPUs used: tensor parallel size is a power of two" % (size, len(best)))
    return sorted(best, key=lambda g: int(g.get("index", 0)))[:size], notes


def choose_engine(gpu: Dict[str, Any], architecture: str) -> str:
    """vLLM for data-centre GPUs (compute capability 7.0+, or 40 GiB+), Ollama for the rest."""
    name = str(gpu.get("name", "")).upper()
    capability = float(gpu.get("compute_capability") or 0)
    data_centre = any(marker in name for marker in DATA_CENTRE_MARKERS) or int(gpu["memory_total_mib"]) >= 40 * 1024
    if data_centre and capability >= VLLM_MIN_COMPUTE_CAPABILITY and architecture in ("x86_64", "aarch64"):
        return "vllm"
    return "ollama"


def vram_need_mib(tier: ModelTier, bytes_per_param: float, kv_bytes: int, tokens: int, gpu_count: int) -> int:
    """Total VRAM (MiB, over all GPUs) that a model needs for ``tokens`` of KV cache."""
    weights = tier.params_b * 1e9 * bytes_per_param
    kv = 2.0 * tier.layers * tier.kv_heads * tier.head_dim * kv_bytes * tokens
    return int((weights + kv) / (1024.0 * 1024.0)) + RUNTIME_OVERHEAD_MIB * gpu_count


def plan_inference(gpus: Sequence[Dict[str, Any]], architecture: str, context_tokens: int = DEFAULT_CONTEXT_TOKENS,
                   engine: Optional[str] = None) -> Dict[str, Any]:
    """The inference section of a GPU host's plan, or ``{"enabled": False, "reason": ...}``."""
    assigned, notes = usable_gpus(gpus)
    if not assigned:
        return {"enabled": False, "reason": "no whole GPU is available for inference", "notes": notes}
    engine = engine or choose_engine(assigned[0], architecture)
    sequences = DEFAULT_CONCURRENT_SEQUENCES[engine]
    tokens = context_tokens * sequences
    per_gpu = int(assigned[0]["memory_total_mib"])
    budget = int(per_gpu * len(assigned) * GPU_MEMORY_UTILIZATION)
    capability = float(assigned[0].get("compute_capability") or 0)
    for tier in MODEL_TIERS:
        for quant, bytes_per_param, kv_bytes in QUANTIZATIONS[engine]:
            if quant == "fp8" and capability < FP8_MIN_COMPUTE_CAPABILITY:
                continue
            source = weights_source(tier, engine, quant, capability)
            if source is None:
                continue
            need = vram_need_mib(tier, bytes_per_param, kv_bytes, tokens, len(assigned))
            if need <= budget:
                return dict(source, **{
                    "enabled": True,
                    "engine": engine,
                    "gpu_indexes": [int(g.get("index", i)) for i, g in enumerate(assigned)],
                    "gpu_uuids": [g.get("uuid") for g in assigned if g.get("uuid")],
                    "tensor_parallel_size": len(assigned),
                    "model": tier.name,
                    "params_b": tier.params_b,
                    "quantization": quant,
                    "context_tokens": context_tokens,
                    "concurrent_sequences": sequences,
                    "vram_budget_mib": budget,
                    "vram_need_mib": need,
                    "gpu_memory_utilization": GPU_MEMORY_UTILIZATION,
                    "notes": notes,
                })
    return {"enabled": False, "reason": "no model tier fits %d MiB of VRAM" % budget, "notes": notes}
