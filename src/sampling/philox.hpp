// Philox-4x32-10, the counter-based random number generator of Salmon, Moraes, Dror and
// Shaw ("Parallel Random Numbers: As Easy as 1, 2, 3", SC11; the Random123 library).
//
// A block of four 32-bit outputs is a pure function of a 128-bit counter and a 64-bit key:
// ten rounds of a Feistel-like network whose round function is two 32x32->64 multiplies
// (Product HI/LO XOR), with the key bumped by the Weyl constants between rounds. No state,
// so any (key, counter) can be computed independently on the host or on a CUDA thread and
// gives the same bits everywhere.
//
// Every function is VIREO_HD (__host__ __device__ under nvcc) and calls nothing from std::,
// so this header can be included from .cu files as-is.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define VIREO_HD __host__ __device__
#else
#define VIREO_HD
#endif

namespace vireo::detail {

struct Philox4x32 {
  std::uint32_t v[4];
};

/// Round multipliers and key increments (Random123: PHILOX_M4x32_0/1, PHILOX_W32_0/1).
inline constexpr std::uint32_t PHILOX_M0 = 0xD2511F53u;
inline constexpr std::uint32_t PHILOX_M1 = 0xCD9E8D57u;
inline constexpr std::uint32_t PHILOX_W0 = 0x9E3779B9u;
inline constexpr std::uint32_t PHILOX_W1 = 0xBB67AE85u;

/// One Philox round: (c0, c1, c2, c3) -> (hi(M1*c2) ^ c1 ^ k0, lo(M1*c2), hi(M0*c0) ^ c3 ^ k1, lo(M0*c0)).
VIREO_HD inline Philox4x32 philox_round(Philox4x32 c, std::uint32_t k0, std::uint32_t k1) {
  const std::uint64_t p0 = static_cast<std::uint64_t>(PHILOX_M0) * c.v[0];
  const std::uint64_t p1 = static_cast<std::uint64_t>(PHILOX_M1) * c.v[2];
  Philox4x32 r;
  r.v[0] = static_cast<std::uint32_t>(p1 >> 32) ^ c.v[1] ^ k0;
  r.v[1] = static_cast<std::uint32_t>(p1);
  r.v[2] = static_cast<std::uint32_t>(p0 >> 32) ^ c.v[3] ^ k1;
  r.v[3] = static_cast<std::uint32_t>(p0);
  return r;
}

/// Philox-4x32-10 block: counter (c0..c3), key (k0, k1). Round 1 uses the key as given; the
/// key is bumped before each of the nine following rounds (Random123's philox4x32_R).
VIREO_HD inline Philox4x32 philox4x32_10(Philox4x32 counter, std::uint32_t k0, std::uint32_t k1) {
  Philox4x32 c = counter;
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += PHILOX_W0;
      k1 += PHILOX_W1;
    }
    c = philox_round(c, k0, k1);
  }
  return c;
}

/// Uniform float in [0, 1) for (seed, counter): key = seed (low word first), 128-bit
/// counter = (counter low, counter high, 0, 0); the top 24 bits of the first output word
/// times 2^-24, so every value is exactly representable and 1.0 is never produced.
VIREO_HD inline float philox_uniform01(std::uint64_t seed, std::uint64_t counter) {
  Philox4x32 c;
  c.v[0] = static_cast<std::uint32_t>(counter);
  c.v[1] = static_cast<std::uint32_t>(counter >> 32);
  c.v[2] = 0;
  c.v[3] = 0;
  const Philox4x32 r =
      philox4x32_10(c, static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32));
  return static_cast<float>(r.v[0] >> 8) * (1.0f / 16777216.0f);
}

}  // namespace vireo::detail
