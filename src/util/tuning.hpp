// The library's tuning knobs and diagnostic switches in one struct, and the one reader of
// the environment that fills it (tuning.cpp). docs/TUNING.md lists every variable with its
// default, meaning and valid values. Decisions the code can make itself (split counts, tile
// sizes, which steps fuse) are not knobs: they are made where they are needed, with the
// measurements behind them in bench/results/.
#pragma once

namespace vireo::detail {

struct Tuning {
  /// VIREO_PDL: CUDA kernels launch with programmatic dependent launch on sm_90+ (a
  /// diagnostic switch: 0 rules PDL out when chasing a hang or a wrong result).
  bool pdl = true;
  /// VIREO_CUDA_PROFILE: CUDA graphs off, per-stage GPU times of every step printed at exit
  /// (synchronizes every step: diagnosis only).
  bool cuda_profile = false;
  /// VIREO_DECODE_FUSION: batch-1 decode steps run the fused GEMVs (norm, RoPE + KV write and
  /// residual adds in their prologues / epilogues); 0 runs the unfused kernels, the reference
  /// for an A/B or for isolating a fused kernel.
  bool decode_fusion = true;
  /// VIREO_QGEMV_MAX_TOKENS: with gpu_quantized weights, steps of up to this many tokens run
  /// the quantized GEMV in groups of 8 tokens, larger ones dequantize each matrix for cuBLAS.
  /// 0: the per-format default (32 for Q4_0 / Q4_1, 16 for Q8_0).
  int qgemv_max_tokens = 0;
};

/// Read every VIREO_* knob from the environment now. A variable that is set to a value that
/// does not parse or is out of range is ignored (its default stays) with a warning through
/// vireo::log, naming the variable, the value and what is valid.
Tuning read_tuning();

/// read_tuning() as of the first call, for what is fixed for the whole process (PDL).
const Tuning& process_tuning();

}  // namespace vireo::detail
