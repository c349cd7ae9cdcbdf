"""Run several training runs one after another in ONE process, as `accelerate launch` starts it (tests only).

    accelerate launch --config_file configs/accelerate/cpu-2proc.yaml tests/multiprocess_runs.py \
        CONFIG.yaml OUT_DIR [--resume] [CONFIG.yaml OUT_DIR [--resume] ...]

Several runs per launch is itself under test: a second `train()` must work after the first one finished.

With `HF_REC_TEST_FSDP2=1` the runs are sharded with FSDP2 as `configs/accelerate/fsdp.yaml` shards them on GPUs
(each block of a text model's backbone its own unit, found from the backbone's `_no_split_modules`). accelerate
turns FSDP on only for accelerator devices (a CPU launch is `MULTI_CPU`, and its FSDP setting is ignored), while
torch's FSDP2 itself runs on CPU over gloo: so the test marks the process state FSDP after accelerate has set it
up, and everything after that (sharding in `prepare`, gathered evaluation and saving, sharded checkpoints) is
accelerate's and hf_rec's real FSDP2 path.
"""

import os
import sys

from hf_rec.training import load_run_config, train


def fsdp2_accelerator(output_dir: str):
    from accelerate import Accelerator, FullyShardedDataParallelPlugin
    from accelerate.state import PartialState
    from accelerate.utils import DistributedType

    plugin = FullyShardedDataParallelPlugin(
        fsdp_version=2, auto_wrap_policy="transformer_based_wrap", state_dict_type="SHARDED_STATE_DICT",
        reshard_after_forward=True,
    )
    accelerator = Accelerator(fsdp_plugin=plugin, log_with="tensorboard", project_dir=output_dir)
    PartialState._shared_state["distributed_type"] = DistributedType.FSDP
    accelerator.state.distributed_type = DistributedType.FSDP
    accelerator.state.fsdp_plugin = plugin
    assert accelerator.is_fsdp2
    return accelerator


if __name__ == "__main__":
    args, runs = sys.argv[1:], []
    while args:
        config, out, args = args[0], args[1], args[2:]
        resume = bool(args) and args[0] == "--resume"
        args = args[1:] if resume else args
        runs.append((config, out, resume))
    sharded = os.environ.get("HF_REC_TEST_FSDP2") == "1"
    for config, out, resume in runs:
        accelerator = fsdp2_accelerator(out) if sharded else None
        train(load_run_config(config), out, resume=resume, accelerator=accelerator)
