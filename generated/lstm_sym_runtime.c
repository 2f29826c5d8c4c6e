/* lstm_sym runtime: the vector and matrix routines declared in lstm_sym_runtime.h, in double
 * (_f64) and float (_f32): the body is lstm_sym_runtime_real.inc, included once per precision
 * with REAL, NAME() and the precision's tile sizes defined. Part of lstm_sym (hand-written C99).
 */
#include "lstm_sym_runtime.h"

#include <stdint.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(LSTM_SYM_AVX512) || defined(LSTM_SYM_AVX2)
#include <immintrin.h>
#endif

/* Rows of a matrix with rows of `length` elements that fit in `elements` (about 128 KiB, a
 * share of the L2 cache), a multiple of 4 and at least 4. */
static size_t lstm_sym_block_rows(size_t length, size_t elements)
{
    const size_t rows = (elements / length) & ~(size_t)3;
    return rows < 4u ? 4u : rows;
}

#if defined(LSTM_SYM_AVX512) || defined(LSTM_SYM_AVX2)
/* The sums of eight vectors of partial sums (one dot product each), for dot8: neighbouring lanes
 * in pairs, the pairs in pairs (hadd), then the two 128-bit halves: a fixed order. float: one
 * vector of eight sums; double: two vectors of four (four vectors each). */
static inline void lstm_sym_sums8_f32(const __m256 *acc, float *out)
{
    const __m256 t0 = _mm256_hadd_ps(acc[0], acc[1]), t1 = _mm256_hadd_ps(acc[2], acc[3]);
    const __m256 t2 = _mm256_hadd_ps(acc[4], acc[5]), t3 = _mm256_hadd_ps(acc[6], acc[7]);
    const __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
    _mm256_storeu_ps(out, _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20),
        _mm256_permute2f128_ps(u0, u1, 0x31)));
}

static inline void lstm_sym_sums8_f64(const __m256d *acc, double *out)
{
    size_t half;
    for (half = 0; half < 2u; ++half) {
        const __m256d *const four = acc + 4u * half;
        const __m256d t0 = _mm256_hadd_pd(four[0], four[1]), t1 = _mm256_hadd_pd(four[2], four[3]);
        _mm256_storeu_pd(out + 4u * half, _mm256_add_pd(_mm256_permute2f128_pd(t0, t1, 0x20),
            _mm256_permute2f128_pd(t0, t1, 0x31)));
    }
}
#endif

#ifdef LSTM_SYM_USE_CBLAS
/* Optional, chosen at build time: the unpacked matrix products through a CBLAS library
 * (OpenBLAS, MKL, ...). Compile with -DLSTM_SYM_USE_CBLAS, plus -DLSTM_SYM_CBLAS_PREFIX=scipy_
 * for a library whose symbols carry a prefix (the scipy-openblas32 wheel), and link the library.
 * Without LSTM_SYM_USE_CBLAS (the default) this file needs no BLAS. */
#ifndef LSTM_SYM_CBLAS_PREFIX
#define LSTM_SYM_CBLAS_PREFIX
#endif
#define LSTM_SYM_CBLAS_PASTE2(a, b) a##b
#define LSTM_SYM_CBLAS_PASTE(a, b) LSTM_SYM_CBLAS_PASTE2(a, b)
#define LSTM_SYM_CBLAS(name) LSTM_SYM_CBLAS_PASTE(LSTM_SYM_CBLAS_PREFIX, name)
/* CBLAS enum values (cblas.h): CblasRowMajor, CblasNoTrans, CblasTrans; 32-bit integers. */
enum { LSTM_SYM_CBLAS_ROW_MAJOR = 101, LSTM_SYM_CBLAS_NO_TRANS = 111, LSTM_SYM_CBLAS_TRANS = 112 };
void LSTM_SYM_CBLAS(cblas_sgemm)(int order, int trans_a, int trans_b, int m, int n, int k,
    float alpha, const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc);
void LSTM_SYM_CBLAS(cblas_dgemm)(int order, int trans_a, int trans_b, int m, int n, int k,
    double alpha, const double *a, int lda, const double *b, int ldb, double beta, double *c,
    int ldc);

/* Every size fits CBLAS's 32-bit int. */
static int lstm_sym_cblas_fits(size_t a, size_t b, size_t c, size_t d)
{
    const size_t limit = 2147483647u;
    return a <= limit && b <= limit && c <= limit && d <= limit;
}
#endif

