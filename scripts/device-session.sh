#!/usr/bin/env bash
# The whole GPU-machine call of a session that is lent a GPU, in one command (scripts/pytorch/README.md, "Running on
# the GPU machine"): Node unpacked from .device, the device check with the A/B variants (scripts/device-check.mjs),
# then, in the call's remaining time, the GPU headers' check of native/src/cuda/gpu_libs.h and the hardware counters
# (ncu; one line per kernel by scripts/ncu-summary.mjs) of the kernels not yet measured on a GPU, and the service
# scenarios on a filled card (scripts/service-scenarios.mjs); the check's summary printed again last, so the call's
# reply ends with it. Needs no build there. From the repository root, carrying
# .device, build/Release, prebuilds, dist and node_modules/node-gyp-build, with the call's timeout_s at least CALL_S
# (default 570):
#   bash scripts/device-session.sh
# Environment: CALL_S (seconds this call may take, default 570), DEVICE_CHECK_BUDGET_S (default 420), BENCH_AB
# (default 1), NCU_FILTER / NCU_KERNELS (what ncu profiles; the defaults are the SIMT 1x1 kernel at ConStyle NAFNet's
# C = 48 and 96 shapes and the batched depthwise loads), OUT (default ./device-out).
# Here (no GPU) it runs too: the check says CUDA is unavailable, and the ncu and header steps say they were skipped.
set -u
CALL_S=${CALL_S:-570}
T0=$(date +%s)
left() { echo $((CALL_S - ($(date +%s) - T0))); }
export OUT=${OUT:-$PWD/device-out}
mkdir -p "$OUT"

if ! command -v node >/dev/null || [ -s .device/node.xz ]; then
  python3 -c "import lzma,shutil;shutil.copyfileobj(lzma.open('.device/node.xz'),open('/tmp/node','wb'))" &&
    chmod +x /tmp/node && export PATH=/tmp:$PATH ||
    { echo "device-session: no Node: run ../shared/device/pack-node.sh here and carry .device"; exit 2; }
fi
echo "device-session: node $(node --version), call budget ${CALL_S} s"
# cuBLAS / cuDNN where the machine's PyTorch takes them, for every step below (the device check does the same)
if [ -z "${IRCONSTYLE_CUDA_LIBS:-}" ]; then
  IRCONSTYLE_CUDA_LIBS=$(node scripts/device-run.mjs --wheel-libs)
  [ -n "$IRCONSTYLE_CUDA_LIBS" ] && export IRCONSTYLE_CUDA_LIBS || unset IRCONSTYLE_CUDA_LIBS
fi

BENCH_AB=${BENCH_AB:-1} DEVICE_CHECK_BUDGET_S=${DEVICE_CHECK_BUDGET_S:-420} node scripts/device-check.mjs
rc=$?
notes=()

# The hand-written cuBLAS / cuBLASLt / cuDNN declarations against the real headers (seconds; the wheels' headers).
NV=$(python3 -c 'import nvidia;print(list(nvidia.__path__)[0])' 2>/dev/null)
if [ -n "$NV" ] && [ -d "$NV/cudnn/include" ] && [ "$(left)" -ge 40 ]; then
  if hdr=$(g++ -std=c++17 -fsyntax-only -DIRCONSTYLE_CHECK_GPU_HEADERS -I"$NV/cudnn/include" -I"$NV/cu13/include" \
    -I/usr/local/cuda/include -Inative/src native/src/cuda/gpu_libs_check.cpp 2>&1); then
    notes+=("gpu_libs_check: OK (declarations match the headers under $NV)")
  else
    notes+=("gpu_libs_check: FAILED: $(echo "$hdr" | grep -m3 -E 'error|static assertion' | tr '\n' ' ' | cut -c1-400)")
  fi
else
  notes+=("gpu_libs_check: skipped (no nvidia wheel headers, or under 40 s left)")
fi

