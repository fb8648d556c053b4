/*
 * Exact crop + antialiased bilinear resize + flip of one component's quantized DCT
 * coefficients, in C (the fast path of dctload.coefficients.resample, which stays the
 * reference). No Python here: the reader's entry points call it with the GIL released.
 */
#ifndef DCTLOAD_RESAMPLE_H
#define DCTLOAD_RESAMPLE_H

#include <stddef.h>
#include <stdint.h>

/* One axis of dctload.coefficients.AxisMap, in the component's own samples: output
 * sample i (of size) is centred on start + scale * (i + 0.5) and filtered from the
 * samples in [lo, hi); flip reverses the output order. valid (0: size) outputs are the
 * image's, the rest repeat output valid - 1 (edge padding to whole blocks). support (0:
 * max(scale, 1)) is the triangle's half-width in source samples. */
typedef struct {
    double start, scale, lo, hi;
    int size, flip, valid;
    double support;
} dl_axis;

/* Scratch memory, grown as needed and reused across calls (one per thread). It also
 * keeps the taps of the last call, reused when the next one has the same axes (Cr
 * after Cb). Zero-initialize it. */
typedef struct {
    void *memory;
    size_t bytes;
    int taps_valid, row_taps, col_taps;
    dl_axis rows, cols;
} dl_workspace;

void dl_workspace_free(dl_workspace *ws);

/* The block rows [*first, *end) of a plane that an axis reads (its taps' support,
 * clipped to the box); returns -1 with a message if the axis is unusable. */
int dl_axis_blocks(const dl_axis *axis, int *first, int *end, char *message, size_t message_size);

/* Resamples one plane: block_rows[r][c * 64 + k] (int16, natural order) for blocks
 * r < h_blocks, c < w_blocks, each times table[k] (only the rows that dl_axis_blocks
 * names are read, and only those need be given); writes output coefficient k
 * of output block (o, p) to out[k * channel_stride + o * row_stride_out + p] as float32.
 * Both axis sizes must be multiples of 8. Returns 0, or -1 with a message (a box outside
 * the plane, a size the path cannot take, no memory). */
int dl_resample_plane(const int16_t *const *block_rows, int h_blocks, int w_blocks,
                      const uint16_t *table, const dl_axis *rows, const dl_axis *cols,
                      float *out, ptrdiff_t channel_stride, ptrdiff_t row_stride_out,
                      dl_workspace *ws, char *message, size_t message_size);

/* dl_resample_plane quantized to steps (64, natural order) into the reader's block layout:
 * out[(o * out_cols + p) * 64 + k], int16, as dctload.coefficients.quantize rounds (the
 * same float32 operations: |x| / step + 0.5 floored, signed; halves away from zero);
 * values beyond int16 saturate (the writer refuses them: 8-bit JPEG's range is narrower). */
int dl_resample_quantized(const int16_t *const *block_rows, int h_blocks, int w_blocks,
                          const uint16_t *table, const dl_axis *rows, const dl_axis *cols,
                          const uint16_t *steps, int16_t *out, dl_workspace *ws, char *message,
                          size_t message_size);

#endif
