"""Router training by distillation: KL to the exact model plus a compute penalty, T sampled per batch.

Steps (``thermostat-runtime train-router``):
1. Measure routability: the KL(full || skipped) of skipping one layer's MLP on every token past the
   attention sinks, per layer, on training chunks. The layers with the lowest KL are routed (the
   measurement is saved in the router config, ``extra.layer_skip_kl``).
2. Initialise each routed layer's skip adapter bias to that layer's mean MLP output (the best constant
   replacement) and each router to "almost always run".
   With ``fit_chunks`` > 0, routers and adapters start from the closed-form fit of ``router_fit``.
3. Train routers and adapters with the base model frozen. Per batch a routing temperature ``T`` is drawn
   from ``[t_low, t_high]``; gates are hard ``u < p_exec`` (the served rule, sampled or thresholded)
   with straight-through gradients; loss = KL(teacher || student) per token + ``compute_weight`` × the
   expected MLP FLOP share executed.

Resumable: a checkpoint (router and optimizer state, step, tokens trained, RNG) is written to
``out_dir/checkpoint.pt`` every few steps and picked up on restart. Only the training split of
``corpus`` is read; the held-out split is left for calibration.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the torch convention

from thermostat_runtime.corpus import token_chunks
from thermostat_runtime.model import RoutedLlama
from thermostat_runtime.routing import ALWAYS_RUN_POSITIONS, RouterConfig, Routers, load_routers, save_routers

log = logging.getLogger(__name__)
CHECKPOINT = "checkpoint.pt"


@dataclass
class TrainConfig:
    out_dir: str
    steps: int = 60
    batch: int = 4
    seq_len: int = 128
    lr: float = 3e-3
    compute_weight: float = 0.5
    t_low: float = 0.2
    t_high: float = 0.8
    n_routed: int = 24
    adapter_rank: int = 32
    gate_noise: float = 0.0
    t_min: float = 0.05
    calib_chunks: int = 4
    checkpoint_every: int = 5
    seed: int = 0
    max_minutes: float = 1e9
    fit_chunks: int = 0  # > 0: start from the closed-form fit (router_fit) on this many training chunks
    skip_at_half: float = 0.15
    init_dir: str | None = None  # start from these routers (e.g. a closed-form fit) instead


def kl_per_token(teacher_logp: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) in nats for each position: [..., V] -> [...]."""
    student_logp = F.log_softmax(student_logits.float(), dim=-1)
    return (teacher_logp.exp() * (teacher_logp - student_logp)).sum(-1)