/* The per-precision parameters the body reads:
 *   REAL, ZERO             the type and its zero literal; NAME(f): lstm_sym_<f>_<suffix>
 *   MR, NR, KC, MC, NC     the unpacked products' tiles (MR x NR outputs, KC terms, blocks)
 *   PMR, PNR, PKC          the packed products' tiles (PMR x PNR) and terms against W_hidden
 *   LANES, BLOCK_ELEMENTS  partial sums per dot product, elements of an L2 block
 *   LINE                   elements per 64-byte cache line
 *   VW, CHUNK              elements per 512-bit vector (AVX-512 kernel), per two 256-bit
 *                          vectors (portable kernel); PNR is four of either
 *   VEC, VEC_*             the AVX-512 vector type and intrinsics
 *   HW, HALF, HALF_*       elements per 256-bit vector, its type and intrinsics (AVX2 kernel)
 *   SUMS8                  eight vectors of partial sums to eight sums (dot8)
 *   CBLAS_GEMM             cblas_dgemm or cblas_sgemm */
#define MR LSTM_SYM_TILE_ROWS
#define KC LSTM_SYM_TILE_TERMS
#define MC LSTM_SYM_TILE_BLOCK
#define NC LSTM_SYM_TILE_BLOCK
#define PMR LSTM_SYM_SLIVER
#define LANES LSTM_SYM_DOT_LANES

/* ---- double ---- */
#define REAL double
#define ZERO 0.0
#define NAME(f) lstm_sym_##f##_f64
#define NR LSTM_SYM_TILE_COLS_F64
#define PNR LSTM_SYM_PANEL_F64
#define PKC LSTM_SYM_PANEL_TERMS_F64
#define BLOCK_ELEMENTS LSTM_SYM_L2_ELEMENTS_F64
#define LINE 8u
#define VW 8u
#define CHUNK 8u
#define VEC __m512d
#define VEC_ZERO _mm512_setzero_pd
#define VEC_SET1 _mm512_set1_pd
#define VEC_LOAD _mm512_loadu_pd
#define VEC_STORE _mm512_storeu_pd
#define VEC_FMADD _mm512_fmadd_pd
#define VEC_ADD _mm512_add_pd
#define HW 4u
#define HALF __m256d
#define HALF_ZERO _mm256_setzero_pd
#define HALF_SET1 _mm256_set1_pd
#define HALF_LOAD _mm256_loadu_pd
#define HALF_STORE _mm256_storeu_pd
#define HALF_FMADD _mm256_fmadd_pd
#define SUMS8 lstm_sym_sums8_f64
#define CBLAS_GEMM LSTM_SYM_CBLAS(cblas_dgemm)
#include "lstm_sym_runtime_real.inc"

/* ---- float ---- */
#define REAL float
#define ZERO 0.0F
#define NAME(f) lstm_sym_##f##_f32
#define NR LSTM_SYM_TILE_COLS_F32
#define PNR LSTM_SYM_PANEL_F32
#define PKC LSTM_SYM_PANEL_TERMS_F32
#define BLOCK_ELEMENTS LSTM_SYM_L2_ELEMENTS_F32
#define LINE 16u
#define VW 16u
#define CHUNK 16u
#define VEC __m512
#define VEC_ZERO _mm512_setzero_ps
#define VEC_SET1 _mm512_set1_ps
#define VEC_LOAD _mm512_loadu_ps
#define VEC_STORE _mm512_storeu_ps
#define VEC_FMADD _mm512_fmadd_ps
#define VEC_ADD _mm512_add_ps
#define HW 8u
#define HALF __m256
#define HALF_ZERO _mm256_setzero_ps
#define HALF_SET1 _mm256_set1_ps
#define HALF_LOAD _mm256_loadu_ps
#define HALF_STORE _mm256_storeu_ps
#define HALF_FMADD _mm256_fmadd_ps
#define SUMS8 lstm_sym_sums8_f32
#define CBLAS_GEMM LSTM_SYM_CBLAS(cblas_sgemm)
#include "lstm_sym_runtime_real.inc"
#undef MR
#undef KC
#undef MC
#undef NC
#undef PMR
#undef LANES
