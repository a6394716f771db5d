// Reference round-to-nearest quantizers for Q5_0, Q5_1, IQ4_NL and the K-quants Q3_K, Q4_K,
// Q5_K, Q6_K, and requantize_element() for GPTQ.
//
// The quantizers follow ggml's (ggml-quants.c, MIT licence) as llama-quantize runs them
// without an importance matrix: quantize_row_q5_0/q5_1_ref; IQ4_NL as quantize_iq4_nl (a
// least-squares scale refined over 15 trial scales, weights x^2); Q3_K as
// quantize_row_q3_K_ref (per 16-element group a weighted least-squares scale with five passes
// of coordinate refinement, make_q3_quants; the 16 scales quantized to 6 bits against the
// largest); Q4_K / Q5_K as quantize_row_q4_K/q5_K_ref (per 32-element sub-block a scale and
// minimum searched over 21 / 16 trial scales, make_qkx2_quants, weights av|x| + |x|; scales
// and minimums quantized to 6 bits); Q6_K as quantize_row_q6_K_ref (make_qx_quants with
// x^2 weights, 19 trial scales; 8-bit scales). Then every element is rounded against its
// final, quantized scale. Floating-point contraction is off (as in quant.cpp); ggml compiled
// with FMA contraction may round an intermediate differently, so for these types the
// tests check the format and the error, and bit-exactness only where gguf-py implements the
// quantizer (Q5_0, Q5_1).
#include "gguf/quantize_ref.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "gguf/fp16.hpp"
#include "gguf/kquant.hpp"

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif
#if defined(__clang__)
#pragma clang fp contract(off)
#endif

