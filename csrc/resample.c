/*
 * Exact crop + antialiased bilinear resize + flip on DCT coefficients (see resample.h).
 *
 * Per axis the map is DCT_out . R . IDCT_in (dctload.coefficients explains it). Here it
 * is applied factored, which costs far fewer multiply-adds than the banded product of
 * the numpy reference: dequantize and inverse-DCT the blocks under the box vertically;
 * then, one output block row at a time, apply the vertical taps and forward DCT, and
 * (its 8 rows side by side) the horizontal inverse DCT, taps and forward DCT. All in
 * float32, like the reference; the taps are built per call (no cache), in float64, by
 * the reference's formula.
 */
#include "resample.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
/* An AVX2 + FMA copy beside the baseline one, picked at load time by the CPU. */
#define DL_MULTIVERSION __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define DL_MULTIVERSION
#endif
#define DL_INLINE static inline __attribute__((always_inline))

/* 8 floats (or int16s) as one value: GCC/Clang vector extensions, which become AVX2
 * instructions in the x86-64-v3 copy and pairs of SSE instructions in the baseline. */
typedef float v8f __attribute__((vector_size(32)));
typedef float v8f_unaligned __attribute__((vector_size(32), aligned(4), may_alias));
typedef int16_t v8s __attribute__((vector_size(16)));
typedef int16_t v8s_unaligned __attribute__((vector_size(16), aligned(2), may_alias));

/* Macros, not functions: a vector in a signature changes the ABI between the two copies. */
#define load8(p) (*(const v8f_unaligned *)(p))
#define store8(p, x) (*(v8f_unaligned *)(p) = (x))

