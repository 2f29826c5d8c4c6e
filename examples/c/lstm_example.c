/* A forward and backward pass of the generated LSTM kernel on fixed data.
 *
 * Build and run from the repository root (C99 and libm only), either with the cell and the
 * lstm_sym C runtime as shipped in generated/:
 *   cc -std=c99 -O2 -I generated examples/c/lstm_example.c generated/lstm.c generated/lstm_sym_runtime.c -lm -o build/lstm_example && build/lstm_example
 * or from one amalgamated file (the cell and the runtime) and its header:
 *   lstm-sym amalgamate lstm --out build/lstm_all.c --header build/lstm.h
 *   cc -std=c99 -O2 -I build examples/c/lstm_example.c build/lstm_all.c -lm -o build/lstm_example && build/lstm_example
 *
 * Every buffer is allocated by the caller, here on the stack with the header's size macros.
 * Arrays are row-major; gates are stacked in the order update, forget, candidate, output.
 */
#include <stdio.h>

#include "lstm.h"

#define STEPS 3
#define BATCH 2
#define EVENT_SIZE 3
#define HIDDEN_SIZE 4

/* Fixed, exactly representable values in [-0.5, 0.5]: element i of a buffer with seed s. */
static void fill(double *out, size_t n, unsigned seed)
{
    size_t i;
    for (i = 0; i < n; ++i) {
        out[i] = (double)((long)((i * 7u + seed * 5u) % 17u) - 8) / 16.0;
    }
}

static void print(const char *name, const double *values, size_t n)
{
    size_t i;
    printf("%s:", name);
    for (i = 0; i < n; ++i) {
        printf(" %.17g", values[i]);
    }
    printf("\n");
}

int main(void)
{
    /* Inputs and parameters. */
    double events[STEPS * BATCH * EVENT_SIZE];
    double h0[BATCH * HIDDEN_SIZE], c0[BATCH * HIDDEN_SIZE];
    double event_weights[LSTM_EVENT_WEIGHTS_SIZE(EVENT_SIZE, HIDDEN_SIZE)];
    double event_bias[LSTM_BIAS_SIZE(HIDDEN_SIZE)];
    double hidden_weights[LSTM_HIDDEN_WEIGHTS_SIZE(HIDDEN_SIZE)];
    double hidden_bias[LSTM_BIAS_SIZE(HIDDEN_SIZE)];
    /* Results of the forward pass, and the cache it keeps for the backward pass. */
    double outputs[STEPS * BATCH * HIDDEN_SIZE];
    double h_last[BATCH * HIDDEN_SIZE], c_last[BATCH * HIDDEN_SIZE];
    double cache[LSTM_CACHE_SIZE(STEPS, BATCH, HIDDEN_SIZE)];
    /* The loss is the sum of all outputs: dL/d(outputs) = 1. */
    double d_outputs[STEPS * BATCH * HIDDEN_SIZE];
    /* Gradients. */
    double d_event_weights[LSTM_EVENT_WEIGHTS_SIZE(EVENT_SIZE, HIDDEN_SIZE)];
    double d_event_bias[LSTM_BIAS_SIZE(HIDDEN_SIZE)];
    double d_hidden_weights[LSTM_HIDDEN_WEIGHTS_SIZE(HIDDEN_SIZE)];
    double d_hidden_bias[LSTM_BIAS_SIZE(HIDDEN_SIZE)];
    double d_events[STEPS * BATCH * EVENT_SIZE];
    double d_h0[BATCH * HIDDEN_SIZE], d_c0[BATCH * HIDDEN_SIZE];
    size_t i;
    int status;

    fill(events, sizeof events / sizeof *events, 1);
    fill(h0, sizeof h0 / sizeof *h0, 2);
    fill(c0, sizeof c0 / sizeof *c0, 3);
    fill(event_weights, sizeof event_weights / sizeof *event_weights, 4);
    fill(event_bias, sizeof event_bias / sizeof *event_bias, 5);
    fill(hidden_weights, sizeof hidden_weights / sizeof *hidden_weights, 6);
    fill(hidden_bias, sizeof hidden_bias / sizeof *hidden_bias, 7);
    for (i = 0; i < sizeof d_outputs / sizeof *d_outputs; ++i) {
        d_outputs[i] = 1.0;
    }

    /* NULL lengths: every batch row runs all STEPS steps. */
    status = lstm_forward_f64(STEPS, BATCH, EVENT_SIZE, HIDDEN_SIZE, events, NULL, h0, c0,
                              event_weights, event_bias, hidden_weights, hidden_bias, outputs,
                              h_last, c_last, cache);
    if (status != LSTM_OK) {
        fprintf(stderr, "lstm_forward_f64: %s\n", lstm_error_string(status));
        return 1;
    }
    /* NULL for d_h_last and d_c_last: the loss does not depend on the final states directly. */
    status = lstm_backward_f64(STEPS, BATCH, EVENT_SIZE, HIDDEN_SIZE, events, NULL, event_weights,
                               hidden_weights, cache, d_outputs, NULL, NULL, d_event_weights,
                               d_event_bias, d_hidden_weights, d_hidden_bias, d_events, d_h0, d_c0);
    if (status != LSTM_OK) {
        fprintf(stderr, "lstm_backward_f64: %s\n", lstm_error_string(status));
        return 1;
    }

    print("outputs", outputs, sizeof outputs / sizeof *outputs);
    print("h_last", h_last, sizeof h_last / sizeof *h_last);
    print("c_last", c_last, sizeof c_last / sizeof *c_last);
    print("d_event_weights", d_event_weights, sizeof d_event_weights / sizeof *d_event_weights);
    print("d_event_bias", d_event_bias, sizeof d_event_bias / sizeof *d_event_bias);
    print("d_hidden_weights", d_hidden_weights, sizeof d_hidden_weights / sizeof *d_hidden_weights);
    print("d_hidden_bias", d_hidden_bias, sizeof d_hidden_bias / sizeof *d_hidden_bias);
    print("d_events", d_events, sizeof d_events / sizeof *d_events);
    print("d_h0", d_h0, sizeof d_h0 / sizeof *d_h0);
    print("d_c0", d_c0, sizeof d_c0 / sizeof *d_c0);
    return 0;
}
