/* lstm_sym runtime: what every generated cell calls besides its own per-unit arithmetic.
 * Part of lstm_sym (hand-written C99, shipped as is beside the generated cells in generated/).
 *
 * - sizes with overflow checks (static inline);
 * - exp, tanh and the logistic function in plain C99 without libm calls or branches, so that the
 *   cells' per-unit loops that use them vectorize (static inline, both precisions);
 * - fill, copy, bias broadcasts and column sums, and the matrix products: register-blocked
 *   (gemm_nt, gemm_nn), GotoBLAS-style packed (gemm_packed, pack_b, gemm_rows, product_shared),
 *   optionally through CBLAS, optionally shared among OpenMP threads (lstm_sym_runtime.c).
 *
 * Every function exists as _f64 (double) and _f32 (float). Build: compile lstm_sym_runtime.c
 * with the cells (it includes lstm_sym_runtime_real.inc twice), or use one amalgamation
 * (`lstm-sym amalgamate`). Needs only a C99 compiler and <math.h> (-lm); <immintrin.h> when the
 * target has AVX-512 or AVX2, <omp.h> with -fopenmp. With GCC on AVX2 (no masked vector operations),
 * -fno-trapping-math lets the per-unit loops vectorize (the binding builds with it; values are
 * the same with or without it).
 *
 * Build-time options:
 *   -DLSTM_SYM_PORTABLE     the plain-C micro-kernels even where AVX-512 or AVX2 + FMA is
 *                           available (by default their intrinsics, chosen by the compiler's
 *                           target macros);
 *   -DLSTM_SYM_USE_CBLAS    the unpacked products through a CBLAS library (plus
 *                           -DLSTM_SYM_CBLAS_PREFIX=scipy_ for prefixed symbols); link it.
 * No allocation, no globals, no static state: every function is reentrant and thread-safe.
 */
#ifndef LSTM_SYM_RUNTIME_H
#define LSTM_SYM_RUNTIME_H

#include <math.h>
#include <stddef.h>

#include "lstm_sym_tuning.h"

/* The packed products' micro-kernel in AVX-512 intrinsics when the compiler targets it (e.g.
 * -march=native on such a CPU), unless LSTM_SYM_PORTABLE is defined; else plain C that compilers
 * vectorize. */
#if defined(__AVX512F__) && !defined(LSTM_SYM_PORTABLE)
#define LSTM_SYM_AVX512 1
#elif defined(__AVX2__) && defined(__FMA__) && !defined(LSTM_SYM_PORTABLE)
/* Else AVX2 + FMA intrinsics where the compiler targets them (e.g. -march=haswell). */
#define LSTM_SYM_AVX2 1
#endif
/* The cells' forward per-unit loops (their activations are most of a step's arithmetic outside
 * the products) in 512-bit vectors where GCC targets AVX-512, which by default prefers 256 bits:
 * measured about 1.3x faster for them in float64 and 1.15x in float32, the same results. */
#if defined(LSTM_SYM_AVX512) && defined(__GNUC__) && __GNUC__ >= 8 && !defined(__clang__)
#define LSTM_SYM_WIDE_VECTORS __attribute__((target("prefer-vector-width=512")))
#else
#define LSTM_SYM_WIDE_VECTORS
#endif
/* Before the cells' per-unit loops over k: their iterations are independent (each reads and
 * writes only its own unit's elements, and adds to its own unit's parameter gradients), which a
 * compiler cannot prove when one restrict pointer holds several blocks `units` apart (the saved
 * values): GCC gives up after 10 runtime overlap checks, so a cell saving 6 values had scalar
 * activations (peephole_lstm's forward took 2.2x the lstm's). */
#if defined(__clang__)
#define LSTM_SYM_INDEPENDENT _Pragma("clang loop vectorize(assume_safety)")
#elif defined(__GNUC__) && __GNUC__ >= 5
#define LSTM_SYM_INDEPENDENT _Pragma("GCC ivdep")
#else
#define LSTM_SYM_INDEPENDENT
#endif

/* ------------------------------------------------------------------------------------------
 * Sizes
 * ------------------------------------------------------------------------------------------ */

/* Element counts stay below this (so that their bytes also fit in size_t). */
#define LSTM_SYM_SIZE_LIMIT (((size_t)-1) / 16u)

