"""Training with sharded parameters (FSDP2, DeepSpeed ZeRO-3) for text models whose backbone does not fit one device,
and the one way the loop saves a model (sharded or not).

A sharded model holds only its shard of each parameter between forwards. Evaluation reads parameters outside the
prepared model's forward (item tables, the catalogue re-encoded by the backbone), so it runs with every parameter
gathered; saving gathers the full state into a plain copy of the model, so that a run folder is the same whatever
trained it and loads without FSDP. Checkpoints stay sharded (accelerate's `save_state`).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType

from ..atomic import atomic_directory
from ..data import ItemTokenizer
from .config import RunConfig


def check_sharding(run: RunConfig, accelerator: Accelerator) -> None:
    """Sharded training (FSDP2, DeepSpeed ZeRO-3) is for text models, whose backbone it shards; refused otherwise,
    before any work, with what to use instead."""
    if accelerator.distributed_type == DistributedType.FSDP and not accelerator.is_fsdp2:
        raise ValueError("FSDP version 1 is not supported: set `fsdp_version: 2` in the accelerate config "
                         "(configs/accelerate/fsdp.yaml)")
    if is_sharded(accelerator) and run.family != "llmrec":
        raise ValueError(f"FSDP / DeepSpeed ZeRO-3 shard a text model's backbone (family llmrec); train {run.family} "
                         "with DDP: configs/accelerate/multi-gpu.yaml")


def is_sharded(accelerator: Accelerator) -> bool:
    """Parameters sharded across the processes: FSDP2 or DeepSpeed ZeRO-3."""
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        return accelerator.state.deepspeed_plugin.zero_stage == 3
    return accelerator.is_fsdp2


@contextmanager
def gathered_parameters(accelerator: Accelerator, model):
    """Evaluation reads parameters outside the prepared model's forward (item tables, the catalogue re-encoded by
    a text model's backbone), so a sharded model (FSDP2, DeepSpeed ZeRO-3) has every parameter gathered on every
    process for it; every process must enter. Other models are used as they are."""
    if accelerator.is_fsdp2:
        from torch.distributed.fsdp import FSDPModule

        units = [m for m in model.modules() if isinstance(m, FSDPModule)]
        for unit in units:  # (not recursive: each unit gathers its own parameters)
            unit.unshard()
        try:
            yield
        finally:
            for unit in units:
                unit.reshard()
    elif is_sharded(accelerator):
        import deepspeed

        with deepspeed.zero.GatheredParameters(list(model.parameters())):
            yield
    else:
        yield


def save_model(accelerator: Accelerator, model, folder: Path, tokenizer: ItemTokenizer) -> None:
    """Write the model and its item tokenizer to `folder` (atomically, on the main process). Every process must call
    it: a sharded model's full state is gathered first (accelerate's `get_state_dict`, a collective) into a plain
    copy of the model, which is what is saved and what `from_pretrained` loads."""
    unwrapped = accelerator.unwrap_model(model)
    if is_sharded(accelerator):
        full_state = accelerator.get_state_dict(model)  # full tensors on the main process
        if accelerator.is_main_process:
            unwrapped = unsharded_copy(unwrapped, full_state)
    if accelerator.is_main_process:
        with atomic_directory(folder) as partial:
            unwrapped.save_pretrained(partial)
            tokenizer.save_pretrained(partial)
    accelerator.wait_for_everyone()


def unsharded_copy(model, full_state: dict):
    """A plain model of `model`'s class and config holding `full_state` (every tensor, gathered). It is built on the
    meta device and given the gathered tensors: no second allocation and no random initialisation of a large
    backbone at every save, and no draw from this process's RNG (which would change its dropout from here on).
    Buffers that are not in a state dict (a Llama's rotary frequencies) come from `model`: FSDP never shards them."""
    with torch.device("meta"):
        copy = type(model)(model.config)
    copy.load_state_dict(full_state, strict=True, assign=True)
    buffers = dict(model.named_buffers())
    for name, buffer in list(copy.named_buffers()):
        if buffer.is_meta:
            owner, _, leaf = name.rpartition(".")
            copy.get_submodule(owner)._buffers[leaf] = buffers[name].detach().clone()
    if hasattr(model, "_backbone_tokenizer"):  # text models: the backbone's text tokenizer is saved with them
        copy._backbone_tokenizer = model.backbone_tokenizer()
    return copy.eval()
