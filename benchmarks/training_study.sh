#!/usr/bin/env bash
# The controlled CPU study of docs/training.md: why NExNet Seg learned more slowly than UNet, and
# what fixes it. Every arm trains on Kvasir-SEG (pranet: 810 train / 90 val) at 64 px, batch 16,
# for 24 epochs (1200 optimizer steps), one torch thread each, two arms at a time; arms are
# compared on training loss and VALIDATION mDice only (the test split is never read here).
# Then the defaults of each stage and UNet-16 get the same wall time (--max-minutes), at two or
# three seeds, and the same steps at 128 px.
#   bash benchmarks/training_study.sh [KVASIR_DIR] [OUT_DIR]      (about 4 hours on 2 cores)
#   python benchmarks/study_table.py OUT_DIR                      (table and curves.png)
# Finished arms are skipped, so a killed study continues where it stopped. ONLY='Q_.*|R_.*' runs
# the arms whose names match that regular expression.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/datasets/kvasir_seg}
OUT=${2:-runs/study}
MINUTES=${MINUTES:-8}
mkdir -p "$OUT"
NEXNET=${NEXNET:-nexnet}
COMMON="--dataset kvasir --data-root $DATA --split pranet --quiet"
# The paper's recipe (configs/paper_exact.yaml) but batch 16 like every arm; UNet takes no model.form.
PAPER_RECIPE="--set train.lr=1e-4 --set train.schedule=plateau --set train.warmup_epochs=5 --set train.tpen_lr_scale=1 --set train.tpen_weight_decay=null"
S="nexnet_seg_s"
U="unet --set model.base_width=16"