@torch.no_grad()
def measure_layer_skip_kl(model: RoutedLlama, ids: torch.Tensor) -> tuple[list[float], list[torch.Tensor]]:
    """Per layer: mean KL from skipping its MLP past the sinks; also each layer's mean MLP output."""
    means: list[torch.Tensor] = []

    def record(layer: int, h: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        means.append(out[:, ALWAYS_RUN_POSITIONS:].mean(dim=(0, 1)))
        return out

    teacher = F.log_softmax(model.forward_dense(ids, record), dim=-1)
    kls = []
    for target in range(model.config.n_layers):

        def skip(layer: int, h: torch.Tensor, out: torch.Tensor, target: int = target) -> torch.Tensor:
            if layer != target:
                return out
            skipped = out.clone()
            skipped[:, ALWAYS_RUN_POSITIONS:] = 0.0
            return skipped

        kl = kl_per_token(teacher, model.forward_dense(ids, skip))[:, ALWAYS_RUN_POSITIONS:]
        kls.append(float(kl.mean()))
        log.info("layer %d: skip KL %.4f nats", target, kls[-1])
    return kls, means


def _gate_hook(
    routers: Routers, logit_t: float, generator: torch.Generator, probs: list[torch.Tensor]
) -> Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]:
    def hook(layer: int, h: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        slot = routers.slot.get(layer)
        if slot is None:
            return out
        p = torch.sigmoid(routers.score(slot, h) + logit_t)
        # The served gate rule (routing.gate_noise): 0 thresholds p at 1/2, 1 samples it.
        u = 0.5 + routers.config.gate_noise * (torch.rand(p.shape, generator=generator) - 0.5)
        hard = (u < p).float()
        hard[:, :ALWAYS_RUN_POSITIONS] = 1.0
        gate = (hard + p - p.detach()).unsqueeze(-1)
        probs.append(p[:, ALWAYS_RUN_POSITIONS:])
        return gate * out + (1.0 - gate) * routers.skip_output(slot, h)

    return hook


def _loss(
    model: RoutedLlama,
    routers: Routers,
    ids: torch.Tensor,
    *,
    temperature: float,
    generator: torch.Generator,
    compute_weight: float,
) -> tuple[torch.Tensor, float, float]:
    with torch.no_grad():
        teacher = F.log_softmax(model.forward_dense(ids), dim=-1)
    probs: list[torch.Tensor] = []
    logit_t = math.log(temperature / (1.0 - temperature))
    student = model.forward_dense(ids, _gate_hook(routers, logit_t, generator, probs))
    kl = kl_per_token(teacher, student)[:, ALWAYS_RUN_POSITIONS:].mean()
    mlp_share = len(routers.config.layers) * model.mlp_flops / model.token_flops()
    compute = torch.stack(probs).mean() * mlp_share
    return kl + compute_weight * compute, float(kl.detach()), float(compute.detach())


def distillation_loss(
    model: RoutedLlama,
    routers: Routers,
    ids: torch.Tensor,
    *,
    temperature: float,
    seed: int,
    compute_weight: float,
) -> torch.Tensor:
    """The training loss on ``ids`` at one temperature, gates drawn from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    loss, _, _ = _loss(
        model, routers, ids, temperature=temperature, generator=generator, compute_weight=compute_weight
    )
    return loss


def initial_routers(model: RoutedLlama, cfg: TrainConfig, calib: torch.Tensor) -> Routers:
    """Routers on the ``cfg.n_routed`` layers of lowest measured skip KL, adapters at the mean MLP output."""
    kls, means = measure_layer_skip_kl(model, calib)
    order = sorted(range(len(kls)), key=lambda i: kls[i])
    layers = sorted(order[: cfg.n_routed])
    routers = Routers(
        RouterConfig(
            layers=layers,
            d_model=model.config.d_model,
            adapter_rank=cfg.adapter_rank,
            gate_noise=cfg.gate_noise,
            t_min=cfg.t_min,
            model=model.name,
            extra={"layer_skip_kl": [round(k, 5) for k in kls]},
        )
    )
    with torch.no_grad():
        for layer in layers:
            routers.adapter_bias[routers.slot[layer]] = means[layer]
        # A small random down-projection so the zero up-projection gets gradients from step one.
        generator = torch.Generator().manual_seed(cfg.seed)
        routers.adapter_down.copy_(torch.randn(routers.adapter_down.shape, generator=generator) * 0.02)
    return routers


def _fit_chunks(model: RoutedLlama, cfg: TrainConfig) -> torch.Tensor:
    """Training-split chunks after the ones the training steps read (fit data never overlaps them)."""
    total = cfg.calib_chunks + cfg.steps * cfg.batch + cfg.fit_chunks
    chunks = token_chunks(
        model.tokenizer.encode, held_out=False, seq_len=cfg.seq_len, separator=0, max_chunks=total
    )
    return torch.from_numpy(chunks[-cfg.fit_chunks :])


def train_routers(cfg: TrainConfig, model: RoutedLlama | None = None) -> Path:
    """Train (or resume) routers into ``cfg.out_dir``; returns the directory with router.pt/json."""
    torch.manual_seed(cfg.seed)
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = model or RoutedLlama.load(router_dir=None)
    chunks = torch.from_numpy(
        token_chunks(
            model.tokenizer.encode,
            held_out=False,
            seq_len=cfg.seq_len,
            separator=0,
            max_chunks=cfg.calib_chunks + cfg.steps * cfg.batch,
        )
    )
    calib, train = chunks[: cfg.calib_chunks], chunks[cfg.calib_chunks :]
    state = _resume(out_dir)
    if state:
        routers = Routers(RouterConfig(**state["config"]))
    elif cfg.init_dir is not None:
        routers = load_routers(Path(cfg.init_dir))[0].requires_grad_(True)
    else:
        routers = initial_routers(model, cfg, calib)
    if not state and cfg.init_dir is None and cfg.fit_chunks > 0:
        from thermostat_runtime.router_fit import fit_routers

        fit_routers(model, routers, _fit_chunks(model, cfg), skip_at_half=cfg.skip_at_half)
        log.info("routers fitted in closed form on %d chunks", cfg.fit_chunks)
    optimizer = torch.optim.Adam(routers.parameters(), lr=cfg.lr)
    generator = torch.Generator().manual_seed(cfg.seed)
    step, tokens = 0, 0
    if state:
        routers.load_state_dict(state["routers"])
        optimizer.load_state_dict(state["optimizer"])
        generator.set_state(state["generator"])
        step, tokens = state["step"], state["tokens"]
        log.info("resumed at step %d (%d tokens trained)", step, tokens)
    started = time.monotonic()
    history: list[dict[str, float]] = list(state["history"]) if state else []
    while step < cfg.steps and (time.monotonic() - started) < cfg.max_minutes * 60:
        batch = train[(step * cfg.batch) % len(train) :][: cfg.batch]
        temperature = cfg.t_low + (cfg.t_high - cfg.t_low) * float(torch.rand((), generator=generator))
        loss, kl, compute = _loss(
            model,
            routers,
            batch,
            temperature=temperature,
            generator=generator,
            compute_weight=cfg.compute_weight,
        )
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        step, tokens = step + 1, tokens + batch.numel()
        history.append({"step": step, "T": round(temperature, 3), "kl": kl, "compute": compute})
        log.info(
            "step %d T=%.2f kl=%.4f compute=%.3f (%.0fs)",
            step,
            temperature,
            kl,
            compute,
            time.monotonic() - started,
        )
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            _checkpoint(
                out_dir,
                routers,
                optimizer=optimizer,
                generator=generator,
                step=step,
                tokens=tokens,
                history=history,
            )
    routers.config.tokens_trained = tokens
    routers.config.extra = {**routers.config.extra, "train": asdict(cfg), "steps_done": step}
    save_routers(routers, out_dir)
    (out_dir / "history.json").write_text(json.dumps(history) + "\n")
    return out_dir


def _checkpoint(
    out_dir: Path,
    routers: Routers,
    *,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    step: int,
    tokens: int,
    history: list[dict[str, float]],
) -> None:
    payload = {
        "config": asdict(routers.config),
        "routers": routers.state_dict(),
        "optimizer": optimizer.state_dict(),
        "generator": generator.get_state(),
        "step": step,
        "tokens": tokens,
        "history": history,
    }
    tmp = out_dir / (CHECKPOINT + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(out_dir / CHECKPOINT)


def _resume(out_dir: Path) -> dict[str, Any] | None:
    path = out_dir / CHECKPOINT
    if not path.is_file():
        return None
    state: dict[str, Any] = torch.load(path, weights_only=False)
    return state


def held_out_chunks(model: RoutedLlama, n_chunks: int, seq_len: int) -> np.ndarray:
    """Held-out chunks for calibration (never seen by training)."""
    return token_chunks(
        model.tokenizer.encode, held_out=True, seq_len=seq_len, separator=0, max_chunks=n_chunks
    )