/* out[j][i] = in[i][j] for an 8x8 tile held in 8 vectors (unpack, shuffle, 128-bit swap). */
#define SHUFFLE(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
DL_INLINE void transpose8(const v8f *in, v8f *out) {
    v8f t[8], s[8];
    int i;
    for (i = 0; i < 8; i += 2) {
        t[i] = SHUFFLE(in[i], in[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
        t[i + 1] = SHUFFLE(in[i], in[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
    }
    for (i = 0; i < 8; i += 4) {
        s[i] = SHUFFLE(t[i], t[i + 2], 0, 1, 8, 9, 4, 5, 12, 13);
        s[i + 1] = SHUFFLE(t[i], t[i + 2], 2, 3, 10, 11, 6, 7, 14, 15);
        s[i + 2] = SHUFFLE(t[i + 1], t[i + 3], 0, 1, 8, 9, 4, 5, 12, 13);
        s[i + 3] = SHUFFLE(t[i + 1], t[i + 3], 2, 3, 10, 11, 6, 7, 14, 15);
    }
    for (i = 0; i < 4; i++) {
        out[i] = SHUFFLE(s[i], s[i + 4], 0, 1, 2, 3, 8, 9, 10, 11);
        out[i + 4] = SHUFFLE(s[i], s[i + 4], 4, 5, 6, 7, 12, 13, 14, 15);
    }
}

/* DB[k][n]: D[k][n] of the orthonormal 8-point DCT-II (F = D x, x = D^T F), broadcast to
 * 8 lanes, so that products with it are single instructions. */
static v8f DB[8][8];

/* Filled once when the library loads, before any thread can read them. */
__attribute__((constructor)) static void init_dct(void) {
    int k, n;
    for (k = 0; k < 8; k++)
        for (n = 0; n < 8; n++)
            DB[k][n] = (v8f){0} + (float)(cos(M_PI * (2 * n + 1) * k / 16.0) * (k ? 0.5 : sqrt(0.125)));
}

void dl_workspace_free(dl_workspace *ws) {
    free(ws->memory);
    ws->memory = NULL;
    ws->bytes = 0;
    ws->taps_valid = 0;
}

static void *reserve(dl_workspace *ws, size_t bytes) {
    if (ws->bytes < bytes) {
        free(ws->memory);
        ws->bytes = 0;
        ws->taps_valid = 0;
        if (posix_memalign(&ws->memory, 64, bytes + bytes / 4)) { /* 64: the vectors' alignment */
            ws->memory = NULL;
            return NULL;
        }
        ws->bytes = bytes + bytes / 4;
    }
    return ws->memory;
}

/* Taps of one axis: output i = sum_k weight[i * stride + k] * x[first[i] + k], k < taps,
 * x counted from the region's first sample. Every output reads the same number of samples
 * (taps; zero weights pad the shorter ones, and first is moved back at the region's end so
 * that no read leaves the region), which lets the loops below be compiled per count. */
typedef struct {
    int *first;
    float *weight;
    v8f *broadcast; /* each weight in 8 lanes, the same layout */
    int stride, taps;
} taps_t;

static double support_of(const dl_axis *a) { return a->support > 0 ? a->support : a->scale > 1.0 ? a->scale : 1.0; }

static int same_axis(const dl_axis *a, const dl_axis *b) {
    return a->start == b->start && a->scale == b->scale && a->lo == b->lo && a->hi == b->hi &&
           a->size == b->size && a->flip == b->flip && a->valid == b->valid && a->support == b->support;
}

/* The outputs that are the image's (the rest repeat the last of them). */
static int valid_of(const dl_axis *a) { return a->valid > 0 && a->valid < a->size ? a->valid : a->size; }

/* dctload.coefficients.AxisMap.sources: the index whose centre output i takes. */
DL_INLINE int source_of(const dl_axis *a, int i) {
    int valid = valid_of(a), index = i < valid ? i : valid - 1;
    return a->flip ? valid - 1 - index : index;
}

/* Whether an axis can be computed at all: finite, a box starting at or after sample 0, and
 * every number small enough for int arithmetic. */
static int usable_axis(const dl_axis *a, char *message, size_t size) {
    if (a->size <= 0 || a->size % 8 || a->size > (1 << 20)) {
        snprintf(message, size, "output size %d is not whole 8x8 blocks (or over 2^20)", a->size);
        return -1;
    }
    if (a->valid < 0 || a->valid > a->size) {
        snprintf(message, size, "valid outputs %d outside 0..%d", a->valid, a->size);
        return -1;
    }
    if (!(isfinite(a->start) && isfinite(a->scale) && isfinite(a->lo) && isfinite(a->hi) && a->scale > 0 &&
          a->support >= 0 && a->support < (1 << 16) && (a->support == 0 || a->support >= 0.5) &&
          a->lo >= 0 && a->lo < a->hi && a->hi < (1 << 24) && fabs(a->start) < (1 << 24) &&
          a->scale * a->size < (1 << 24))) {
        snprintf(message, size, "unusable axis (start %g, scale %g, box [%g, %g))", a->start, a->scale, a->lo, a->hi);
        return -1;
    }
    return 0;
}

static int check_axis(const dl_axis *a, int limit, char *message, size_t size) {
    if (usable_axis(a, message, size) < 0)
        return -1;
    if (ceil(a->hi) > limit) {
        snprintf(message, size, "box [%g, %g) is outside the plane's %d samples", a->lo, a->hi, limit);
        return -1;
    }
    return 0;
}

/* The samples [p_min, p_max] with weight under a centre, clipped to the box. */
DL_INLINE void support_range(const dl_axis *a, double centre, int *p_min, int *p_max) {
    double support = support_of(a);
    int box_first = (int)floor(a->lo), box_last = (int)ceil(a->hi) - 1;
    int lo = (int)floor(centre - support - 0.5) + 1, hi = (int)ceil(centre + support - 0.5) - 1;
    *p_min = lo < box_first ? box_first : lo;
    *p_max = hi > box_last ? box_last : hi;
}

int dl_axis_blocks(const dl_axis *a, int *first, int *end, char *message, size_t size) {
    int lo, hi, unused;
    if (usable_axis(a, message, size) < 0)
        return -1;
    support_range(a, a->start + a->scale * 0.5, &lo, &unused);
    support_range(a, a->start + a->scale * (valid_of(a) - 0.5), &unused, &hi);
    if (hi < lo) {
        snprintf(message, size, "box [%g, %g) holds no sample", a->lo, a->hi);
        return -1;
    }
    *first = lo / 8;
    *end = hi / 8 + 1;
    return 0;
}

/* dctload.coefficients.resize_taps, flip and padding folded in (source_of), over
 * a region of samples [region, region + length). `last` is scratch for size ints. */
DL_INLINE int build_taps(const dl_axis *a, taps_t *t, int region, int length, int *last, char *message,
                         size_t size) {
    double support = support_of(a), inverse = 1.0 / support;
    int i, k;
    t->taps = 1;
    for (i = 0; i < a->size; i++) {
        int source = source_of(a, i);
        support_range(a, a->start + a->scale * (source + 0.5), &t->first[i], &last[i]);
        if (last[i] - t->first[i] + 1 > t->taps)
            t->taps = last[i] - t->first[i] + 1;
    }
    if (t->taps > t->stride || t->taps > length) { /* cannot happen: the region holds every support */
        snprintf(message, size, "taps (%d) beyond the region (%d samples)", t->taps, length);
        return -1;
    }
    for (i = 0; i < a->size; i++) {
        int source = source_of(a, i), p_min = t->first[i], p_max = last[i];
        int first = p_min + t->taps > region + length ? region + length - t->taps : p_min;
        double centre = a->start + a->scale * (source + 0.5), sum = 0.0;
        float *weight = t->weight + (size_t)i * t->stride;
        for (k = 0; k < t->taps; k++) {
            int p = first + k;
            double w = p >= p_min && p <= p_max ? 1.0 - fabs(p + 0.5 - centre) * inverse : 0.0;
            weight[k] = (float)(w > 0.0 ? w : 0.0);
            sum += weight[k];
        }
        if (!(sum > 0.0)) {
            snprintf(message, size, "output sample %d has no source sample in box [%g, %g)", i, a->lo, a->hi);
            return -1;
        }
        t->first[i] = first - region;
        sum = 1.0 / sum;
        for (k = 0; k < t->taps; k++) {
            weight[k] = (float)(weight[k] * sum);
            t->broadcast[(size_t)i * t->stride + k] = (v8f){0} + weight[k];
        }
    }
    return 0;
}

static size_t aligned(size_t bytes) { return (bytes + 63) & ~(size_t)63; }

/* The 8-point transforms on vectors, by the symmetry D[k][7 - n] = (-1)^k D[k][n]: half the
 * products of the matrix form. idct8: out[n] = sum_{k < count} D[k][n] in[k] (in[k] = 0
 * beyond count); dct8: out[k] = sum_n D[k][n] in[n]. */
DL_INLINE void idct8(const v8f *in, int count, v8f *out) {
    v8f even[4] = {{0}}, odd[4] = {{0}};
    int k, n;
    for (k = 0; k < count; k += 2)
        for (n = 0; n < 4; n++)
            even[n] += DB[k][n] * in[k];
    for (k = 1; k < count; k += 2)
        for (n = 0; n < 4; n++)
            odd[n] += DB[k][n] * in[k];
    for (n = 0; n < 4; n++) {
        out[n] = even[n] + odd[n];
        out[7 - n] = even[n] - odd[n];
    }
}

DL_INLINE void dct8(const v8f *in, v8f *out) {
    v8f sum[4], difference[4];
    int k, n;
    for (n = 0; n < 4; n++) {
        sum[n] = in[n] + in[7 - n];
        difference[n] = in[n] - in[7 - n];
    }
    for (k = 0; k < 8; k++) {
        const v8f *half = k % 2 ? difference : sum;
        v8f acc = {0};
        for (n = 0; n < 4; n++)
            acc += DB[k][n] * half[n];
        out[k] = acc;
    }
}

/* Dequantizes one block and inverse-DCTs it vertically: dst[y * stride + u]. The rows
 * of zeros after the last nonzero one (most high frequencies) are skipped. */
DL_INLINE void idct_vertical(const int16_t *block, const v8f *table, float *dst, ptrdiff_t stride) {
    v8f rows[8], samples[8];
    int v, y, n = 8;
    while (n > 0) {
        uint64_t halves[2];
        memcpy(halves, block + 8 * (n - 1), sizeof(halves));
        if (halves[0] | halves[1])
            break;
        n--;
    }
    for (v = 0; v < n; v++)
        rows[v] = __builtin_convertvector(*(const v8s_unaligned *)(block + 8 * v), v8f) * table[v];
    idct8(rows, n, samples);
    for (y = 0; y < 8; y++)
        store8(dst + y * stride, samples[y]);
}

/* Block row o vertically, 8 columns at a time: the taps of its 8 output rows, their
 * forward DCT, and a transpose into G (columns of 8 values over v). */
DL_INLINE void vertical_block_row(const float *T, int width, const taps_t *tr, int o, float *G, const int taps) {
    const float *src[8];
    const v8f *w[8];
    int x, v, k;
    for (v = 0; v < 8; v++) {
        src[v] = T + (size_t)tr->first[8 * o + v] * width;
        w[v] = tr->broadcast + (size_t)(8 * o + v) * tr->stride;
    }
    for (x = 0; x < width; x += 8) {
        v8f rows8[8], freq[8], columns[8];
        for (v = 0; v < 8; v++) {
            v8f acc = {0};
            for (k = 0; k < taps; k++)
                acc += w[v][k] * load8(src[v] + (size_t)k * width + x);
            rows8[v] = acc;
        }
        dct8(rows8, freq);
        transpose8(freq, columns);
        for (k = 0; k < 8; k++)
            store8(G + 8 * (x + k), columns[k]);
    }
}

/* The horizontal taps on G's columns (vectors over v) into H. */
DL_INLINE void horizontal_taps(const float *G, const taps_t *tc, int size, float *H, const int taps) {
    int i, k;
    for (i = 0; i < size; i++) {
        const v8f *w = tc->broadcast + (size_t)i * tc->stride;
        const float *g = G + 8 * tc->first[i];
        v8f acc = {0};
        for (k = 0; k < taps; k++)
            acc += w[k] * load8(g + 8 * k);
        store8(H + 8 * i, acc);
    }
}

/* Calls `step` with a compile-time tap count for the common ones. */
#define BY_TAPS(taps, step)                                                                              \
    switch (taps) {                                                                                      \
    case 2: step(2); break;                                                                              \
    case 3: step(3); break;                                                                              \
    case 4: step(4); break;                                                                              \
    case 5: step(5); break;                                                                              \
    case 6: step(6); break;                                                                              \
    case 7: step(7); break;                                                                              \
    case 8: step(8); break;                                                                              \
    case 9: step(9); break;                                                                              \
    case 10: step(10); break;                                                                            \
    default: step(taps);                                                                                 \
    }

typedef int32_t v8i __attribute__((vector_size(32)));

/* quantize8: out[u] = sign(x[u]) floor(|x[u]| / step[u] + 1/2), saturated to int16: the
 * float32 operations of dctload.coefficients.quantize (the truncation of a value >= 0 is
 * its floor), 8 lanes at once. */
DL_INLINE void quantize8(const v8f *x, const v8f *step, int16_t *out) {
    const v8f limit = (v8f){0} + 32767.0f;
    v8f magnitude = (v8f)((v8i)*x & 0x7fffffff) / *step + 0.5f;
    v8i below = magnitude < limit, negative = *x < (v8f){0};
    v8i level = __builtin_convertvector((v8f)((below & (v8i)magnitude) | (~below & (v8i)limit)), v8i);
    level = (level ^ negative) - negative;
    *(v8s_unaligned *)out = __builtin_convertvector(level, v8s);
}

/* dl_resample_plane, and with steps the quantized blocks (dl_resample_quantized). */
DL_INLINE int resample_plane(const int16_t *const *block_rows, int h_blocks, int w_blocks,
                             const uint16_t *table, const dl_axis *rows, const dl_axis *cols,
                             float *out, ptrdiff_t channel_stride, ptrdiff_t row_stride_out,
                             const uint16_t *steps, int16_t *quantized,
                             dl_workspace *ws, char *message, size_t message_size) {
    taps_t tr, tc;
    int r0, r1, c0, c1, width, o, p, i, k, v, u, x;
    int out_rows = rows->size / 8, out_cols = cols->size / 8;
    v8f qf[8], step_rows[8];
    size_t need;
    char *base;
    float *T, *G, *H;
    int *last;

    if (check_axis(rows, 8 * h_blocks, message, message_size) < 0 ||
        check_axis(cols, 8 * w_blocks, message, message_size) < 0 ||
        dl_axis_blocks(rows, &r0, &r1, message, message_size) < 0 ||
        dl_axis_blocks(cols, &c0, &c1, message, message_size) < 0)
        return -1;
    tr.stride = (int)ceil(2 * support_of(rows)) + 2;
    tc.stride = (int)ceil(2 * support_of(cols)) + 2;
    width = 8 * (c1 - c0);
    /* Layout: taps of rows and columns; T, the region inverse-DCT'd vertically; G and H,
     * a block row's 8 rows as columns of 8 values over v (transformed, then after the
     * horizontal taps). */
    need = aligned(sizeof(int) * rows->size) + aligned(sizeof(float) * (size_t)rows->size * tr.stride) +
           aligned(sizeof(v8f) * (size_t)rows->size * tr.stride) + aligned(sizeof(v8f) * (size_t)cols->size * tc.stride) +
           aligned(sizeof(int) * cols->size) + aligned(sizeof(float) * (size_t)cols->size * tc.stride) +
           aligned(sizeof(float) * (size_t)8 * (r1 - r0) * width) + aligned(sizeof(float) * 8 * (size_t)width) +
           aligned(sizeof(float) * 8 * (size_t)cols->size) +
           aligned(sizeof(int) * (size_t)(rows->size > cols->size ? rows->size : cols->size));
    base = reserve(ws, need);
    if (!base) {
        snprintf(message, message_size, "out of memory (%zu bytes of scratch)", need);
        return -1;
    }
#define TAKE(ptr, type, count) (ptr = (type *)base, base += aligned(sizeof(type) * (size_t)(count)))
    TAKE(tr.first, int, rows->size);
    TAKE(tr.weight, float, (size_t)rows->size * tr.stride);
    TAKE(tr.broadcast, v8f, (size_t)rows->size * tr.stride);
    TAKE(tc.first, int, cols->size);
    TAKE(tc.weight, float, (size_t)cols->size * tc.stride);
    TAKE(tc.broadcast, v8f, (size_t)cols->size * tc.stride);
    TAKE(T, float, (size_t)8 * (r1 - r0) * width);
    TAKE(G, float, 8 * (size_t)width);
    TAKE(H, float, 8 * (size_t)cols->size);
    TAKE(last, int, rows->size > cols->size ? rows->size : cols->size);
#undef TAKE
    if (!(ws->taps_valid && same_axis(rows, &ws->rows) && same_axis(cols, &ws->cols))) {
        ws->taps_valid = 0;
        if (build_taps(rows, &tr, 8 * r0, 8 * (r1 - r0), last, message, message_size) < 0 ||
            build_taps(cols, &tc, 8 * c0, width, last, message, message_size) < 0)
            return -1;
        ws->rows = *rows;
        ws->cols = *cols;
        ws->row_taps = tr.taps;
        ws->col_taps = tc.taps;
        ws->taps_valid = 1;
    }
    tr.taps = ws->row_taps;
    tc.taps = ws->col_taps;
    for (v = 0; v < 8; v++)
        for (u = 0; u < 8; u++) {
            qf[v][u] = table ? (float)table[8 * v + u] : 1.0f;
            step_rows[v][u] = steps ? (float)steps[8 * v + u] : 1.0f;
        }

    /* Vertical inverse DCT of the blocks under the box. */
    for (i = r0; i < r1; i++) {
        const int16_t *row = block_rows[i];
        float *dst = T + (size_t)8 * (i - r0) * width;
        for (k = c0; k < c1; k++)
            idct_vertical(row + 64 * k, qf, dst + 8 * (k - c0), width);
    }

    for (o = 0; o < out_rows; o++) {
#define VERTICAL(n) vertical_block_row(T, width, &tr, o, G, n)
        BY_TAPS(tr.taps, VERTICAL)
#undef VERTICAL
        /* Horizontally, on vectors over v: inverse DCT of each block, taps, forward DCT. */
        for (k = 0; k < c1 - c0; k++) {
            v8f in[8], samples[8];
            for (u = 0; u < 8; u++)
                in[u] = load8(G + 64 * k + 8 * u);
            idct8(in, 8, samples);
            for (x = 0; x < 8; x++)
                store8(G + 64 * k + 8 * x, samples[x]);
        }
#define HORIZONTAL(n) horizontal_taps(G, &tc, cols->size, H, n)
        BY_TAPS(tc.taps, HORIZONTAL)
#undef HORIZONTAL
        /* Forward DCT of each output block (vectors over v, one per u); eight blocks at a
         * time are transposed so that each channel's 8 values (over p) go out as one. */
        for (p = 0; p < out_cols; p += 8) {
            v8f coef[8][8]; /* [block p + j][u], over v */
            int j, blocks;
            if (p + 8 > out_cols && out_cols >= 8)
                p = out_cols - 8; /* the last group overlaps the one before: whole vectors */
            blocks = out_cols - p < 8 ? out_cols - p : 8;
            for (j = 0; j < blocks; j++) {
                v8f in[8];
                for (x = 0; x < 8; x++)
                    in[x] = load8(H + 64 * (p + j) + 8 * x);
                dct8(in, coef[j]);
            }
            if (quantized) { /* block by block, in the reader's layout: 8 v + u */
                for (j = 0; j < blocks; j++) {
                    v8f by_v[8];
                    int16_t *q = quantized + ((size_t)o * out_cols + p + j) * 64;
                    transpose8(coef[j], by_v);
                    for (v = 0; v < 8; v++)
                        quantize8(&by_v[v], &step_rows[v], q + 8 * v);
                }
                continue;
            }
            float *dst = out + (ptrdiff_t)o * row_stride_out + p;
            for (u = 0; u < 8; u++) {
                v8f rows_u[8], by_v[8];
                for (j = 0; j < 8; j++)
                    rows_u[j] = j < blocks ? coef[j][u] : (v8f){0};
                transpose8(rows_u, by_v); /* by_v[v][j]: channel 8 v + u of block p + j */
                for (v = 0; v < 8; v++) {
                    float *channel = dst + (ptrdiff_t)(8 * v + u) * channel_stride;
                    if (blocks == 8)
                        store8(channel, by_v[v]);
                    else
                        for (j = 0; j < blocks; j++)
                            channel[j] = by_v[v][j];
                }
            }
        }
    }
    return 0;
}

DL_MULTIVERSION
int dl_resample_plane(const int16_t *const *block_rows, int h_blocks, int w_blocks,
                      const uint16_t *table, const dl_axis *rows, const dl_axis *cols,
                      float *out, ptrdiff_t channel_stride, ptrdiff_t row_stride_out,
                      dl_workspace *ws, char *message, size_t message_size) {
    return resample_plane(block_rows, h_blocks, w_blocks, table, rows, cols, out, channel_stride, row_stride_out,
                          NULL, NULL, ws, message, message_size);
}

DL_MULTIVERSION
int dl_resample_quantized(const int16_t *const *block_rows, int h_blocks, int w_blocks,
                          const uint16_t *table, const dl_axis *rows, const dl_axis *cols,
                          const uint16_t *steps, int16_t *out, dl_workspace *ws, char *message,
                          size_t message_size) {
    return resample_plane(block_rows, h_blocks, w_blocks, table, rows, cols, NULL, 0, 0, steps, out, ws, message,
                          message_size);
}