/* *out = a * b; 0 when the product is 0 or exceeds the limit. */
static inline int lstm_sym_multiply(size_t a, size_t b, size_t *out)
{
    if (a == 0 || b == 0 || a > LSTM_SYM_SIZE_LIMIT / b) {
        return 0;
    }
    *out = a * b;
    return 1;
}

/* LSTM_SYM_PACK_AREA(packed, rows, recurrent) with overflow checks: 1 on overflow, or when
 * packed is 0 (a packed-weights count that overflowed). */
static inline size_t lstm_sym_pack_area(size_t packed, size_t rows, size_t recurrent)
{
    const size_t nr = LSTM_SYM_PACK_NR;
    size_t rows_up, recurrent_up, panel;
    if (packed == 0 || packed > LSTM_SYM_SIZE_LIMIT || rows > LSTM_SYM_SIZE_LIMIT ||
        recurrent > LSTM_SYM_SIZE_LIMIT) {
        return 1;
    }
    rows_up = (rows + nr - 1u) / nr * nr;
    recurrent_up = (recurrent + nr - 1u) / nr * nr;
    if (!lstm_sym_multiply(rows_up > recurrent_up ? rows_up : recurrent_up, LSTM_SYM_PACK_KC, &panel) ||
        panel > LSTM_SYM_SIZE_LIMIT - packed ||
        packed + panel > LSTM_SYM_SIZE_LIMIT - LSTM_SYM_PACK_MC * LSTM_SYM_PACK_KC - LSTM_SYM_PACK_SLACK) {
        return 1;
    }
    return packed + panel + LSTM_SYM_PACK_MC * LSTM_SYM_PACK_KC + LSTM_SYM_PACK_SLACK;
}

/* LSTM_SYM_PACK_SIZE(rows, recurrent) with overflow checks: 1 on overflow. */
static inline size_t lstm_sym_pack_size(size_t rows, size_t recurrent)
{
    const size_t nr = LSTM_SYM_PACK_NR;
    size_t weights;
    if (rows > LSTM_SYM_SIZE_LIMIT || recurrent > LSTM_SYM_SIZE_LIMIT ||
        !lstm_sym_multiply((rows + nr - 1u) / nr * nr, (recurrent + nr - 1u) / nr * nr, &weights)) {
        return 1;
    }
    return lstm_sym_pack_area(weights, rows, recurrent);
}

/* *total += LSTM_SYM_PACK_ROUND(cols * size) * (terms * size): a block of B of cols * size
 * columns and terms * size terms packed whole by lstm_sym_pack_b (panels zero-padded to whole
 * LSTM_SYM_PACK_NR columns); 0 on overflow. */
static inline int lstm_sym_pack_add(size_t cols, size_t terms, size_t size, size_t *total)
{
    const size_t nr = LSTM_SYM_PACK_NR;
    size_t columns, depth, block;
    if (!lstm_sym_multiply(cols, size, &columns) || !lstm_sym_multiply(terms, size, &depth) ||
        !lstm_sym_multiply((columns + nr - 1u) / nr * nr, depth, &block) ||
        block > LSTM_SYM_SIZE_LIMIT - *total) {
        return 0;
    }
    *total += block;
    return 1;
}

/* Columns of B a block of the packing area holds: the larger of rows and recurrent, rounded up. */
static inline size_t lstm_sym_pack_panel(size_t rows, size_t recurrent)
{
    const size_t larger = rows > recurrent ? rows : recurrent;
    return (larger + LSTM_SYM_PACK_NR - 1u) / LSTM_SYM_PACK_NR * LSTM_SYM_PACK_NR;
}

/* The elements of a packing area of `area` elements (lstm_sym_pack_area, its start aligned by
 * lstm_sym_pack_offset) its products use: a caller's own panels may start past them (64-byte
 * aligned), in elements it adds to the area (the last LSTM_SYM_PACK_SLACK are the alignment's). */
static inline size_t lstm_sym_pack_used(size_t area)
{
    return area - LSTM_SYM_PACK_SLACK;
}

/* base + pack, 0 when base is 0, pack overflowed (1) or the sum overflows. */
static inline size_t lstm_sym_with_pack(size_t base, size_t pack)
{
    return base == 0 || pack == 1u || pack > LSTM_SYM_SIZE_LIMIT - base ? 0 : base + pack;
}

