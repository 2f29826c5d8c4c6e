/* lstm_sym runtime: every tuning constant of the matrix products and the OpenMP sharing, in one
 * place. Part of lstm_sym (hand-written, shipped as is beside the generated cells).
 *
 * Changing a constant marked ABI changes the cache size the cells ask their callers for
 * (<CELL>_PACK_SIZE and <cell>_cache_size): rebuild every cell and its callers together.
 */
#ifndef LSTM_SYM_TUNING_H
#define LSTM_SYM_TUNING_H

#include <stddef.h>

/* ---- The packed products of the sequence entry points (GotoBLAS-style) ---------------------- */

/* ABI. Blocks of at most PACK_KC terms; a block of A holds PACK_MC x PACK_KC elements (each
 * precision cuts its own blocks within these). */
#define LSTM_SYM_PACK_KC 256u
#define LSTM_SYM_PACK_MC 128u
/* ABI. Columns of the widest panel (the larger of PANEL_F32 and PANEL_F64); packed sizes are
 * rounded up to it. */
#define LSTM_SYM_PACK_NR 64u

/* Per precision: a kernel tile is SLIVER rows by PANEL columns (four vectors of 512 bits; 24
 * sums in registers: few loads and broadcasts per multiply-add, measured 10-30% faster than
 * 4 x 4 and 8 x 2 vectors); PANEL_TERMS terms per pass against W_hidden packed whole (a panel of
 * B of 64 KiB for float, 32 KiB for double: measured best). */
#define LSTM_SYM_SLIVER 6u
#define LSTM_SYM_PANEL_F64 32u
#define LSTM_SYM_PANEL_F32 64u
#define LSTM_SYM_PANEL_TERMS_F64 128u
#define LSTM_SYM_PANEL_TERMS_F32 256u

/* Each step's product with W_hidden goes row by row (gemm_rows) below this many rows (a small
 * batch). */
#define LSTM_SYM_PACK_BATCH 8u

/* ---- The unpacked register-blocked products (gemm_nt, gemm_nn: the step entry points) ------- */

/* Tiles of TILE_ROWS x TILE_COLS outputs (TILE_COLS: two or four vectors of 256 bits),
 * TILE_TERMS terms per pass, blocks of TILE_BLOCK rows of A or of B^T. */
#define LSTM_SYM_TILE_ROWS 4u
#define LSTM_SYM_TILE_COLS_F64 16u
#define LSTM_SYM_TILE_COLS_F32 32u
#define LSTM_SYM_TILE_TERMS 256u
#define LSTM_SYM_TILE_BLOCK 256u
/* Partial sums per dot product (one 256-bit vector of float). */
#define LSTM_SYM_DOT_LANES 8u
/* Elements of a block of rows kept in the L2 cache by the small-batch products (128 KiB). */
#define LSTM_SYM_L2_ELEMENTS_F64 16384u
#define LSTM_SYM_L2_ELEMENTS_F32 32768u

/* ---- OpenMP (only in a build with -fopenmp) ------------------------------------------------ */

/* The per-unit work of a step is shared among threads (one call per batch row, so that each
 * vectorizes as in the serial build) from this many units on. */
#define LSTM_SYM_PARALLEL_UNITS 8192u
/* A packed product runs on a team of threads from this many multiply-adds on (about 10 us on one
 * core: waking a sleeping thread costs tens of microseconds). */
#define LSTM_SYM_PARALLEL_FLOPS 1048576u
/* A bias broadcast or a column sum is shared among threads from this many elements on. */
#define LSTM_SYM_PARALLEL_ELEMENTS 262144u

/* ---- The blocked scan of cells with an affine update (<cell>_forward_scan, _backward_scan) -- */

/* Units (steps x batch x hidden) per block of the scan: a block's pre-activations, saved values
 * and states stay in the L2 cache between its two passes (about 150 KiB in double for minLSTM's
 * G + SAVED + 1 = 9 values per unit), one step's in L1. */
#define LSTM_SYM_SCAN_UNITS 2048u

/* ---- The packing area (ABI) ----------------------------------------------------------------- */

/* Elements a packing area holds beyond what its products use, so that its start can be moved
 * up to a 64-byte boundary (lstm_sym_pack_offset: at most 15 floats or 7 doubles). */
#define LSTM_SYM_PACK_SLACK 16u
/* n rounded up to whole panels. */
#define LSTM_SYM_PACK_ROUND(n) (((size_t)(n) + LSTM_SYM_PACK_NR - 1u) / LSTM_SYM_PACK_NR * LSTM_SYM_PACK_NR)
/* Elements of a packing area holding `packed` elements of packed weights: a block of B
 * (PACK_KC x the larger of rows and recurrent, rounded), a block of A (PACK_MC x PACK_KC),
 * PACK_SLACK more for 64-byte alignment. No overflow check: lstm_sym_pack_area has one. */
#define LSTM_SYM_PACK_AREA(packed, rows, recurrent) \
    ((size_t)(packed) + \
     LSTM_SYM_PACK_KC * (LSTM_SYM_PACK_ROUND(rows) > LSTM_SYM_PACK_ROUND(recurrent) ? \
     LSTM_SYM_PACK_ROUND(rows) : LSTM_SYM_PACK_ROUND(recurrent)) + \
     LSTM_SYM_PACK_MC * LSTM_SYM_PACK_KC + LSTM_SYM_PACK_SLACK)
/* Elements of the packing area at the end of a cell's cache: W_hidden (rows x recurrent) packed
 * either way round, both sizes rounded up to whole panels, then the blocks of
 * LSTM_SYM_PACK_AREA. (A cell whose gates read other sources than the recurrent state packs
 * W_hidden block by block: its header sizes the packed weights itself.) No overflow check:
 * lstm_sym_pack_size has one. */
#define LSTM_SYM_PACK_SIZE(rows, recurrent) \
    LSTM_SYM_PACK_AREA(LSTM_SYM_PACK_ROUND(rows) * LSTM_SYM_PACK_ROUND(recurrent), rows, recurrent)

#endif /* LSTM_SYM_TUNING_H */
