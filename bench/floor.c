/*
 * The floor for reading coefficients: libjpeg's jpeg_read_coefficients alone,
 * from memory, one thread, no copy out and no Python. bench/reader.py compiles
 * and runs it on the same files as the other readers.
 *
 * usage: floor REPEATS FILE...   prints the median ms per image over REPEATS passes
 *
 * glibc would hand libjpeg's ~1 MB arrays back to the kernel after each image and
 * fault them in again for the next; a floor keeps them, as a long-lived reader's heap does.
 */
#include <malloc.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <jpeglib.h>

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf escape;
} error_mgr_t;

static void on_error_exit(j_common_ptr cinfo) {
    longjmp(((error_mgr_t *)cinfo->err)->escape, 1);
}

static void on_message(j_common_ptr cinfo, int level) { (void)cinfo; (void)level; }

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Returns 0 on success. */
static int read_one(const unsigned char *data, unsigned long size) {
    struct jpeg_decompress_struct cinfo;
    error_mgr_t err;
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = on_error_exit;
    err.pub.emit_message = on_message;
    jpeg_create_decompress(&cinfo);
    if (setjmp(err.escape)) {
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    jpeg_mem_src(&cinfo, data, size);
    jpeg_read_header(&cinfo, TRUE);
    jpeg_read_coefficients(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    return 0;
}

int main(int argc, char **argv) {
    int repeats, n = argc - 2, i, r, failures = 0;
    unsigned char **data;
    unsigned long *sizes;
    double *passes;
    if (argc < 3) {
        fprintf(stderr, "usage: %s REPEATS FILE...\n", argv[0]);
        return 2;
    }
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    repeats = atoi(argv[1]);
    data = calloc(n, sizeof(*data));
    sizes = calloc(n, sizeof(*sizes));
    passes = calloc(repeats, sizeof(*passes));
    for (i = 0; i < n; i++) {
        FILE *f = fopen(argv[i + 2], "rb");
        if (!f) {
            perror(argv[i + 2]);
            return 1;
        }
        fseek(f, 0, SEEK_END);
        sizes[i] = (unsigned long)ftell(f);
        fseek(f, 0, SEEK_SET);
        data[i] = malloc(sizes[i]);
        if (fread(data[i], 1, sizes[i], f) != sizes[i]) {
            perror(argv[i + 2]);
            return 1;
        }
        fclose(f);
    }
    for (r = 0; r < repeats; r++) {
        double start = now_ms();
        for (i = 0; i < n; i++)
            failures += read_one(data[i], sizes[i]);
        passes[r] = (now_ms() - start) / n;
    }
    qsort(passes, repeats, sizeof(*passes), cmp);
    printf("%.6f %d\n", passes[repeats / 2], failures);
    return 0;
}