namespace vireo::gguf::quant_ref {

using vireo::detail::fp16_to_fp32;
using vireo::detail::fp32_to_fp16;
using vireo::detail::kIQ4NLValues;
using vireo::detail::load_u16;

namespace {

constexpr float kGroupMaxEps = 1e-15f;

void store_u16(std::uint8_t* p, std::uint16_t v) {
  p[0] = std::uint8_t(v & 0xFF);
  p[1] = std::uint8_t(v >> 8);
}

// ggml's nearest_int: round half to even through the float mantissa (|x| < 2^22).
inline int nearest_int(float fval) {
  float val = fval + 12582912.f;
  int i;
  std::memcpy(&i, &val, sizeof(int));
  return (i & 0x007fffff) - 0x00400000;
}

inline int best_index_int8(int n, const std::int8_t* val, float x) {
  if (x <= val[0]) return 0;
  if (x >= val[n - 1]) return n - 1;
  int ml = 0, mu = n - 1;
  while (mu - ml > 1) {
    const int mav = (ml + mu) / 2;
    if (x < val[mav]) mu = mav;
    else ml = mav;
  }
  return x - val[mu - 1] < val[mu] - x ? mu - 1 : mu;
}

template <bool kHasMin>
void quant_q5(const float* x, std::uint8_t* dst, std::size_t nb) {
  constexpr int qk = 32;
  for (std::size_t i = 0; i < nb; ++i, x += qk) {
    std::uint8_t* y = dst + i * (kHasMin ? 24 : 22);
    float d, id, min = 0.0f;
    if constexpr (kHasMin) {
      float mn = 3.402823466e+38f, mx = -3.402823466e+38f;
      for (int j = 0; j < qk; ++j) mn = std::min(mn, x[j]), mx = std::max(mx, x[j]);
      min = mn;
      d = (mx - mn) / 31;
      id = d ? 1.0f / d : 0.0f;
      store_u16(y, fp32_to_fp16(d));
      store_u16(y + 2, fp32_to_fp16(mn));
    } else {
      float amax = 0.0f, max = 0.0f;
      for (int j = 0; j < qk; ++j)
        if (amax < std::fabs(x[j])) amax = std::fabs(x[j]), max = x[j];
      d = max / -16;
      id = d ? 1.0f / d : 0.0f;
      store_u16(y, fp32_to_fp16(d));
    }
    std::uint8_t* qhp = y + (kHasMin ? 4 : 2);
    std::uint8_t* qs = qhp + 4;
    std::uint32_t qh = 0;
    for (int j = 0; j < qk / 2; ++j) {
      std::uint8_t xi0, xi1;
      if constexpr (kHasMin) {
        // ggml casts (x - min) / d + 0.5 to uint8 without a clamp; it stays in 0..31 for
        // finite input, clamped here so NaN / Inf cannot invoke undefined behaviour.
        xi0 = std::uint8_t(std::clamp((x[j] - min) * id + 0.5f, 0.0f, 31.0f));
        xi1 = std::uint8_t(std::clamp((x[qk / 2 + j] - min) * id + 0.5f, 0.0f, 31.0f));
      } else {
        xi0 = std::uint8_t(std::min(31, int(std::int8_t(std::clamp(x[j] * id + 16.5f, 0.0f, 127.0f)))));
        xi1 = std::uint8_t(std::min(31, int(std::int8_t(std::clamp(x[qk / 2 + j] * id + 16.5f, 0.0f, 127.0f)))));
      }
      qs[j] = std::uint8_t((xi0 & 0x0F) | ((xi1 & 0x0F) << 4));
      qh |= std::uint32_t((xi0 & 0x10u) >> 4) << j;
      qh |= std::uint32_t((xi1 & 0x10u) >> 4) << (j + qk / 2);
    }
    for (int b = 0; b < 4; ++b) qhp[b] = std::uint8_t(qh >> (8 * b));
  }
}

// make_qkx2_quants: scale and minimum of n values with nmax + 1 levels.
float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, std::uint8_t* L, float* the_min,
                       std::uint8_t* Laux, float rmin, float rdelta, int nstep) {
  float min = x[0], max = x[0], sum_w = weights[0], sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *the_min = -min;
    return 0.f;
  }
  float iscale = nmax / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    const int l = nearest_int(iscale * (x[i] - min));
    L[i] = std::uint8_t(std::max(0, std::min(nmax, l)));
    float diff = scale * L[i] + min - x[i];
    diff = diff * diff;
    best_error += weights[i] * diff;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * is + nmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * (x[i] - min));
      l = std::max(0, std::min(nmax, l));
      Laux[i] = std::uint8_t(l);
      const float w = weights[i];
      sum_l += w * l;
      sum_l2 += w * l * l;
      sum_xl += w * l * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * Laux[i] + this_min - x[i];
        diff = diff * diff;
        cur_error += weights[i] * diff;
      }
      if (cur_error < best_error) {
        for (int i = 0; i < n; ++i) L[i] = Laux[i];
        best_error = cur_error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

// make_q3_quants with do_rmse: a signed scale of 16 values in -nmax..nmax-1.
float make_q3_quants(int n, int nmax, const float* x, std::int8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) amax = ax, max = x[i];
  }
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  const float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = std::max(-nmax, std::min(nmax - 1, l));
    L[i] = std::int8_t(l);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  for (int itry = 0; itry < 5; ++itry) {
    int n_changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      float slx = sumlx - w * x[i] * L[i];
      if (slx > 0) {
        float sl2 = suml2 - w * L[i] * L[i];
        int new_l = nearest_int(x[i] * sl2 / slx);
        new_l = std::max(-nmax, std::min(nmax - 1, new_l));
        if (new_l != L[i]) {
          slx += w * x[i] * new_l;
          sl2 += w * new_l * new_l;
          if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = std::int8_t(new_l);
            sumlx = slx;
            suml2 = sl2;
            ++n_changed;
          }
        }
      }
    }
    if (!n_changed) break;
  }
  for (int i = 0; i < n; ++i) L[i] = std::int8_t(L[i] + nmax);
  return sumlx / suml2;
}

