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

DL_INLINE v8f load8(const float *p) { return *(const v8f_unaligned *)p; }
DL_INLINE void store8(float *p, v8f x) { *(v8f_unaligned *)p = x; }

/* D[k][n]: the orthonormal 8-point DCT-II, F = D x, x = D^T F; DB: each value
 * broadcast to 8 lanes, so that products with it are single instructions. */
static float D[8][8];
static v8f DB[8][8];
static int d_ready;

static void init_dct(void) {
    int k, n;
    if (d_ready)
        return;
    for (k = 0; k < 8; k++)
        for (n = 0; n < 8; n++) {
            D[k][n] = (float)(cos(M_PI * (2 * n + 1) * k / 16.0) * (k ? 0.5 : sqrt(0.125)));
            DB[k][n] = (v8f){0} + D[k][n];
        }
    d_ready = 1; /* racing threads write the same values */
}

void dl_workspace_free(dl_workspace *ws) {
    free(ws->memory);
    ws->memory = NULL;
    ws->bytes = 0;
}

static void *reserve(dl_workspace *ws, size_t bytes) {
    if (ws->bytes < bytes) {
        free(ws->memory);
        ws->bytes = 0;
        ws->memory = malloc(bytes + bytes / 4);
        if (!ws->memory)
            return NULL;
        ws->bytes = bytes + bytes / 4;
    }
    return ws->memory;
}

/* Taps of one axis: output i = sum_k weight[i * stride + k] * x[first[i] + k], k < count[i]. */
typedef struct {
    int *first, *count;
    float *weight;
    int stride;
} taps_t;

static double support_of(const dl_axis *a) { return a->scale > 1.0 ? a->scale : 1.0; }

static int check_axis(const dl_axis *a, int limit, char *message, size_t size) {
    if (a->size <= 0 || a->size % 8) {
        snprintf(message, size, "output size %d is not whole 8x8 blocks", a->size);
        return -1;
    }
    if (!(a->scale > 0 && isfinite(a->scale) && isfinite(a->start) && a->lo < a->hi)) {
        snprintf(message, size, "unusable axis (start %g, scale %g, box [%g, %g))", a->start, a->scale, a->lo, a->hi);
        return -1;
    }
    if (floor(a->lo) < 0 || ceil(a->hi) > limit) {
        snprintf(message, size, "box [%g, %g) is outside the plane's %d samples", a->lo, a->hi, limit);
        return -1;
    }
    if (ceil(2 * support_of(a)) + 2 > 512) {
        snprintf(message, size, "downscale factor %g is beyond the C path's 255", a->scale);
        return -1;
    }
    return 0;
}

/* The samples [p_min, p_max] with weight under a centre, clipped to the box. */
static void support_range(const dl_axis *a, double centre, int *p_min, int *p_max) {
    double support = support_of(a);
    int box_first = (int)floor(a->lo), box_last = (int)ceil(a->hi) - 1;
    int lo = (int)floor(centre - support - 0.5) + 1, hi = (int)ceil(centre + support - 0.5) - 1;
    *p_min = lo < box_first ? box_first : lo;
    *p_max = hi > box_last ? box_last : hi;
}

int dl_axis_blocks(const dl_axis *a, int *first, int *end, char *message, size_t size) {
    int lo, hi, unused;
    if (a->size <= 0 || !(a->scale > 0 && isfinite(a->scale) && isfinite(a->start) && a->lo < a->hi)) {
        snprintf(message, size, "unusable axis (size %d, scale %g)", a->size, a->scale);
        return -1;
    }
    support_range(a, a->start + a->scale * 0.5, &lo, &unused);
    support_range(a, a->start + a->scale * (a->size - 0.5), &unused, &hi);
    if (hi < lo) {
        snprintf(message, size, "box [%g, %g) holds no sample", a->lo, a->hi);
        return -1;
    }
    *first = lo / 8;
    *end = hi / 8 + 1;
    return 0;
}

