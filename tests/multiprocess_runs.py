"""Run several training runs one after another in ONE process, as `accelerate launch` starts it (tests only).

    accelerate launch --config_file configs/accelerate/cpu-2proc.yaml tests/multiprocess_runs.py \
        CONFIG.yaml OUT_DIR [--resume] [CONFIG.yaml OUT_DIR [--resume] ...]

Several runs per launch is itself under test: a second `train()` must work after the first one finished.
"""

import sys

from hf_rec.training import load_run_config, train

if __name__ == "__main__":
    args, runs = sys.argv[1:], []
    while args:
        config, out, args = args[0], args[1], args[2:]
        resume = bool(args) and args[0] == "--resume"
        args = args[1:] if resume else args
        runs.append((config, out, resume))
    for config, out, resume in runs:
        train(load_run_config(config), out, resume=resume)