/* ------------------------------------------------------------------------------------------
 * Activations: within about 1 ulp of the correctly rounded result (tested against mpmath and
 * libm); NaN in gives NaN out. Their constants are checked against their derivation by
 * tests/runtime/test_activation_constants.py.
 * ------------------------------------------------------------------------------------------ */

/* exp(r) for |r| <= ln2 / 2: its Taylor polynomial sum_k r^k / k!, k = 13 down to 0 (Horner) */
static inline double lstm_sym_exp_taylor_f64(double r)
{
    double p;
    p = 1.6059043836821613e-10;
    p = p * r + 2.08767569878681e-09;
    p = p * r + 2.505210838544172e-08;
    p = p * r + 2.755731922398589e-07;
    p = p * r + 2.7557319223985893e-06;
    p = p * r + 2.48015873015873e-05;
    p = p * r + 0.0001984126984126984;
    p = p * r + 0.001388888888888889;
    p = p * r + 0.008333333333333333;
    p = p * r + 0.041666666666666664;
    p = p * r + 0.16666666666666666;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    return p;
}

/* exp(x): x = n ln2 + r with |r| <= ln2 / 2 (n rounded by adding 1.5 * 2^52, r in two parts,
 * Cody-Waite), exp(r) by lstm_sym_exp_taylor_f64, times 2^n built in the exponent bits as
 * 2^n1 2^(n - n1) with n1 = n / 2 rounded, so results below the smallest normal underflow
 * gradually as in libm. x is clamped first: far below the underflow limit gives 0 exactly, far
 * above the overflow limit inf. */
static inline double lstm_sym_exp_f64(double x)
{
    const double shift = 6755399441055744.0;
    union {
        double real;
        unsigned long long bits;
    } n_half, n_rest, scale_half, scale_rest;
    double z, n, n1, r, p;
    /* The bits of an IEEE 754 double fit exactly in unsigned long long (else this does not compile) */
    (void)sizeof(char[sizeof(double) == sizeof(unsigned long long) ? 1 : -1]);
    /* Clamp (comparisons are false for NaN, which passes through) */
    z = x < -746.0 ? -746.0 : (x > 710.0 ? 710.0 : x);
    /* n = round(x / ln2), n1 = round(n / 2): rounded to integers by adding shift */
    n_half.real = z * 1.4426950408889634 + shift;
    n = n_half.real - shift;
    n_half.real = n * 0.5 + shift;
    n1 = n_half.real - shift;
    n_rest.real = (n - n1) + shift;
    /* r = x - n ln2, ln2 split in a high part (n * high is exact) and a low part */
    r = (z - n * 0.6931471803691238) - n * 1.9082149292705877e-10;
    p = lstm_sym_exp_taylor_f64(r);
    /* 2^n1 and 2^(n - n1): the integers sit in the low bits of n_half and n_rest */
    scale_half.bits = (n_half.bits + 1023u) << 52;
    scale_rest.bits = (n_rest.bits + 1023u) << 52;
    return p * scale_half.real * scale_rest.real;
}

/* exp(x) for x <= 0 (or NaN), bit for bit lstm_sym_exp_f64 with fewer operations: the logistic
 * function and tanh only ever take exp of -|x|. With n <= 0, 2^n = 2^(n + 600) 2^-600 and
 * p 2^(n + 600) is normal (n >= -1077), so the one rounding is again the last product's (the
 * same result, subnormals included); no upper clamp. */
static inline double lstm_sym_exp_nonpositive_f64(double x)
{
    const double shift = 6755399441055744.0;
    union {
        double real;
        unsigned long long bits;
    } n_bits, scale;
    double z, n, r, p;
    /* Clamp (comparisons are false for NaN, which passes through) */
    z = x < -746.0 ? -746.0 : x;
    /* n = round(x / ln2): rounded to an integer by adding shift */
    n_bits.real = z * 1.4426950408889634 + shift;
    n = n_bits.real - shift;
    /* r = x - n ln2, ln2 split in a high part (n * high is exact) and a low part */
    r = (z - n * 0.6931471803691238) - n * 1.9082149292705877e-10;
    p = lstm_sym_exp_taylor_f64(r);
    /* 2^(n + 600): the integer sits in the low bits of n_bits */
    scale.bits = (n_bits.bits + 1623u) << 52;
    return p * scale.real * 0x1p-600;
}