// make_qx_quants with rmse_type 1 (weights x^2) and no importance weights.
float make_qx_quants(int n, int nmax, const float* x, std::int8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) amax = ax, max = x[i];
  }
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = std::max(-nmax, std::min(nmax - 1, l));
    L[i] = std::int8_t(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  float scale = suml2 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(nmax + 0.1f * is) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * x[i]);
      l = std::max(-nmax, std::min(nmax - 1, l));
      const float w = x[i] * x[i];
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) {
        const int l = nearest_int(iscale * x[i]);
        L[i] = std::int8_t(nmax + std::max(-nmax, std::min(nmax - 1, l)));
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// Q4_K / Q5_K share the scale search and the 12-byte packing of 6-bit scales and mins.
template <int kBits>
void quant_q45_k(const float* x, std::uint8_t* dst, std::size_t nb) {
  constexpr int nmax = (1 << kBits) - 1;
  constexpr std::size_t bytes = kBits == 4 ? 144 : 176;
  std::uint8_t L[256], Laux[32];
  float weights[32], mins[8], scales[8];
  for (std::size_t i = 0; i < nb; ++i, x += 256) {
    std::uint8_t* y = dst + i * bytes;
    std::memset(y, 0, bytes);
    std::uint8_t* sc12 = y + 4;
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; ++j) {
      float sum_x2 = 0;
      for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
      const float av_x = std::sqrt(sum_x2 / 32);
      for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
      scales[j] = kBits == 4 ? make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, -1.f, 0.1f, 20)
                             : make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, -0.5f, 0.1f, 15);
      max_scale = std::max(max_scale, scales[j]);
      max_min = std::max(max_min, mins[j]);
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < 8; ++j) {
      std::uint8_t ls = std::uint8_t(nearest_int(inv_scale * scales[j]));
      std::uint8_t lm = std::uint8_t(nearest_int(inv_min * mins[j]));
      ls = std::min<std::uint8_t>(63, ls);
      lm = std::min<std::uint8_t>(63, lm);
      if (j < 4) {
        sc12[j] = ls;
        sc12[j + 4] = lm;
      } else {
        sc12[j + 4] = std::uint8_t((ls & 0xF) | ((lm & 0xF) << 4));
        sc12[j - 4] |= std::uint8_t((ls >> 4) << 6);
        sc12[j - 0] |= std::uint8_t((lm >> 4) << 6);
      }
    }
    store_u16(y, fp32_to_fp16(max_scale / 63.f));
    store_u16(y + 2, fp32_to_fp16(max_min / 63.f));
    const float d_all = fp16_to_fp32(load_u16(y)), dmin_all = fp16_to_fp32(load_u16(y + 2));
    for (int j = 0; j < 8; ++j) {
      unsigned sc, m;
      vireo::detail::k_scale_min(sc12, j, &sc, &m);
      const float d = d_all * float(sc);
      if (!d) continue;
      const float dm = dmin_all * float(m);
      for (int ii = 0; ii < 32; ++ii) {
        const int l = nearest_int((x[32 * j + ii] + dm) / d);
        L[32 * j + ii] = std::uint8_t(std::max(0, std::min(nmax, l)));
      }
    }
    if constexpr (kBits == 4) {
      std::uint8_t* q = y + 16;
      for (int j = 0; j < 256; j += 64, q += 32)
        for (int l = 0; l < 32; ++l) q[l] = std::uint8_t(L[j + l] | (L[j + l + 32] << 4));
    } else {
      std::uint8_t* qh = y + 16;
      std::uint8_t* ql = y + 48;
      std::uint8_t m1 = 1, m2 = 2;
      for (int n = 0; n < 256; n += 64) {
        for (int j = 0; j < 32; ++j) {
          int l1 = L[n + j], l2 = L[n + j + 32];
          if (l1 > 15) l1 -= 16, qh[j] |= m1;
          if (l2 > 15) l2 -= 16, qh[j] |= m2;
          ql[j] = std::uint8_t(l1 | (l2 << 4));
        }
        m1 = std::uint8_t(m1 << 2);
        m2 = std::uint8_t(m2 << 2);
        ql += 32;
      }
    }
  }
}

}  // namespace

void quant_q5_0(const float* x, std::uint8_t* dst, std::size_t nb) { quant_q5<false>(x, dst, nb); }
void quant_q5_1(const float* x, std::uint8_t* dst, std::size_t nb) { quant_q5<true>(x, dst, nb); }
void quant_q4_k(const float* x, std::uint8_t* dst, std::size_t nb) { quant_q45_k<4>(x, dst, nb); }
void quant_q5_k(const float* x, std::uint8_t* dst, std::size_t nb) { quant_q45_k<5>(x, dst, nb); }

