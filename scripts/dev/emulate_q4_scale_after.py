#!/usr/bin/env python3
"""Lane-by-lane emulation of gemv_mma_kernel's Q4_0 scale-after-the-MMA branch (cuda/gemv.cu,
QS = true) with the PTX m16n8k16 fragment layout, against a plain matmul of the dequantized
weights. A check of the kernel's lane / k-slot / accumulator mapping that runs without a GPU
(numpy only): python3 scripts/dev/emulate_q4_scale_after.py. The GPU test is
"cuda quantized GEMVs match the CPU matmul" in tests/test_cuda_quant.cpp."""
import numpy as np, struct
rng = np.random.default_rng(1)
ROWS, COLS, N = 16, 1152, 3          # one tile; 36 blocks = 9 chunks (past-end chunks exercised)
MMA_WARPS, QSU = 8, 2
nb = COLS // 32; n_qchunks = nb // 4
qs = rng.integers(0, 256, size=(ROWS, nb, 16), dtype=np.uint8)
d = rng.uniform(0.001, 0.02, size=(ROWS, nb)).astype(np.float16).astype(np.float32)
x = rng.standard_normal((N, COLS)).astype(np.float32)
# reference weights: element i < 16 low nibble of byte i, i >= 16 high nibble of byte i - 16
W = np.zeros((ROWS, COLS), np.float32)
for r in range(ROWS):
    for b in range(nb):
        for i in range(32):
            byte = qs[r, b, i % 16]
            qv = (byte & 15) if i < 16 else (byte >> 4)
            W[r, b * 32 + i] = (int(qv) - 8) * d[r, b]
ref = x @ W.T   # [N, ROWS]

def word(r, blk, q):  # little-endian uint32 of bytes 4q..4q+3 of block blk of row r
    bs = qs[r, blk, 4 * q:4 * q + 4]
    return int(bs[0]) | int(bs[1]) << 8 | int(bs[2]) << 16 | int(bs[3]) << 24
def byte_perm(a, b, s):
    src = [(a >> (8 * i)) & 255 for i in range(4)] + [(b >> (8 * i)) & 255 for i in range(4)]
    return sum(src[(s >> (4 * k)) & 7] << (8 * k) for k in range(4))
def bf16_val(h):
    return struct.unpack('<f', struct.pack('<I', h << 16))[0]
def to_q(nib, sel):  # returns the two values (low half first)
    v = byte_perm(nib, 0x43434343, sel)
    return (bf16_val(v & 0xFFFF) - 136.0, bf16_val(v >> 16) - 136.0)

y = np.zeros((N, ROWS), np.float64)
for warp in range(MMA_WARPS):
    acc = np.zeros((8, 4, 4)); acc2 = np.zeros((8, 4, 4))   # [g][q][c]
    ch0 = warp
    while ch0 < n_qchunks:
        for u in range(QSU):
            c = ch0 + u * MMA_WARPS
            for sb in range(4):
                A = np.zeros((16, 16)); B = np.zeros((16, 8))
                regs = {}
                for g in range(8):
                    for q in range(4):
                        ra, rb = g, g + 8
                        if c < n_qchunks:
                            wa, wb = word(ra, 4 * c + sb, q), word(rb, 4 * c + sb, q)
                        else:
                            wa = wb = 0x88888888
                        la, ha = wa & 0x0F0F0F0F, (wa >> 4) & 0x0F0F0F0F
                        lb, hb = wb & 0x0F0F0F0F, (wb >> 4) & 0x0F0F0F0F
                        regs[(g, q)] = (la, ha, lb, hb)
                for half in range(2):   # MMA with a_lo (low nibbles), then a_hi
                    A = np.zeros((16, 16)); B = np.zeros((16, 8))
                    for g in range(8):
                        for q in range(4):
                            la, ha, lb, hb = regs[(g, q)]
                            na, nbb = (la, lb) if half == 0 else (ha, hb)
                            a = [to_q(na, 0x4140), to_q(nbb, 0x4140), to_q(na, 0x4342), to_q(nbb, 0x4342)]
                            A[g, 2*q:2*q+2] = a[0]; A[g+8, 2*q:2*q+2] = a[1]
                            A[g, 2*q+8:2*q+10] = a[2]; A[g+8, 2*q+8:2*q+10] = a[3]
                            tok = min(g, N - 1)
                            if c < n_qchunks:
                                base = (4 * c + sb) * 32 + 4 * q + (16 if half else 0)
                                xv = x[tok, base:base + 4]
                            else:
                                xv = np.zeros(4)
                            B[2*q:2*q+2, g] = xv[0:2]; B[2*q+8:2*q+10, g] = xv[2:4]
                    D = A @ B  # [16 rows, 8 tokens]
                    if half == 0: T = np.zeros((8, 4, 4))
                    for g in range(8):
                        for q in range(4):
                            T[g, q] += [D[g, 2*q], D[g, 2*q+1], D[g+8, 2*q], D[g+8, 2*q+1]]
                for g in range(8):
                    for q in range(4):
                        if c < n_qchunks:
                            sa, sbv = d[g, 4*c+sb], d[g+8, 4*c+sb]
                        else:
                            sa = sbv = 0.0
                        tgt = acc2 if sb & 1 else acc
                        tgt[g, q] += [sa*T[g,q,0], sa*T[g,q,1], sbv*T[g,q,2], sbv*T[g,q,3]]
        ch0 += MMA_WARPS * QSU
    tot = acc + acc2
    for g in range(8):
        for q in range(4):
            for j in range(2):
                t = 2 * q + j
                if t < N:
                    y[t, g] += tot[g, q, j]; y[t, g + 8] += tot[g, q, 2 + j]
err = np.abs(y - ref).max()
print("max abs err", err, "max |ref|", np.abs(ref).max())
assert err < 1e-4
print("ok")
