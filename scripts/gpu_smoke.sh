#!/usr/bin/env bash
# GPU smoke test (issue 8): on CUDA, fit baseline and boosted separators a few steps (fp32 and bf16-mixed,
# HTDemucs and BS-RoFormer, debug size, synthetic data made on the fly), test one checkpoint, separate a
# file with --device, extract features with --device, and check that tensors come back on the device
# they were given. Prints one "gpu_smoke: OK ..." line per check; exits non-zero at the first failure.
#
#   bash scripts/gpu_smoke.sh                 # on a CUDA machine
#   DEVICE=cpu bash scripts/gpu_smoke.sh      # the same steps on the CPU (machines without a GPU)
#   HOSTS="htdemucs" PRECISIONS="32-true" OUT=/tmp/smoke bash scripts/gpu_smoke.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
DEVICE="${DEVICE:-cuda}"
HOSTS="${HOSTS:-htdemucs bs_roformer}"
PRECISIONS="${PRECISIONS:-32-true bf16-mixed}"
OUT="${OUT:-$(mktemp -d -t gpu_smoke.XXXXXX)}"
mkdir -p "$OUT/runs"
export PYTHONWARNINGS=ignore HF_HUB_OFFLINE=1

case "$DEVICE" in
  cuda*) ACC=gpu
         "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" \
           || { echo "gpu_smoke: no CUDA device here (DEVICE=cpu runs the CPU equivalent)" >&2; exit 2; } ;;
  cpu)   ACC=cpu ;;
  *)     echo "gpu_smoke: DEVICE must be cuda, cuda:N or cpu, got $DEVICE" >&2; exit 2 ;;
esac
ok() { echo "gpu_smoke: OK  $*"; }
"$PY" -c "import torch; print('gpu_smoke: torch', torch.__version__, '| cuda available:', torch.cuda.is_available(), '|', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')"
echo "gpu_smoke: device $DEVICE (Lightning accelerator $ACC), output in $OUT"

DATA=(--data.root "$OUT/data" --data.generate "{splits: {train: 2, valid: 1, test: 1}, seconds: 3, seed: 0}"
      --data.segment 1.0 --data.valid_segment 2.0 --data.batch_size 2 --data.samples_per_epoch 8
      --data.test_seconds 3 --data.num_workers 0)
RUN=(--trainer.accelerator "$ACC" --trainer.devices 1 --trainer.enable_progress_bar false
     --trainer.limit_val_batches 1 --trainer.logger false)

last_ckpt=""
for host in $HOSTS; do
  for boost in false true; do
    for prec in $PRECISIONS; do
      root="$OUT/runs/$host-boost_$boost-$prec"
      (cd "$OUT" && "$PY" -m booster.cli fit --config separation/demo "${DATA[@]}" "${RUN[@]}" \
        --model.host "$host" --model.boost "$boost" --model.feature_cache "$OUT/cache" \
        --model.eval_dir "$root/eval" --trainer.precision "$prec" --trainer.max_steps 3 \
        --trainer.val_check_interval 3 --trainer.default_root_dir "$root" \
        --trainer.callbacks+=ModelCheckpoint --trainer.callbacks.dirpath="$root/ckpt" \
        --trainer.callbacks.save_last=true > "$root.log" 2>&1) \
        || { tail -30 "$root.log"; echo "gpu_smoke: FAILED fit $host boost=$boost $prec (log: $root.log)" >&2; exit 1; }
      step=$("$PY" -c "import torch, sys; c = torch.load(sys.argv[1], map_location='cpu', weights_only=True); \
print(c['global_step'], c['booster']['host']['name'], c['booster']['boost'])" "$root/ckpt/last.ckpt")
      ok "fit $host boost=$boost precision=$prec on $DEVICE: checkpoint (step, host, boost) = $step"
      last_ckpt="$root/ckpt/last.ckpt"
    done
  done
done

root=$(dirname "$(dirname "$last_ckpt")")
host=$("$PY" -c "import torch, sys; print(torch.load(sys.argv[1], map_location='cpu', weights_only=True)['booster']['host']['name'])" "$last_ckpt")
(cd "$OUT" && "$PY" -m booster.cli test --config separation/demo "${DATA[@]}" "${RUN[@]}" --model.host "$host" \
  --model.boost true --model.eval_dir "$root/eval" --model.print_report false \
  --trainer.default_root_dir "$root" --ckpt_path "$last_ckpt" > "$root.test.log" 2>&1) \
  || { tail -30 "$root.test.log"; echo "gpu_smoke: FAILED test (log: $root.test.log)" >&2; exit 1; }
"$PY" -c "import json, sys; r = json.load(open(sys.argv[1])); assert r['items'], r; \
print('gpu_smoke: OK  test', r['meta']['name'], 'mean gSDR %.2f dB over' % r['summary']['mean']['gSDR'], len(r['items']), 'track(s)')" \
  "$root/eval/results.json"

mix=$(find "$OUT/data/test" -name mixture.wav | head -1)
[ -n "$mix" ] || mix=$(find "$OUT/data/test" -name '*.wav' | head -1)
"$PY" -m booster.cli separate "$mix" -o "$OUT/stems" --model "$last_ckpt" --device "$DEVICE" --no-progress
"$PY" -c "import soundfile as sf, sys, pathlib; d = pathlib.Path(sys.argv[1]); f = sorted(d.rglob('*.wav')); \
assert f, d; print('gpu_smoke: OK  separate --device $DEVICE wrote', len(f), 'stems of', '%.2f s' % sf.info(str(f[0])).duration)" "$OUT/stems"

"$PY" -m booster.cli features "$mix" -o "$OUT/features" --device "$DEVICE" --no-progress
[ -n "$(find "$OUT/features" -name '*.safetensors' | head -1)" ] && ok "features --device $DEVICE"

"$PY" - "$last_ckpt" "$DEVICE" <<'EOF'
import sys, torch
from booster.recipes.separation.inference import Separator
sep = Separator.load(sys.argv[1], device=sys.argv[2])
mix = 0.1 * torch.randn(sep.channels, int(2.5 * sep.sample_rate), device=sys.argv[2])
out = sep.separate_tensor(mix)
assert out.device == mix.device and out.shape == (len(sep.sources), *mix.shape) and torch.isfinite(out).all()
back = sep.separate_tensor(mix.cpu())
assert back.device.type == "cpu"
torch.testing.assert_close(back, out.cpu(), rtol=1e-3, atol=1e-4)
print(f"gpu_smoke: OK  separate_tensor: input on {mix.device} -> output on {out.device}; cpu input -> cpu output, "
      f"same values (max diff {(back - out.cpu()).abs().max():.2e})")
EOF
echo "gpu_smoke: all checks passed ($OUT)"