void quant_iq4_nl(const float* x, std::uint8_t* dst, std::size_t nb) {
  constexpr int ntry = 7;
  const std::int8_t* values = kIQ4NLValues;
  std::uint8_t L[32];
  float weight[32];
  for (std::size_t b = 0; b < nb; ++b, x += 32) {
    std::uint8_t* y = dst + b * 18;
    std::memset(y, 0, 18);
    for (int j = 0; j < 32; ++j) weight[j] = x[j] * x[j];
    float amax = 0, max = 0;
    for (int j = 0; j < 32; ++j)
      if (std::fabs(x[j]) > amax) amax = std::fabs(x[j]), max = x[j];
    if (amax < kGroupMaxEps) continue;  // d = 0, all indices 0, as ggml
    float d = -max / values[0];
    float id = 1 / d;
    float sumqx = 0, sumq2 = 0;
    for (int j = 0; j < 32; ++j) {
      const int l = best_index_int8(16, values, id * x[j]);
      L[j] = std::uint8_t(l);
      const float q = values[l], w = weight[j];
      sumqx += w * q * x[j];
      sumq2 += w * q * q;
    }
    d = sumqx / sumq2;
    float best = d * sumqx;
    for (int itry = -ntry; itry <= ntry; ++itry) {
      id = (float(itry) + values[0]) / max;
      sumqx = sumq2 = 0;
      for (int j = 0; j < 32; ++j) {
        const int l = best_index_int8(16, values, id * x[j]);
        const float q = values[l], w = weight[j];
        sumqx += w * q * x[j];
        sumq2 += w * q * q;
      }
      if (sumq2 > 0 && sumqx * sumqx > best * sumq2) d = sumqx / sumq2, best = d * sumqx;
    }
    store_u16(y, fp32_to_fp16(d));
    const float idl = d ? 1 / d : 0.f;
    for (int j = 0; j < 32; ++j) L[j] = std::uint8_t(best_index_int8(16, values, idl * x[j]));
    for (int j = 0; j < 16; ++j) y[2 + j] = std::uint8_t(L[j] | (L[16 + j] << 4));
  }
}