/* exp(r) for |r| <= ln2 / 2 in float: its Taylor polynomial, k = 7 down to 0 (Horner) */
static inline float lstm_sym_exp_taylor_f32(float r)
{
    float p;
    p = 0.0001984127F;
    p = p * r + 0.0013888889F;
    p = p * r + 0.008333334F;
    p = p * r + 0.041666668F;
    p = p * r + 0.16666667F;
    p = p * r + 0.5F;
    p = p * r + 1.0F;
    p = p * r + 1.0F;
    return p;
}

/* The same in float: n rounded by adding 1.5 * 2^23, lstm_sym_exp_taylor_f32. */
static inline float lstm_sym_exp_f32(float x)
{
    const float shift = 1.2582912e+07F;
    union {
        float real;
        unsigned int bits;
    } n_half, n_rest, scale_half, scale_rest;
    float z, n, n1, r, p;
    /* The bits of an IEEE 754 float fit exactly in unsigned int (else this does not compile) */
    (void)sizeof(char[sizeof(float) == sizeof(unsigned int) ? 1 : -1]);
    /* Clamp (comparisons are false for NaN, which passes through) */
    z = x < -104.0F ? -104.0F : (x > 89.0F ? 89.0F : x);
    /* n = round(x / ln2), n1 = round(n / 2): rounded to integers by adding shift */
    n_half.real = z * 1.442695F + shift;
    n = n_half.real - shift;
    n_half.real = n * 0.5F + shift;
    n1 = n_half.real - shift;
    n_rest.real = (n - n1) + shift;
    /* r = x - n ln2, ln2 split in a high part (n * high is exact) and a low part */
    r = (z - n * 0.69314575F) - n * 1.4286068e-06F;
    p = lstm_sym_exp_taylor_f32(r);
    /* 2^n1 and 2^(n - n1): the integers sit in the low bits of n_half and n_rest */
    scale_half.bits = (n_half.bits + 127u) << 23;
    scale_rest.bits = (n_rest.bits + 127u) << 23;
    return p * scale_half.real * scale_rest.real;
}

/* exp(x) for x <= 0 (or NaN) in float, bit for bit lstm_sym_exp_f32: 2^n = 2^(n + 64) 2^-64,
 * p 2^(n + 64) normal for n >= -150. A sigmoid and a tanh each take one; in a cell's per-unit
 * loop this is about a quarter of its time less than the general exp. */
static inline float lstm_sym_exp_nonpositive_f32(float x)
{
    const float shift = 1.2582912e+07F;
    union {
        float real;
        unsigned int bits;
    } n_bits, scale;
    float z, n, r, p;
    /* Clamp (comparisons are false for NaN, which passes through) */
    z = x < -104.0F ? -104.0F : x;
    /* n = round(x / ln2): rounded to an integer by adding shift */
    n_bits.real = z * 1.442695F + shift;
    n = n_bits.real - shift;
    /* r = x - n ln2, ln2 split in a high part (n * high is exact) and a low part */
    r = (z - n * 0.69314575F) - n * 1.4286068e-06F;
    p = lstm_sym_exp_taylor_f32(r);
    /* 2^(n + 64): the integer sits in the low bits of n_bits */
    scale.bits = (n_bits.bits + 191u) << 23;
    return p * scale.real * 0x1p-64F;
}

/* tanh(x): for |x| < 0.625 the odd approximation of Cephes' tanh, x + x^3 P(x^2) / Q(x^2);
 * else sign(x) (1 - 2 e / (1 + e)) with e = exp(-2 |x|) <= 1, which never overflows and gives
 * +-1 exactly once e is below half an ulp. */
static inline double lstm_sym_tanh_f64(double x)
{
    const double a = fabs(x);
    const double z = x * x;
    const double e = lstm_sym_exp_nonpositive_f64(-2.0 * a);
    const double p = (-9.64399179425052238628E-1 * z - 9.92877231001918586564E1) * z - 1.61468768441708447952E3;
    const double q = ((z + 1.12811678491632931402E2) * z + 2.23548839060100448583E3) * z + 4.84406305325125486048E3;
    /* one division for both branches (both are computed when the loop is vectorized):
     * P / Q below the threshold, 2 e / (1 + e) above */
    const double d = (a < 0.625 ? p : 2.0 * e) / (a < 0.625 ? q : 1.0 + e);
    const double small = x == 0.0 ? x : x + x * z * d; /* tanh(-0) = -0 */
    const double large = 1.0 - d;
    return a < 0.625 ? small : (x < 0.0 ? -large : large);
}