# Counters of the kernels written since the last measured run: what their warps wait on, so that a slow one can be
# fixed without another call. One more file in $OUT, only while the call brings back every file (at most 8).
filter=${NCU_FILTER:-'[16,128,128,48], SIMT (opt-in)|[16,128,128,96], SIMT (opt-in)|batched loads'}
kernels=${NCU_KERNELS:-'regex:pw_simt|slide|dwgate'}
budget=$(($(left) - 40))
[ "$budget" -gt 120 ] && budget=120
files=$(find "$OUT" -maxdepth 1 -type f | wc -l)
if ! command -v ncu >/dev/null; then
  notes+=("ncu: skipped (not on this machine)")
elif [ "$rc" -eq 2 ] || [ "$budget" -lt 45 ] || [ "$files" -ge 8 ]; then
  notes+=("ncu: skipped (check exit $rc, ${budget} s usable, ${files} files in \$OUT)")
else
  # the report to /tmp (not a file of $OUT), then its details as text into ncu-new.txt and as CSV for a summary
  rep=/tmp/irc-ncu-new
  rm -f "$rep.ncu-rep"
  BENCH_OPS_FILTER=$filter BENCH_OPS_REPS=0 BENCH_OPS_WARMUPS=1 timeout -s INT -k 10 "$budget" \
    ncu --clock-control none -k "$kernels" -c 40 -f -o "$rep" --section SpeedOfLight --section Occupancy \
    --section WarpStateStats --section MemoryWorkloadAnalysis node scripts/bench-gpu-ops.mjs >"$OUT/ncu-new.txt" 2>&1
  st=$?
  if [ -s "$rep.ncu-rep" ]; then
    ncu --import "$rep.ncu-rep" --page details >>"$OUT/ncu-new.txt" 2>&1
    # (kernel names with their template arguments where this ncu takes the option)
    ncu --import "$rep.ncu-rep" --print-kernel-base demangled --page details --csv >"$rep.csv" 2>/dev/null ||
      ncu --import "$rep.ncu-rep" --page details --csv >"$rep.csv" 2>>"$OUT/ncu-new.txt"
    ncu_table=$(node scripts/ncu-summary.mjs "$rep.csv" 2>&1)
    printf '\n%s\n' "$ncu_table" >>"$OUT/ncu-new.txt"
  fi
  notes+=("ncu: exit $st in ${budget} s at most; details and the table below in ncu-new.txt")
fi

# The service scenarios on the card (scripts/service-scenarios.mjs): inference and training steps that do not fit a
# card filled with tensors until as much is free as the emulator's small card has (E_OOM, nothing left, the trained
# state untouched, the next step trains), and an exact profile. In what is left of the call, at most 90 s.
budget=$(($(left) - 20))
[ "$budget" -gt 90 ] && budget=90
if [ "$rc" -ne 2 ] && [ "$budget" -ge 45 ]; then
  sc=/tmp/irc-scenarios.txt
  timeout -k 5 "$budget" node scripts/service-scenarios.mjs >"$sc" 2>&1
  st=$?
  [ "$(find "$OUT" -maxdepth 1 -type f | wc -l)" -lt 8 ] && cp "$sc" "$OUT/scenarios.txt"
  fails=$(grep -m3 '^  FAIL' "$sc" | cut -c1-160 | sed 's/^/; /' | tr -d '\n')
  counts="$(grep -c '^  ok' "$sc") ok, $(grep -c '^  FAIL' "$sc") FAIL"
  last=$(tail -1 "$sc" | cut -c1-200)
  notes+=("service scenarios on the card: exit $st, $counts$fails; $last")
else
  notes+=("service scenarios: skipped (check exit $rc, ${budget} s usable)")
fi

echo
echo "== device-session: after the check (its exit code ${rc})"
for n in "${notes[@]}"; do echo "  $n"; done
[ -n "${ncu_table:-}" ] && echo "$ncu_table"
[ -f "$OUT/device-check.log" ] && sed -n '/^== e\. summary/,$p' "$OUT/device-check.log"
echo "device-session: $(($(date +%s) - T0)) s; \$OUT: $(ls "$OUT" | tr '\n' ' ')"
exit "$rc"