/* dctload.coefficients.resize_taps, flip folded in (output i takes centre size-1-i). */
static int build_taps(const dl_axis *a, taps_t *t, char *message, size_t size) {
    double support = support_of(a), inverse = 1.0 / support;
    int i, k;
    for (i = 0; i < a->size; i++) {
        int source = a->flip ? a->size - 1 - i : i, p_min, p_max;
        double centre = a->start + a->scale * (source + 0.5), sum = 0.0, w[512];
        support_range(a, centre, &p_min, &p_max);
        if (p_max - p_min + 1 > t->stride) /* cannot happen: stride = ceil(2 support) + 2 */
            p_max = p_min + t->stride - 1;
        for (k = 0; k <= p_max - p_min; k++) {
            double d = 1.0 - fabs(p_min + k + 0.5 - centre) * inverse;
            w[k] = d > 0.0 ? d : 0.0;
            sum += w[k];
        }
        if (!(sum > 0.0)) {
            snprintf(message, size, "output sample %d has no source sample in box [%g, %g)", i, a->lo, a->hi);
            return -1;
        }
        t->first[i] = p_min;
        t->count[i] = p_max - p_min + 1;
        for (k = 0; k < t->count[i]; k++)
            t->weight[(size_t)i * t->stride + k] = (float)(w[k] / sum);
    }
    return 0;
}

static size_t aligned(size_t bytes) { return (bytes + 63) & ~(size_t)63; }

/* Dequantizes one block and inverse-DCTs it vertically: dst[y * stride + u]. The rows
 * of zeros after the last nonzero one (most high frequencies) are skipped. */
DL_INLINE void idct_vertical(const int16_t *block, const v8f *table, float *dst, ptrdiff_t stride) {
    v8f acc[8] = {{0}};
    int v, y, n = 8;
    while (n > 0) {
        uint64_t halves[2];
        memcpy(halves, block + 8 * (n - 1), sizeof(halves));
        if (halves[0] | halves[1])
            break;
        n--;
    }
    for (v = 0; v < n; v++) {
        v8f row = __builtin_convertvector(*(const v8s_unaligned *)(block + 8 * v), v8f) * table[v];
        for (y = 0; y < 8; y++)
            acc[y] += DB[v][y] * row;
    }
    for (y = 0; y < 8; y++)
        store8(dst + y * stride, acc[y]);
}