void quant_q3_k(const float* x, std::uint8_t* dst, std::size_t nb) {
  std::int8_t L[256];
  float scales[16];
  for (std::size_t i = 0; i < nb; ++i, x += 256) {
    std::uint8_t* y = dst + i * 110;
    std::uint8_t *hmask = y, *qs = y + 32, *sc = y + 96;
    float max_scale = 0, amax = 0;
    for (int j = 0; j < 16; ++j) {
      scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
      if (std::fabs(scales[j]) > amax) amax = std::fabs(scales[j]), max_scale = scales[j];
    }
    std::memset(sc, 0, 12);
    if (max_scale) {
      const float iscale = -32.f / max_scale;
      for (int j = 0; j < 16; ++j) {
        int l = nearest_int(iscale * scales[j]);
        l = std::max(-32, std::min(31, l)) + 32;
        if (j < 8) sc[j] = std::uint8_t(l & 0xF);
        else sc[j - 8] |= std::uint8_t((l & 0xF) << 4);
        l >>= 4;
        sc[j % 4 + 8] |= std::uint8_t(l << (2 * (j / 4)));
      }
      store_u16(y + 108, fp32_to_fp16(1 / iscale));
    } else {
      store_u16(y + 108, fp32_to_fp16(0.f));
    }
    const float d_all = fp16_to_fp32(load_u16(y + 108));
    for (int j = 0; j < 16; ++j) {
      const float d = d_all * float(vireo::detail::q3k_scale(sc, j));
      if (!d) continue;
      for (int ii = 0; ii < 16; ++ii) {
        const int l = nearest_int(x[16 * j + ii] / d);
        L[16 * j + ii] = std::int8_t(std::max(-4, std::min(3, l)) + 4);
      }
    }
    std::memset(hmask, 0, 32);
    int m = 0;
    std::uint8_t hm = 1;
    for (int j = 0; j < 256; ++j) {
      if (L[j] > 3) hmask[m] |= hm, L[j] = std::int8_t(L[j] - 4);
      if (++m == 32) m = 0, hm = std::uint8_t(hm << 1);
    }
    for (int j = 0; j < 256; j += 128)
      for (int l = 0; l < 32; ++l)
        qs[j / 4 + l] = std::uint8_t(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
  }
}

void quant_q6_k(const float* x, std::uint8_t* dst, std::size_t nb) {
  std::int8_t L[256];
  float scales[16];
  for (std::size_t i = 0; i < nb; ++i, x += 256) {
    std::uint8_t* y = dst + i * 210;
    std::uint8_t *ql = y, *qh = y + 128;
    auto* sc = reinterpret_cast<std::int8_t*>(y + 192);
    float max_scale = 0, max_abs_scale = 0;
    for (int ib = 0; ib < 16; ++ib) {
      scales[ib] = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
      if (std::fabs(scales[ib]) > max_abs_scale) max_abs_scale = std::fabs(scales[ib]), max_scale = scales[ib];
    }
    std::memset(y, 0, 210);
    if (max_abs_scale < kGroupMaxEps) continue;
    const float iscale = -128.f / max_scale;
    store_u16(y + 208, fp32_to_fp16(1 / iscale));
    for (int ib = 0; ib < 16; ++ib) sc[ib] = std::int8_t(std::min(127, nearest_int(iscale * scales[ib])));
    const float d_all = fp16_to_fp32(load_u16(y + 208));
    for (int j = 0; j < 16; ++j) {
      const float d = d_all * float(sc[j]);
      if (!d) continue;
      for (int ii = 0; ii < 16; ++ii) {
        const int l = nearest_int(x[16 * j + ii] / d);
        L[16 * j + ii] = std::int8_t(std::max(-32, std::min(31, l)) + 32);
      }
    }
    for (int j = 0; j < 256; j += 128, ql += 64, qh += 32) {
      for (int l = 0; l < 32; ++l) {
        const std::uint8_t q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF, q3 = L[j + l + 64] & 0xF,
                           q4 = L[j + l + 96] & 0xF;
        ql[l] = std::uint8_t(q1 | (q3 << 4));
        ql[l + 32] = std::uint8_t(q2 | (q4 << 4));
        qh[l] = std::uint8_t((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) |
                             ((L[j + l + 96] >> 4) << 6));
      }
    }
  }
}

bool can_requantize(TensorType t) noexcept {
  switch (t) {
    case TensorType::Q8_0:
    case TensorType::Q4_0:
    case TensorType::Q4_1:
    case TensorType::Q5_0:
    case TensorType::Q5_1:
    case TensorType::IQ4_NL:
    case TensorType::Q3_K:
    case TensorType::Q4_K:
    case TensorType::Q5_K:
    case TensorType::Q6_K: return true;
    default: return false;
  }
}

namespace {

// The nibble of element j (< 32) in a 32-element block whose 16 bytes qs hold elements
// j and j + 16 in the low and high nibbles of qs[j % 16].
inline void set_nibble32(std::uint8_t* qs, int j, unsigned q) {
  std::uint8_t& b = qs[j % 16];
  b = j < 16 ? std::uint8_t((b & 0xF0) | q) : std::uint8_t((b & 0x0F) | (q << 4));
}

inline int clamp_round(float v, int lo, int hi) {
  if (!(v > float(lo))) return lo;  // NaN too
  if (v >= float(hi)) return hi;
  return std::clamp(nearest_int(v), lo, hi);
}

inline void set_q5_high(std::uint8_t* qh, int j, unsigned bit) {
  qh[j / 8] = std::uint8_t((qh[j / 8] & ~(1u << (j % 8))) | (bit << (j % 8)));
}

}  // namespace

float requantize_element(TensorType t, std::uint8_t* blk, int j, float x) noexcept {
  switch (t) {
    case TensorType::Q8_0: {
      const float d = fp16_to_fp32(load_u16(blk));
      const int q = d ? clamp_round(x / d, -128, 127) : 0;
      blk[2 + j] = std::uint8_t(std::int8_t(q));
      return float(q) * d;
    }
    case TensorType::Q4_0: {
      const float d = fp16_to_fp32(load_u16(blk));
      const int q = d ? clamp_round(x / d + 8.0f, 0, 15) : 8;
      set_nibble32(blk + 2, j, unsigned(q));
      return float(q - 8) * d;
    }
    case TensorType::Q4_1: {
      const float d = fp16_to_fp32(load_u16(blk)), m = fp16_to_fp32(load_u16(blk + 2));
      const int q = d ? clamp_round((x - m) / d, 0, 15) : 0;
      set_nibble32(blk + 4, j, unsigned(q));
      return float(q) * d + m;
    }
    case TensorType::Q5_0: {
      const float d = fp16_to_fp32(load_u16(blk));
      const int q = d ? clamp_round(x / d + 16.0f, 0, 31) : 16;
      set_q5_high(blk + 2, j, unsigned(q) >> 4);
      set_nibble32(blk + 6, j, unsigned(q) & 15u);
      return float(q - 16) * d;
    }
    case TensorType::Q5_1: {
      const float d = fp16_to_fp32(load_u16(blk)), m = fp16_to_fp32(load_u16(blk + 2));
      const int q = d ? clamp_round((x - m) / d, 0, 31) : 0;
      set_q5_high(blk + 4, j, unsigned(q) >> 4);
      set_nibble32(blk + 8, j, unsigned(q) & 15u);
      return float(q) * d + m;
    }
    case TensorType::IQ4_NL: {
      const float d = fp16_to_fp32(load_u16(blk));
      const int q = best_index_int8(16, kIQ4NLValues, d ? x / d : 0.0f);
      set_nibble32(blk + 2, j, unsigned(q));
      return d * float(kIQ4NLValues[q]);
    }
    case TensorType::Q3_K: {
      const float d = fp16_to_fp32(load_u16(blk + 108)) * float(vireo::detail::q3k_scale(blk + 96, j / 16));
      const int q = d ? clamp_round(x / d, -4, 3) : 0;
      const unsigned u = unsigned(q + 4);
      const int h = j / 128, r = j % 128, shift = 2 * (r / 32), l = r % 32;
      std::uint8_t& b = blk[32 + 32 * h + l];
      b = std::uint8_t((b & ~(3u << shift)) | ((u & 3u) << shift));
      std::uint8_t& hm = blk[j % 32];
      hm = std::uint8_t((hm & ~(1u << (j / 32))) | ((u >> 2) << (j / 32)));
      return d * float(q);
    }
    case TensorType::Q4_K:
    case TensorType::Q5_K: {
      const bool five = t == TensorType::Q5_K;
      const int s = j / 32;
      unsigned sc, m;
      vireo::detail::k_scale_min(blk + 4, s, &sc, &m);
      const float dl = fp16_to_fp32(load_u16(blk)) * float(sc), ml = fp16_to_fp32(load_u16(blk + 2)) * float(m);
      const int q = dl ? clamp_round((x + ml) / dl, 0, five ? 31 : 15) : 0;
      const int pair = s / 2, l = j % 32;
      std::uint8_t& b = blk[(five ? 48 : 16) + 32 * pair + l];
      b = s % 2 == 0 ? std::uint8_t((b & 0xF0) | (unsigned(q) & 15u)) : std::uint8_t((b & 0x0F) | ((unsigned(q) & 15u) << 4));
      if (five) {
        std::uint8_t& h = blk[16 + l];
        h = std::uint8_t((h & ~(1u << s)) | ((unsigned(q) >> 4) << s));
      }
      return dl * float(q) - ml;
    }
    case TensorType::Q6_K: {
      const float d = fp16_to_fp32(load_u16(blk + 208)) * float(std::int8_t(blk[192 + j / 16]));
      const int q = d ? clamp_round(x / d, -32, 31) : 0;
      const unsigned u = unsigned(q + 32);
      const int h = j / 128, r = j % 128, quarter = r / 32, l = r % 32;
      std::uint8_t& lo = blk[64 * h + (quarter % 2) * 32 + l];
      lo = quarter < 2 ? std::uint8_t((lo & 0xF0) | (u & 15u)) : std::uint8_t((lo & 0x0F) | ((u & 15u) << 4));
      std::uint8_t& hi = blk[128 + 32 * h + l];
      hi = std::uint8_t((hi & ~(3u << (2 * quarter))) | ((u >> 4) << (2 * quarter)));
      return d * float(q);
    }
    default: return x;
  }
}

}  // namespace vireo::gguf::quant_ref
