/* Unit tests of the lstm_sym C runtime (lstm_sym/runtime), one precision per build:
 * -DTEST_F32 for float, else double. Every routine against a naive reference computed in a wider
 * type (long double for double, double for float), with error bounds stated below; the
 * activations against libm in the wider type, in ulps of the result.
 *
 * Built and run by tests/runtime/test_runtime_c.py for the default build, -DLSTM_SYM_PORTABLE,
 * OpenMP and sanitizers. Prints one line per failure and "ok <count>" at the end; exit status 1
 * on any failure. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lstm_sym_runtime.h"

#ifdef TEST_F32
typedef float real;
typedef double wide;
#define F(name) lstm_sym_##name##_f32
#define EPSILON FLT_EPSILON
#define PANEL LSTM_SYM_PANEL_F32
#define PRECISION "float"
#define WIDE_EXP exp
#define WIDE_TANH tanh
#define WIDE_FABS fabs
#define MANTISSA 24
#define MIN_SUBNORMAL 1.40129846e-45
#else
typedef double real;
typedef long double wide;
#define F(name) lstm_sym_##name##_f64
#define EPSILON DBL_EPSILON
#define PANEL LSTM_SYM_PANEL_F64
#define PRECISION "double"
#define WIDE_EXP expl
#define WIDE_TANH tanhl
#define WIDE_FABS fabsl
#define MANTISSA 53
#define MIN_SUBNORMAL 4.9406564584124654e-324L
#endif

static long failures = 0, checks = 0;

static void fail(const char *what, const char *detail)
{
    if (failures < 40) {
        printf("FAIL %s: %s\n", what, detail);
    }
    ++failures;
}

/* Deterministic values in [-1, 1) (a linear congruential generator). */
static unsigned long long state = 12345u;
static real next_value(void)
{
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return (real)((double)(state >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static real *random_array(size_t n)
{
    real *out = malloc((n ? n : 1u) * sizeof(real));
    size_t i;
    for (i = 0; i < n; ++i) {
        out[i] = next_value();
    }
    return out;
}

static real *copy_array(const real *in, size_t n)
{
    real *out = malloc((n ? n : 1u) * sizeof(real));
    memcpy(out, in, n * sizeof(real));
    return out;
}

/* c (m x n) + A B with A(i, l) = a[i * a_row + l * a_col], B(l, j) = b[l * b_row + j * b_col]:
 * compared with `got`. Error bound of a sum of k + 1 terms in any order, with or without FMA:
 * |got - exact| <= (k + 2) eps (|c| + sum_l |A(i, l) B(l, j)|). */
static void check_product(const char *what, size_t m, size_t n, size_t k, const real *a,
    size_t a_row, size_t a_col, const real *b, size_t b_row, size_t b_col, const real *c_before,
    const real *got)
{
    size_t i, j, l;
    char detail[200];
    for (i = 0; i < m; ++i) {
        for (j = 0; j < n; ++j) {
            wide exact = (wide)c_before[i * n + j], magnitude = WIDE_FABS(exact), bound;
            for (l = 0; l < k; ++l) {
                const wide term = (wide)a[i * a_row + l * a_col] * (wide)b[l * b_row + j * b_col];
                exact += term;
                magnitude += WIDE_FABS(term);
            }
            bound = (wide)(k + 2u) * (wide)EPSILON * magnitude;
            ++checks;
            if (!(WIDE_FABS((wide)got[i * n + j] - exact) <= bound)) {
                snprintf(detail, sizeof detail, "m=%zu n=%zu k=%zu at (%zu, %zu): %.17g, exact %.17Lg",
                    m, n, k, i, j, (double)got[i * n + j], (long double)exact);
                fail(what, detail);
                return;
            }
        }
    }
}

/* Sizes around every block and tile edge: 1, the tiles (4 x NR, 6 x PANEL), a small batch (< 8),
 * the blocks of terms (128, 256, 512) and of rows (128, 256). */
static const size_t ROWS[] = { 1, 3, 4, 6, 7, 8, 13, 64, 131, 257 };
static const size_t COLS[] = { 1, 5, 16, 31, 33, 64, 65, 129 };
static const size_t TERMS[] = { 1, 7, 128, 129, 257, 520 };
#define COUNT(array) (sizeof(array) / sizeof((array)[0]))

static void test_products(void)
{
    size_t mi, ni, ki;
    for (mi = 0; mi < COUNT(ROWS); ++mi) {
        for (ni = 0; ni < COUNT(COLS); ++ni) {
            for (ki = 0; ki < COUNT(TERMS); ++ki) {
                const size_t m = ROWS[mi], n = COLS[ni], k = TERMS[ki];
                /* keep the sanitized builds quick: the largest products only once per k */
                if (m * n * k > 3000000u && !(mi == COUNT(ROWS) - 1u && ni == COUNT(COLS) - 1u)) {
                    continue;
                }
                {
                    const size_t pad = 3u; /* non-contiguous rows: a row stride k + pad */
                    real *a = random_array(m * (k + pad));
                    real *b = random_array(k * n);   /* B (k x n) row-major */
                    real *bt = random_array(n * k);  /* B^T (n x k) row-major */
                    real *at = random_array(k * m);  /* A^T (k x m) row-major */
                    real *c0 = random_array(m * n);
                    real *c = copy_array(c0, m * n);
                    const size_t panel = lstm_sym_pack_panel(n, k);
                    const size_t pack_elements = lstm_sym_pack_size(n, k);
                    real *pack = random_array(pack_elements);
                    const size_t panels = (n + PANEL - 1u) / PANEL;
                    real *b_packed = random_array(panels * PANEL * k);

                    /* gemm_nt: c += A B^T, A (m x k) contiguous */
                    F(gemm_nt)(m, n, k, a, bt, c);
                    check_product("gemm_nt", m, n, k, a, k, 1u, bt, 1u, k, c0, c);
                    /* gemm_nn: A row-major with padded rows, and A^T of a (k x m) matrix */
                    memcpy(c, c0, m * n * sizeof(real));
                    F(gemm_nn)(m, n, k, a, k + pad, 1u, b, c);
                    check_product("gemm_nn strided", m, n, k, a, k + pad, 1u, b, n, 1u, c0, c);
                    memcpy(c, c0, m * n * sizeof(real));
                    F(gemm_nn)(m, n, k, at, 1u, m, b, c);
                    check_product("gemm_nn transposed", m, n, k, at, 1u, m, b, n, 1u, c0, c);
                    /* gemm_packed: A in place (padded rows) or packed (A^T), B row-major or B^T */
                    memcpy(c, c0, m * n * sizeof(real));
                    F(gemm_packed)(m, n, k, a, k + pad, 1u, b, n, 1u, NULL, c, pack, panel);
                    check_product("gemm_packed", m, n, k, a, k + pad, 1u, b, n, 1u, c0, c);
                    memcpy(c, c0, m * n * sizeof(real));
                    F(gemm_packed)(m, n, k, at, 1u, m, bt, 1u, k, NULL, c, pack, panel);
                    check_product("gemm_packed A^T B^T", m, n, k, at, 1u, m, bt, 1u, k, c0, c);
                    /* B packed whole (as the cells pack W_hidden once per call) */
                    F(pack_b)(k, n, bt, 1u, k, k * PANEL, b_packed);
                    memcpy(c, c0, m * n * sizeof(real));
                    F(gemm_packed)(m, n, k, a, k + pad, 1u, NULL, 0u, 0u, b_packed, c, pack, panel);
                    check_product("gemm_packed B packed", m, n, k, a, k + pad, 1u, bt, 1u, k, c0, c);
                    if (m < LSTM_SYM_PACK_BATCH) {
                        memcpy(c, c0, m * n * sizeof(real));
                        F(gemm_rows)(m, n, k, a, k + pad, b_packed, c);
                        check_product("gemm_rows", m, n, k, a, k + pad, 1u, bt, 1u, k, c0, c);
                    }
                    /* product_nt / product_nn: unpacked (pack NULL) and packed */
                    memcpy(c, c0, m * n * sizeof(real));
                    F(product_nt)(m, n, k, a, bt, c, NULL, 0u);
                    check_product("product_nt unpacked", m, n, k, a, k, 1u, bt, 1u, k, c0, c);
                    memcpy(c, c0, m * n * sizeof(real));
                    F(product_nt)(m, n, k, a, bt, c, pack, panel);
                    check_product("product_nt packed", m, n, k, a, k, 1u, bt, 1u, k, c0, c);
                    /* product_nt_packed: product_nt's sums bit for bit (B^T packed whole above),
                     * on all rows and on the last rows alone (infer's blocks of steps) */
                    {
                        real *c_packed = copy_array(c0, m * n);
                        const size_t first = m / 2u;
                        F(product_nt_packed)(m, n, k, a, bt, b_packed, c_packed, pack, panel);
                        ++checks;
                        if (memcmp(c_packed, c, m * n * sizeof(real)) != 0) {
                            char detail[96];
                            snprintf(detail, sizeof detail, "m=%zu n=%zu k=%zu", m, n, k);
                            fail("product_nt_packed differs from product_nt", detail);
                        }
                        memcpy(c_packed, c0, m * n * sizeof(real));
                        F(product_nt_packed)(m - first, n, k, a + first * k, bt, b_packed,
                            c_packed + first * n, pack, panel);
                        ++checks;
                        if (!(2u * n <= PANEL && m > n) &&
                            memcmp(c_packed + first * n, c + first * n, (m - first) * n * sizeof(real)) != 0) {
                            char detail[96];
                            snprintf(detail, sizeof detail, "m=%zu of %zu n=%zu k=%zu", m - first, m, n, k);
                            fail("product_nt_packed on fewer rows differs from product_nt", detail);
                        }
                        free(c_packed);
                    }
                    memcpy(c, c0, m * n * sizeof(real));
                    F(product_nn)(m, n, k, at, 1u, m, b, c, NULL, 0u);
                    check_product("product_nn unpacked", m, n, k, at, 1u, m, b, n, 1u, c0, c);
                    memcpy(c, c0, m * n * sizeof(real));
                    F(product_nn)(m, n, k, at, 1u, m, b, c, pack, panel);
                    check_product("product_nn packed", m, n, k, at, 1u, m, b, n, 1u, c0, c);
                    free(a), free(b), free(bt), free(at), free(c0), free(c), free(pack), free(b_packed);
                }
            }
        }
    }
}

/* product_shared: c1 += A B1, c2 += A B2, sums += A 1 with A^T (k x m) row-major, through the
 * shared packing (a panel wide enough for both) and the fallback (no packing area; too narrow). */
static void test_product_shared(void)
{
    static const size_t sizes[][4] = {
        /* m, k, n1, n2 */
        { 1, 1, 1, 1 }, { 7, 9, 40, 70 }, { 70, 300, 40, 33 }, { 131, 520, 65, 129 },
        { 280, 257, 100, 70 }, { 6, 128, PANEL, PANEL }, { 13, 129, 3, 70 },
    };
    size_t s, i, l, variant;
    char detail[160];
    for (s = 0; s < COUNT(sizes); ++s) {
        const size_t m = sizes[s][0], k = sizes[s][1], n1 = sizes[s][2], n2 = sizes[s][3];
        const size_t wide_panel = lstm_sym_pack_panel(n1 + n2 + 2u * PANEL, 1u);
        real *at = random_array(k * m), *b1 = random_array(k * n1), *b2 = random_array(k * n2);
        real *c10 = random_array(m * n1), *c20 = random_array(m * n2), *sums0 = random_array(m);
        real *pack = random_array(lstm_sym_pack_size(n1 + n2 + 2u * PANEL, 1u));
        for (variant = 0; variant < 2u; ++variant) {
            real *c1 = copy_array(c10, m * n1), *c2 = copy_array(c20, m * n2);
            real *sums = copy_array(sums0, m);
            F(product_shared)(m, k, at, b1, n1, c1, b2, n2, c2, sums, variant ? pack : NULL,
                wide_panel);
            check_product("product_shared c1", m, n1, k, at, 1u, m, b1, n1, 1u, c10, c1);
            check_product("product_shared c2", m, n2, k, at, 1u, m, b2, n2, 1u, c20, c2);
            for (i = 0; i < m; ++i) {
                wide exact = sums0[i], magnitude = WIDE_FABS(exact);
                for (l = 0; l < k; ++l) {
                    exact += (wide)at[l * m + i];
                    magnitude += WIDE_FABS((wide)at[l * m + i]);
                }
                ++checks;
                if (!(WIDE_FABS((wide)sums[i] - exact) <= (wide)(k + 2u) * (wide)EPSILON * magnitude)) {
                    snprintf(detail, sizeof detail, "m=%zu k=%zu row %zu", m, k, i);
                    fail("product_shared sums", detail);
                    break;
                }
            }
            free(c1), free(c2), free(sums);
        }
        free(at), free(b1), free(b2), free(c10), free(c20), free(sums0), free(pack);
    }
}

/* fill, copy, broadcast, column_sums; sizes past LSTM_SYM_PARALLEL_ELEMENTS reach the OpenMP
 * split in an OpenMP build. */
static void test_vectors(void)
{
    static const size_t shapes[][2] = { { 1, 1 }, { 3, 5 }, { 16, 17 }, { 513, 515 }, { 2000, 131 } };
    size_t s, i, j;
    char detail[160];
    for (s = 0; s < COUNT(shapes); ++s) {
        const size_t rows = shapes[s][0], cols = shapes[s][1], n = rows * cols;
        real *x = random_array(n), *out = random_array(n), *bias = random_array(cols);
        real *second = random_array(cols), *sums0 = random_array(cols), *sums = copy_array(sums0, cols);
        int bad = 0;
        F(fill)(n, (real)0.25, out);
        for (i = 0; i < n; ++i) {
            bad |= out[i] != (real)0.25;
        }
        F(copy)(n, x, out);
        bad |= memcmp(out, x, n * sizeof(real)) != 0;
        F(copy)(n, NULL, out);
        for (i = 0; i < n; ++i) {
            bad |= out[i] != (real)0 || signbit(out[i]);
        }
        ++checks;
        if (bad) {
            snprintf(detail, sizeof detail, "%zu elements", n);
            fail("fill/copy", detail);
        }
        bad = 0;
        F(broadcast)(rows, cols, bias, NULL, out);
        for (i = 0; i < rows; ++i) {
            bad |= memcmp(out + i * cols, bias, cols * sizeof(real)) != 0;
        }
        F(broadcast)(rows, cols, bias, second, out);
        for (i = 0; i < rows; ++i) {
            for (j = 0; j < cols; ++j) {
                bad |= out[i * cols + j] != bias[j] + second[j]; /* one rounding: exact compare */
            }
        }
        ++checks;
        if (bad) {
            snprintf(detail, sizeof detail, "%zu x %zu", rows, cols);
            fail("broadcast", detail);
        }
        /* column sums: row after row, in order, so exactly the sequential sum */
        F(column_sums)(rows, cols, x, sums);
        for (j = 0; j < cols; ++j) {
            real expected = sums0[j];
            for (i = 0; i < rows; ++i) {
                expected += x[i * cols + j];
            }
            ++checks;
            if (sums[j] != expected) {
                snprintf(detail, sizeof detail, "%zu x %zu column %zu: %.17g, expected %.17g", rows,
                    cols, j, (double)sums[j], (double)expected);
                fail("column_sums", detail);
                break;
            }
        }
        free(x), free(out), free(bias), free(second), free(sums0), free(sums);
    }
}

/* Sizes: overflow gives 0 (multiply, pack_add), 1 (pack_size, pack_area), 0 (with_pack); the
 * packing area as the ABI macros say; pack_add sums blocks of whole 64-column panels;
 * pack_offset aligns to 64 bytes. */
static void test_sizes(void)
{
    size_t out = 7u, offset;
    real buffer[64] = { 0 };
    int bad = 0;
    bad |= !lstm_sym_multiply(3u, 5u, &out) || out != 15u;
    bad |= lstm_sym_multiply(0u, 5u, &out) || lstm_sym_multiply(LSTM_SYM_SIZE_LIMIT, 2u, &out);
    bad |= lstm_sym_pack_size(LSTM_SYM_SIZE_LIMIT, 2u) != 1u;
    bad |= lstm_sym_pack_size(256u, 64u) != LSTM_SYM_PACK_SIZE(256u, 64u);
    bad |= lstm_sym_pack_size(1u, 1u) != LSTM_SYM_PACK_SIZE(1u, 1u);
    bad |= lstm_sym_pack_size(1000u, 130u) != LSTM_SYM_PACK_SIZE(1000u, 130u);
    bad |= lstm_sym_pack_area(0u, 4u, 1u) != 1u || lstm_sym_pack_area(LSTM_SYM_SIZE_LIMIT, 4u, 1u) != 1u;
    bad |= lstm_sym_pack_area(100u, 130u, 7u) != LSTM_SYM_PACK_AREA(100u, 130u, 7u);
    bad |= lstm_sym_pack_area(100u, 130u, 7u) != 100u + 256u * 192u + 128u * 256u + 16u;
    out = 5u;
    bad |= !lstm_sym_pack_add(2u, 3u, 7u, &out) || out != 5u + 64u * 21u;
    bad |= !lstm_sym_pack_add(1u, 1u, 65u, &out) || out != 5u + 64u * 21u + 128u * 65u;
    bad |= lstm_sym_pack_add(13u, 1u, LSTM_SYM_SIZE_LIMIT / 4u, &out);
    bad |= lstm_sym_pack_add(1u, 3u, LSTM_SYM_SIZE_LIMIT / 2u, &out);
    bad |= lstm_sym_pack_panel(1u, 65u) != 128u || lstm_sym_pack_panel(64u, 3u) != 64u;
    bad |= lstm_sym_with_pack(0u, 5u) != 0u || lstm_sym_with_pack(5u, 1u) != 0u;
    bad |= lstm_sym_with_pack(5u, 7u) != 12u;
    offset = F(pack_offset)(buffer, 3u);
#ifndef LSTM_SYM_USE_CBLAS
    bad |= offset < 3u || offset >= 3u + 64u / sizeof(real);
    bad |= ((size_t)(buffer + offset) % 64u) != 0u && ((size_t)buffer % sizeof(real)) == 0u;
#endif
    ++checks;
    if (bad) {
        fail("sizes", "an overflow check, LSTM_SYM_PACK_SIZE, LSTM_SYM_PACK_AREA, pack_add or pack_offset");
    }
}

/* |got - exact| in ulps of the result's precision at `exact` (subnormal spacing below). */
static wide ulps(real got, wide exact)
{
    int exponent;
    wide spacing;
    if (isinf((real)exact) || isinf(got)) { /* beyond the largest finite value, rounded */
        return got == (real)exact ? 0 : 1e30;
    }
    frexp((double)exact, &exponent);
    spacing = ldexpl(1.0L, exponent - MANTISSA);
    if (spacing < (wide)MIN_SUBNORMAL) {
        spacing = (wide)MIN_SUBNORMAL;
    }
    return WIDE_FABS((wide)got - exact) / spacing;
}

static wide sigmoid_exact(real x)
{
    return 1 / (1 + WIDE_EXP(-(wide)x));
}

/* Largest errors, in ulps of the correctly rounded result (libm's own are about 0.5 for exp and
 * 1-2 for tanh): exp 1.5, tanh 2, sigmoid 3 (composed of exp, a sum and a division). */
#define EXP_ULPS 1.5
#define TANH_ULPS 2.0
#define SIGMOID_ULPS 3.0

static void check_activation(const char *what, real x, real got, wide exact, double limit)
{
    char detail[160];
    const wide error = ulps(got, exact);
    ++checks;
    if (!(error <= (wide)limit)) {
        snprintf(detail, sizeof detail, "x = %.17g: %.17g, libm %.17Lg (%.3Lg ulps)", (double)x,
            (double)got, (long double)exact, (long double)error);
        fail(what, detail);
    }
}

static void test_activations(void)
{
    const real inf = (real)INFINITY, nan = (real)NAN;
    /* the range where exp is finite and nonzero, and beyond it */
#ifdef TEST_F32
    const double low = -110.0, high = 95.0;
#else
    const double low = -760.0, high = 720.0;
#endif
    const long points = 400000;
    long i;
    for (i = 0; i <= points; ++i) {
        /* an even grid over [low, high], and a denser one over [-20, 20] */
        const real x = (real)(low + (high - low) * (double)i / (double)points);
        const real y = (real)(-20.0 + 40.0 * (double)i / (double)points) + (real)1e-3 * next_value();
        check_activation("exp", x, F(exp)(x), WIDE_EXP((wide)x), EXP_ULPS);
        check_activation("exp", y, F(exp)(y), WIDE_EXP((wide)y), EXP_ULPS);
        check_activation("tanh", y, F(tanh)(y), WIDE_TANH((wide)y), TANH_ULPS);
        check_activation("tanh", x, F(tanh)(x), WIDE_TANH((wide)x), TANH_ULPS);
        check_activation("sigmoid", y, F(sigmoid)(y), sigmoid_exact(y), SIGMOID_ULPS);
        check_activation("sigmoid", x, F(sigmoid)(x), sigmoid_exact(x), SIGMOID_ULPS);
    }
    /* exp of a nonpositive argument (the logistic function's and tanh's) is the general exp bit
     * for bit: on both grids, their negated values, the clamp and the subnormal range */
    for (i = 0; i <= points; ++i) {
        const real x = -(real)fabs(low + (high - low) * (double)i / (double)points);
        const real y = -(real)fabs(-20.0 + 40.0 * (double)i / (double)points + 1e-3 * (double)next_value());
        const real tail = (real)(low * (0.5 + 0.5 * (double)i / (double)points));
        const real args[3] = {x, y, tail};
        int k;
        for (k = 0; k < 3; ++k) {
            const real a = F(exp_nonpositive)(args[k]), b = F(exp)(args[k]);
            ++checks;
            if (memcmp(&a, &b, sizeof a) != 0) {
                char detail[160];
                snprintf(detail, sizeof detail, "x = %.17g: %.17g, exp %.17g", (double)args[k],
                    (double)a, (double)b);
                fail("exp_nonpositive", detail);
            }
        }
    }
    ++checks;
    if (F(exp_nonpositive)((real)-0.0) != 1 || F(exp_nonpositive)(-inf) != 0 ||
        F(exp_nonpositive)((real)-1e30) != 0 || !isnan(F(exp_nonpositive)(nan))) {
        fail("exp_nonpositive ends", "exp(-0) = 1, exp(-inf) = exp(-1e30) = 0, NaN");
    }
    /* tiny arguments (tanh(x) = x, exp(x) = 1) */
    for (i = -40; i <= 40; ++i) {
        const real x = (real)ldexp(1.0, (int)(i > 0 ? -i : i - 1)) * (i > 0 ? 1 : -1);
        check_activation("tanh tiny", x, F(tanh)(x), WIDE_TANH((wide)x), TANH_ULPS);
        check_activation("exp tiny", x, F(exp)(x), WIDE_EXP((wide)x), EXP_ULPS);
    }
    /* the ends: -0, huge, inf, NaN */
    ++checks;
    if (F(exp)((real)-0.0) != 1 || F(exp)(inf) != inf || F(exp)(-inf) != 0 ||
        F(exp)((real)1e30) != inf || F(exp)((real)-1e30) != 0 || !isnan(F(exp)(nan))) {
        fail("exp ends", "exp(-0) = 1, exp(+-inf) = inf / 0, exp(+-1e30) = inf / 0, NaN");
    }
    ++checks;
    if (F(tanh)((real)-0.0) != 0 || !signbit(F(tanh)((real)-0.0)) || signbit(F(tanh)((real)0.0)) ||
        F(tanh)(inf) != 1 || F(tanh)(-inf) != -1 || F(tanh)((real)1e30) != 1 ||
        F(tanh)((real)-1e30) != -1 || !isnan(F(tanh)(nan))) {
        fail("tanh ends", "tanh(-0) = -0, tanh(+-inf) = tanh(+-1e30) = +-1, NaN");
    }
    ++checks;
    if (F(sigmoid)((real)-0.0) != (real)0.5 || F(sigmoid)(inf) != 1 || F(sigmoid)(-inf) != 0 ||
        F(sigmoid)((real)1e30) != 1 || F(sigmoid)((real)-1e30) != 0 || !isnan(F(sigmoid)(nan))) {
        fail("sigmoid ends", "sigmoid(-0) = 1/2, sigmoid(+-inf) = sigmoid(+-1e30) = 1 / 0, NaN");
    }
}

int main(void)
{
    test_sizes();
    test_vectors();
    test_activations();
    test_product_shared();
    test_products();
    if (failures) {
        printf("%s: %ld of %ld checks failed\n", PRECISION, failures, checks);
        return 1;
    }
    printf("ok %s %ld\n", PRECISION, checks);
    return 0;
}