DL_MULTIVERSION
int dl_resample_plane(const int16_t *const *block_rows, int h_blocks, int w_blocks,
                      const uint16_t *table, const dl_axis *rows, const dl_axis *cols,
                      float *out, ptrdiff_t channel_stride, ptrdiff_t row_stride_out,
                      dl_workspace *ws, char *message, size_t message_size) {
    taps_t tr, tc;
    int r0, r1, c0, c1, width, o, p, i, k, v, u, x;
    int out_rows = rows->size / 8, out_cols = cols->size / 8;
    v8f qf[8];
    size_t need;
    char *base;
    float *T, *G, *H;

    init_dct();
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
    need = aligned(sizeof(int) * 2 * rows->size) + aligned(sizeof(float) * (size_t)rows->size * tr.stride) +
           aligned(sizeof(int) * 2 * cols->size) + aligned(sizeof(float) * (size_t)cols->size * tc.stride) +
           aligned(sizeof(float) * (size_t)8 * (r1 - r0) * width) + aligned(sizeof(float) * 8 * (size_t)width) +
           aligned(sizeof(float) * 8 * (size_t)cols->size);
    base = reserve(ws, need);
    if (!base) {
        snprintf(message, message_size, "out of memory (%zu bytes of scratch)", need);
        return -1;
    }
#define TAKE(ptr, type, count) (ptr = (type *)base, base += aligned(sizeof(type) * (size_t)(count)))
    TAKE(tr.first, int, 2 * rows->size);
    TAKE(tr.weight, float, (size_t)rows->size * tr.stride);
    TAKE(tc.first, int, 2 * cols->size);
    TAKE(tc.weight, float, (size_t)cols->size * tc.stride);
    TAKE(T, float, (size_t)8 * (r1 - r0) * width);
    TAKE(G, float, 8 * (size_t)width);
    TAKE(H, float, 8 * (size_t)cols->size);
#undef TAKE
    tr.count = tr.first + rows->size;
    tc.count = tc.first + cols->size;
    if (build_taps(rows, &tr, message, message_size) < 0 || build_taps(cols, &tc, message, message_size) < 0)
        return -1;
    for (v = 0; v < 8; v++)
        for (u = 0; u < 8; u++)
            qf[v][u] = table ? (float)table[8 * v + u] : 1.0f;

    /* Vertical inverse DCT of the blocks under the box. */
    for (i = r0; i < r1; i++) {
        const int16_t *row = block_rows[i];
        float *dst = T + (size_t)8 * (i - r0) * width;
        for (k = c0; k < c1; k++)
            idct_vertical(row + 64 * k, qf, dst + 8 * (k - c0), width);
    }

    for (o = 0; o < out_rows; o++) {
        /* Vertically, 8 columns at a time: the taps of the block row's 8 output rows,
         * their forward DCT, and a transpose into G (columns of 8 values over v). */
        for (x = 0; x < width; x += 8) {
            v8f taps[8], freq[8];
            float tile[8][8];
            for (v = 0; v < 8; v++) {
                int out_row = 8 * o + v;
                const float *w = tr.weight + (size_t)out_row * tr.stride;
                const float *src = T + (size_t)(tr.first[out_row] - 8 * r0) * width + x;
                v8f acc = {0};
                for (k = 0; k < tr.count[out_row]; k++)
                    acc += w[k] * load8(src + (size_t)k * width);
                taps[v] = acc;
            }
            for (v = 0; v < 8; v++) {
                v8f acc = {0};
                for (k = 0; k < 8; k++)
                    acc += DB[v][k] * taps[k];
                freq[v] = acc;
            }
            memcpy(tile, freq, sizeof(tile));
            for (u = 0; u < 8; u++)
                for (v = 0; v < 8; v++)
                    G[8 * (x + u) + v] = tile[v][u];
        }
        /* Horizontally, on vectors over v: inverse DCT of each block, taps, forward DCT. */
        for (k = 0; k < c1 - c0; k++) {
            v8f in[8];
            for (u = 0; u < 8; u++)
                in[u] = load8(G + 64 * k + 8 * u);
            for (x = 0; x < 8; x++) {
                v8f acc = {0};
                for (u = 0; u < 8; u++)
                    acc += DB[u][x] * in[u];
                store8(G + 64 * k + 8 * x, acc);
            }
        }
        for (i = 0; i < cols->size; i++) {
            const float *w = tc.weight + (size_t)i * tc.stride;
            const float *g = G + 8 * (tc.first[i] - 8 * c0);
            v8f acc = {0};
            for (k = 0; k < tc.count[i]; k++)
                acc += w[k] * load8(g + 8 * k);
            store8(H + 8 * i, acc);
        }
        for (p = 0; p < out_cols; p++) {
            v8f in[8];
            float tile[8][8];
            float *dst = out + (ptrdiff_t)o * row_stride_out + p;
            for (x = 0; x < 8; x++)
                in[x] = load8(H + 64 * p + 8 * x);
            for (u = 0; u < 8; u++) {
                v8f acc = {0};
                for (x = 0; x < 8; x++)
                    acc += DB[u][x] * in[x];
                memcpy(tile[u], &acc, sizeof(acc));
            }
            for (v = 0; v < 8; v++)
                for (u = 0; u < 8; u++)
                    dst[(ptrdiff_t)(8 * v + u) * channel_stride] = tile[u][v];
        }
    }
    return 0;
}