/* tanh(x) in float: for |x| < 0.625 the odd approximation of Cephes' tanhf, x + x^3 P(x^2);
 * else as in double. */
static inline float lstm_sym_tanh_f32(float x)
{
    const float a = fabsf(x);
    const float z = x * x;
    const float e = lstm_sym_exp_nonpositive_f32(-2.0F * a);
    const float large = 1.0F - 2.0F * e / (1.0F + e);
    const float poly = (((-5.70498872745E-3F * z + 2.06390887954E-2F) * z - 5.37397155531E-2F) * z + 1.33314422036E-1F) * z - 3.33332819422E-1F;
    const float small = x == 0.0F ? x : poly * z * x + x; /* tanh(-0) = -0 */
    return a < 0.625F ? small : (x < 0.0F ? -large : large);
}

/* Logistic function 1 / (1 + exp(-x)) without overflow: exp only ever sees -|x|. */
static inline double lstm_sym_sigmoid_f64(double x)
{
    const double e = lstm_sym_exp_nonpositive_f64(-fabs(x));
    const double r = 1.0/(1 + e);
    return x >= 0.0 ? r : e*r;
}

static inline float lstm_sym_sigmoid_f32(float x)
{
    const float e = lstm_sym_exp_nonpositive_f32(-fabsf(x));
    const float r = 1.0F/(1 + e);
    return x >= 0.0F ? r : e*r;
}

/* ------------------------------------------------------------------------------------------
 * Vectors and matrices (lstm_sym_runtime.c). All matrices row-major; outputs `restrict`. The
 * products accumulate (c += ...) and sum every output in a fixed order: results do not depend
 * on the build's thread count.
 * ------------------------------------------------------------------------------------------ */

/* out[0..n) = value. */
void lstm_sym_fill_f64(size_t n, double value, double *restrict out);
void lstm_sym_fill_f32(size_t n, float value, float *restrict out);
/* out = in, or zeros when in is NULL. */
void lstm_sym_copy_f64(size_t n, const double *restrict in, double *restrict out);
void lstm_sym_copy_f32(size_t n, const float *restrict in, float *restrict out);
/* Every row of out (rows x cols) = bias (cols), or bias + second when second is not NULL. */
void lstm_sym_broadcast_f64(size_t rows, size_t cols, const double *restrict bias,
    const double *restrict second, double *restrict out);
void lstm_sym_broadcast_f32(size_t rows, size_t cols, const float *restrict bias,
    const float *restrict second, float *restrict out);
/* out (cols) += the sum of the rows of a (rows x cols), row after row: Delta^T 1. */
void lstm_sym_column_sums_f64(size_t rows, size_t cols, const double *restrict a, double *restrict out);
void lstm_sym_column_sums_f32(size_t rows, size_t cols, const float *restrict a, float *restrict out);

/* c (m x n) += A B^T, A (m x k), B (n x k): register-blocked, no packing area. */
void lstm_sym_gemm_nt_f64(size_t m, size_t n, size_t k, const double *restrict a,
    const double *restrict b, double *restrict c);
void lstm_sym_gemm_nt_f32(size_t m, size_t n, size_t k, const float *restrict a,
    const float *restrict b, float *restrict c);
/* c (m x n) += A B, A(i, l) = a[i * a_row + l * a_col] (A^T B when a_row = 1), B (k x n). */
void lstm_sym_gemm_nn_f64(size_t m, size_t n, size_t k, const double *restrict a, size_t a_row,
    size_t a_col, const double *restrict b, double *restrict c);
void lstm_sym_gemm_nn_f32(size_t m, size_t n, size_t k, const float *restrict a, size_t a_row,
    size_t a_col, const float *restrict b, float *restrict c);

/* out: the panels of B(l, j) = b[l * b_row + j * b_col], l < kc, j < cols, each kc x PANEL
 * (LSTM_SYM_PANEL_F64 / _F32 columns), `stride` elements apart, zeros past the last column. */
void lstm_sym_pack_b_f64(size_t kc, size_t cols, const double *restrict b, size_t b_row,
    size_t b_col, size_t stride, double *restrict out);