arms() {  # name | arguments after `nexnet train --batch-size 16`
# Arms C to L change one thing at a time from the first candidate, G (the revised form with the new
# recipe and a 1-epoch warm-up); M, the candidate with the paper's 5-epoch warm-up, scored best on
# validation and was the default (the revised form). Q and R move MaSA below the top levels
# (masa_from): Q_masa_from3 is the lean form; R gives it 8 minutes like T. S adds a moving average
# of the weights; the *_lr2e-3 arms, Adam at 2e-3, the default learning rate now. V changes one
# thing in the lean form; W is its undilated variant, Y adds the residual DoubleConv (the residual
# form, the default now); X gives that 8 minutes, Z 128 px. DP adds the decoder projection
# (measured, not kept); FA re-runs the residual form and UNet-16 for 8 minutes with the fused Adam step;
# WD narrows the residual form to widths 12-24-48-96-96-192 (UNet-16's size), MF moves MaSA to level 4;
# FR screens RMT's per-head decays and a 30x coefficient rate; GR pairs the first with UNet-16, seed by seed.
# SV arms train the screened variants of benchmarks/screen_variants.py (not library models: a single-
# convolution decoder, deep supervision, stochastic depth); run them with
# NEXNET="python benchmarks/screen_variants.py". TM gives the residual form 12 minutes.
RV="nexnet_seg_s --set model.form=revised"   # the arms run before the lean form became the default
LN="nexnet_seg_s --set model.form=lean"      # the arms run before the residual form did
UD="$LN --set model.dilation=1"              # the lean form with an undilated first convolution
RS="nexnet_seg_s --set model.form=residual"  # the default since the Y arms
L1="--set train.lr=1e-3"                      # the arms run before the default learning rate became 2e-3
W1="--set train.warmup_epochs=1"
cat <<EOF
A_paper_model_paper_recipe|--model $S --set model.form=paper $PAPER_RECIPE --epochs 24
B_unet16_paper_recipe|--model $U $PAPER_RECIPE --epochs 24
C_paper_model_new_lr|--model $S --set model.form=paper --set train.tpen_lr_scale=1 --set train.tpen_weight_decay=null --epochs 24 $W1 $L1
D_paper_model_no_tpen|--model $S --set model.form=paper --set model.tpen=false --epochs 24 $W1 $L1
E_linear_init|--model $S --set model.form=paper --set model.tpen_init=linear --set train.tpen_lr_scale=1 --set train.tpen_weight_decay=null --epochs 24 $W1 $L1
F_linear_init_coef_lr10|--model $S --set model.form=paper --set model.tpen_init=linear --epochs 24 $W1 $L1
G_revised_warmup1|--model $RV --epochs 24 $W1 $L1
H_revised_dropout0_warmup1|--model $RV --set model.dropout=0 --epochs 24 $W1 $L1
I_unet16_warmup1|--model $U --epochs 24 $W1 $L1
J_revised_no_tpen_warmup1|--model $RV --set model.tpen=false --epochs 24 $W1 $L1
K_revised_lr3e-4_warmup1|--model $RV --set train.lr=3e-4 --epochs 24 $W1
L_revised_no_clip_warmup1|--model $RV --set train.grad_clip=null --epochs 24 $W1 $L1
M_revised_default|--model $RV --epochs 24 $L1
M_revised_default_seed1|--model $RV --set train.seed=1 --epochs 24 $L1
I_unet16|--model $U --epochs 24 $L1
I_unet16_seed1|--model $U --set train.seed=1 --epochs 24 $L1
N_revised_batch64|--model $RV --batch-size 64 --epochs 24 $L1
T_revised_${MINUTES}min|--model $RV --epochs 1000 --max-minutes $MINUTES $L1
T_unet16_${MINUTES}min|--model $U --epochs 1000 --max-minutes $MINUTES $L1
T_revised_${MINUTES}min_seed1|--model $RV --epochs 1000 --max-minutes $MINUTES --set train.seed=1 $L1
T_unet16_${MINUTES}min_seed1|--model $U --epochs 1000 --max-minutes $MINUTES --set train.seed=1 $L1
P_revised_default_128px|--model $RV --epochs 24 --image-size 128 $L1
P_unet16_128px|--model $U --epochs 24 --image-size 128 $L1
Q_masa_from2|--model $LN --set model.masa_from=2 --epochs 24 $L1
Q_masa_from3|--model $LN --set model.masa_from=3 --epochs 24 $L1
R_masa_from3_${MINUTES}min|--model $LN --set model.masa_from=3 --epochs 1000 --max-minutes $MINUTES $L1
R_masa_from3_${MINUTES}min_seed1|--model $LN --set model.masa_from=3 --epochs 1000 --max-minutes $MINUTES --set train.seed=1 $L1
Q_masa_from3_seed1|--model $LN --set model.masa_from=3 --set train.seed=1 --epochs 24 $L1
Q_masa_from3_lr2e-3|--model $LN --set model.masa_from=3 --set train.lr=2e-3 --epochs 24
R_quarter_widths_${MINUTES}min|--model $LN --set model.widths=[8,16,32,64,64,128] --epochs 1000 --max-minutes $MINUTES $L1
R_quarter_widths_${MINUTES}min_seed1|--model $LN --set model.widths=[8,16,32,64,64,128] --epochs 1000 --max-minutes $MINUTES --set train.seed=1 $L1
S_lean_ema0.99|--model $LN --set train.ema_decay=0.99 --epochs 24 $L1
S_unet16_ema0.99|--model $U --set train.ema_decay=0.99 --epochs 24 $L1
S_lean_ema0.99_seed1|--model $LN --set train.ema_decay=0.99 --set train.seed=1 --epochs 24 $L1
S_unet16_ema0.99_seed1|--model $U --set train.ema_decay=0.99 --set train.seed=1 --epochs 24 $L1
Q_masa_from3_lr2e-3_seed1|--model $LN --set train.lr=2e-3 --set train.seed=1 --epochs 24
I_unet16_lr2e-3|--model $U --set train.lr=2e-3 --epochs 24
I_unet16_lr2e-3_seed1|--model $U --set train.lr=2e-3 --set train.seed=1 --epochs 24
R_lean_lr2e-3_${MINUTES}min|--model $LN --set train.lr=2e-3 --epochs 1000 --max-minutes $MINUTES
R_lean_lr2e-3_${MINUTES}min_seed1|--model $LN --set train.lr=2e-3 --epochs 1000 --max-minutes $MINUTES --set train.seed=1
T_unet16_lr2e-3_${MINUTES}min|--model $U --set train.lr=2e-3 --epochs 1000 --max-minutes $MINUTES
T_unet16_lr2e-3_${MINUTES}min_seed1|--model $U --set train.lr=2e-3 --epochs 1000 --max-minutes $MINUTES --set train.seed=1
U_lean_96px_${MINUTES}min|--model $LN --image-size 96 --epochs 1000 --max-minutes $MINUTES
U_unet16_96px_${MINUTES}min|--model $U --image-size 96 --epochs 1000 --max-minutes $MINUTES
U_lean_96px_${MINUTES}min_seed1|--model $LN --image-size 96 --epochs 1000 --max-minutes $MINUTES --set train.seed=1
U_unet16_96px_${MINUTES}min_seed1|--model $U --image-size 96 --epochs 1000 --max-minutes $MINUTES --set train.seed=1
V_lean_dropout0|--model $LN --set model.dropout=0 --epochs 24
V_lean_zero_init|--model $LN --set model.masa_zero_init=true --epochs 24
V_lean_residual|--model $LN --set model.residual=true --epochs 24
W_undilated|--model $UD --epochs 24
W_undilated_seed1|--model $UD --set train.seed=1 --epochs 24
W_undilated_seed2|--model $UD --set train.seed=2 --epochs 24
Q_masa_from3_lr2e-3_seed2|--model $LN --set train.lr=2e-3 --set train.seed=2 --epochs 24
I_unet16_lr2e-3_seed2|--model $U --set train.lr=2e-3 --set train.seed=2 --epochs 24
Y_undilated_residual|--model $UD --set model.residual=true --epochs 24
Y_undilated_residual_seed1|--model $UD --set model.residual=true --set train.seed=1 --epochs 24
Y_undilated_residual_seed2|--model $UD --set model.residual=true --set train.seed=2 --epochs 24
Y_undilated_zero_init|--model $UD --set model.masa_zero_init=true --epochs 24
X_residual_${MINUTES}min|--model $RS --epochs 1000 --max-minutes $MINUTES
X_residual_${MINUTES}min_seed1|--model $RS --epochs 1000 --max-minutes $MINUTES --set train.seed=1
X_residual_quarter_widths_${MINUTES}min|--model $RS --set model.widths=[8,16,32,64,64,128] --epochs 1000 --max-minutes $MINUTES
X_residual_quarter_widths_${MINUTES}min_seed1|--model $RS --set model.widths=[8,16,32,64,64,128] --epochs 1000 --max-minutes $MINUTES --set train.seed=1
X_residual_${MINUTES}min_seed2|--model $RS --epochs 1000 --max-minutes $MINUTES --set train.seed=2
T_unet16_lr2e-3_${MINUTES}min_seed2|--model $U --set train.lr=2e-3 --epochs 1000 --max-minutes $MINUTES --set train.seed=2
Z_lean_128px|--model $LN --epochs 24 --image-size 128
Z_residual_128px|--model $RS --epochs 24 --image-size 128
DP_proj_${MINUTES}min|--model $RS --set model.decoder_projection=true --epochs 1000 --max-minutes $MINUTES
DP_proj_lr4e-3_${MINUTES}min|--model $RS --set model.decoder_projection=true --set train.lr=4e-3 --epochs 1000 --max-minutes $MINUTES
DP_proj_${MINUTES}min_seed1|--model $RS --set model.decoder_projection=true --set train.seed=1 --epochs 1000 --max-minutes $MINUTES
DP_proj_${MINUTES}min_seed2|--model $RS --set model.decoder_projection=true --set train.seed=2 --epochs 1000 --max-minutes $MINUTES
FA_residual_${MINUTES}min|--model $RS --epochs 1000 --max-minutes $MINUTES
FA_unet16_${MINUTES}min|--model $U --epochs 1000 --max-minutes $MINUTES
FA_residual_${MINUTES}min_seed1|--model $RS --set train.seed=1 --epochs 1000 --max-minutes $MINUTES
FA_unet16_${MINUTES}min_seed1|--model $U --set train.seed=1 --epochs 1000 --max-minutes $MINUTES
FA_residual_${MINUTES}min_seed2|--model $RS --set train.seed=2 --epochs 1000 --max-minutes $MINUTES
FA_unet16_${MINUTES}min_seed2|--model $U --set train.seed=2 --epochs 1000 --max-minutes $MINUTES
WD_width12_${MINUTES}min|--model $RS --set model.widths=[12,24,48,96,96,192] --epochs 1000 --max-minutes $MINUTES
WD_width12_${MINUTES}min_seed1|--model $RS --set model.widths=[12,24,48,96,96,192] --set train.seed=1 --epochs 1000 --max-minutes $MINUTES
WD_width12_${MINUTES}min_seed2|--model $RS --set model.widths=[12,24,48,96,96,192] --set train.seed=2 --epochs 1000 --max-minutes $MINUTES
MF_masa_from4_${MINUTES}min|--model $RS --set model.masa_from=4 --epochs 1000 --max-minutes $MINUTES
FR_gamma_rmt_${MINUTES}min|--model $RS --set model.gamma=rmt --epochs 1000 --max-minutes $MINUTES
FR_tpen_lr30_${MINUTES}min|--model $RS --set train.tpen_lr_scale=30 --epochs 1000 --max-minutes $MINUTES
GR_residual_rmt_${MINUTES}min_seed1|--model $RS --set model.gamma=rmt --set train.seed=1 --epochs 1000 --max-minutes $MINUTES
GR_unet16_${MINUTES}min_seed1|--model $U --set train.seed=1 --epochs 1000 --max-minutes $MINUTES
GR_residual_rmt_${MINUTES}min_seed2|--model $RS --set model.gamma=rmt --set train.seed=2 --epochs 1000 --max-minutes $MINUTES
GR_unet16_${MINUTES}min_seed2|--model $U --set train.seed=2 --epochs 1000 --max-minutes $MINUTES
GR_residual_rmt_${MINUTES}min|--model $RS --set model.gamma=rmt --epochs 1000 --max-minutes $MINUTES
GR_unet16_${MINUTES}min|--model $U --epochs 1000 --max-minutes $MINUTES
SV_single_conv_decoder_${MINUTES}min|--model screen_single_conv_decoder --epochs 1000 --max-minutes $MINUTES
SV_single_conv_decoder_${MINUTES}min_seed1|--model screen_single_conv_decoder --set train.seed=1 --epochs 1000 --max-minutes $MINUTES
SV_deep_supervision_${MINUTES}min|--model screen_deep_supervision --epochs 1000 --max-minutes $MINUTES
SV_deep_supervision_${MINUTES}min_seed1|--model screen_deep_supervision --set train.seed=1 --epochs 1000 --max-minutes $MINUTES
SV_drop_path_${MINUTES}min|--model screen_drop_path --epochs 1000 --max-minutes $MINUTES
SV_drop_path_${MINUTES}min_seed1|--model screen_drop_path --set train.seed=1 --epochs 1000 --max-minutes $MINUTES
TM_residual_12min|--model $RS --epochs 1000 --max-minutes 12
TM_residual_12min_seed1|--model $RS --set train.seed=1 --epochs 1000 --max-minutes 12
EOF
}

run_arm() {
    local name=${1%%|*} args=${1#*|}
    if [ -f "$OUT/$name/done" ]; then echo "skip $name (done)"; return; fi
    rm -rf "${OUT:?}/$name"
    local cmd="$NEXNET train --batch-size 16 --image-size 64 $args $COMMON --out $OUT/$name"  # an arm's own flags win
    echo "$(date +%T) start $name: $cmd"
    # shellcheck disable=SC2086
    if OMP_NUM_THREADS=1 $cmd > "$OUT/$name.log" 2>&1; then
        echo "$cmd" > "$OUT/$name/done"
        echo "$(date +%T) done  $name: $(tail -n 1 "$OUT/$name.log")"
    else
        echo "$(date +%T) FAILED $name: $(tail -n 1 "$OUT/$name.log")"
    fi
}
export -f run_arm
export OUT COMMON NEXNET
arms | grep -E "^(${ONLY:-.*})\|" | xargs -d '\n' -P 2 -I{} bash -c 'run_arm "$@"' _ {}