void lstm_sym_pack_b_f32(size_t kc, size_t cols, const float *restrict b, size_t b_row,
    size_t b_col, size_t stride, float *restrict out);
/* c (m x n, row stride n) += A B, A(i, l) = a[i * a_row + l * a_col], B(l, j) = b[l * b_row +
 * j * b_col], or B already packed whole (b_packed: pack_b of all k terms, stride k * PANEL).
 * pack: a packing area (LSTM_SYM_PACK_SIZE), panel: lstm_sym_pack_panel of its sizes. */
void lstm_sym_gemm_packed_f64(size_t m, size_t n, size_t k, const double *restrict a,
    size_t a_row, size_t a_col, const double *restrict b, size_t b_row, size_t b_col,
    const double *b_packed, double *restrict c, double *pack, size_t panel);
void lstm_sym_gemm_packed_f32(size_t m, size_t n, size_t k, const float *restrict a,
    size_t a_row, size_t a_col, const float *restrict b, size_t b_row, size_t b_col,
    const float *b_packed, float *restrict c, float *pack, size_t panel);
/* c (m x n, row stride n) += A B for a few rows of A (m < LSTM_SYM_PACK_BATCH), A(i, l) =
 * a[i * a_row + l], B packed whole by pack_b. */
void lstm_sym_gemm_rows_f64(size_t m, size_t n, size_t k, const double *restrict a,
    size_t a_row, const double *restrict b_packed, double *restrict c);
void lstm_sym_gemm_rows_f32(size_t m, size_t n, size_t k, const float *restrict a,
    size_t a_row, const float *restrict b_packed, float *restrict c);
/* c (m x n) += A B^T: gemm_packed when pack is not NULL, else gemm_nt. */
void lstm_sym_product_nt_f64(size_t m, size_t n, size_t k, const double *restrict a,
    const double *restrict b, double *restrict c, double *pack, size_t panel);
void lstm_sym_product_nt_f32(size_t m, size_t n, size_t k, const float *restrict a,
    const float *restrict b, float *restrict c, float *pack, size_t panel);
/* product_nt with B^T also packed whole beforehand (b_packed: pack_b of all k terms of B(l, j) =
 * b[j * k + l], stride k * PANEL; NULL: not packed): the same sums bit for bit, without packing
 * blocks of B again (a product repeated on blocks of rows against the same weights). */
void lstm_sym_product_nt_packed_f64(size_t m, size_t n, size_t k, const double *restrict a,
    const double *restrict b, const double *b_packed, double *restrict c, double *pack,
    size_t panel);
void lstm_sym_product_nt_packed_f32(size_t m, size_t n, size_t k, const float *restrict a,
    const float *restrict b, const float *b_packed, float *restrict c, float *pack,
    size_t panel);
/* c (m x n) += A B (A as in gemm_nn): gemm_packed when pack is not NULL, else gemm_nn. */
void lstm_sym_product_nn_f64(size_t m, size_t n, size_t k, const double *restrict a,
    size_t a_row, size_t a_col, const double *restrict b, double *restrict c, double *pack,
    size_t panel);
void lstm_sym_product_nn_f32(size_t m, size_t n, size_t k, const float *restrict a,
    size_t a_row, size_t a_col, const float *restrict b, float *restrict c, float *pack,
    size_t panel);
/* c1 (m x n1) += A B1, c2 (m x n2) += A B2 and sums (m) += A 1, A^T row-major (k x m): two
 * weight gradients and a bias gradient from one packing of A. */
void lstm_sym_product_shared_f64(size_t m, size_t k, const double *restrict a,
    const double *restrict b1, size_t n1, double *restrict c1, const double *restrict b2,
    size_t n2, double *restrict c2, double *restrict sums, double *pack, size_t panel);
void lstm_sym_product_shared_f32(size_t m, size_t k, const float *restrict a,
    const float *restrict b1, size_t n1, float *restrict c1, const float *restrict b2,
    size_t n2, float *restrict c2, float *restrict sums, float *pack, size_t panel);
/* Where a packing area starts in `cache`: after `base` elements, aligned to 64 bytes; 0 (the
 * unpacked products) with CBLAS. */
size_t lstm_sym_pack_offset_f64(const double *cache, size_t base);
size_t lstm_sym_pack_offset_f32(const float *cache, size_t base);

#endif /* LSTM_SYM_RUNTIME_H */
