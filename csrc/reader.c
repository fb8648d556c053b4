/*
 * dctload._reader: quantized DCT coefficients straight from JPEG bytes.
 *
 * This module only parses bytes and fills arrays: it runs libjpeg up to the
 * end of entropy decoding (jpeg_read_coefficients) and hands libjpeg's own
 * coefficient arrays to Python, where numpy views cover the image's blocks (not
 * the MCU padding); the blocks are copied into one malloc'd buffer only where
 * libjpeg's rows are not evenly spaced. The batch reader (read_resampled)
 * resamples them straight into the batch tensors (resample.c).
 * All libjpeg work runs with the GIL released; every call owns its own
 * decompressor, error manager and output, so threads share no mutable state.
 *
 * libjpeg reports fatal errors through error_exit, whose default ends the
 * process: it is replaced by a longjmp back into the call that started the
 * work, which then raises dctload.JPEGError (or UnsupportedJPEGError).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <pthread.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

#include "resample.h"

/* A standard progressive script has about 10 scans; a file with thousands
 * of tiny scans is a known way to make libjpeg spin for minutes. */
#define MAX_SCANS 1000
#define MAX_WARNINGS 16

/* Error kinds; the Python layer turns each into an exception class and a
 * machine-readable `code` on it. */
typedef enum {
    ERR_NONE = 0,
    ERR_CORRUPT,      /* libjpeg could not decode the data */
    ERR_STRICT,       /* a warning, raised because strict=True */
    ERR_NOT_JPEG,     /* no SOI marker: some other kind of file */
    ERR_EMPTY,        /* zero bytes */
    ERR_LOSSLESS,     /* SOF3/7/11/15: lossless, no DCT coefficients */
    ERR_PROCESS,      /* another SOF type this libjpeg cannot read */
    ERR_PRECISION,    /* 12- or 16-bit samples */
    ERR_COLORSPACE,   /* RGB/CMYK/YCCK: no YCbCr coefficients */
    ERR_TOO_LARGE,    /* header declares more than max_pixels */
    ERR_TOO_MANY_SCANS,
    ERR_NO_MEMORY,
    ERR_GEOMETRY      /* a box or size the resampling cannot take */
} err_kind;

static const char *ERR_CODES[] = {
    "", "corrupt", "strict", "not_jpeg", "empty", "lossless", "process",
    "precision", "colorspace", "too_large", "too_many_scans", "no_memory", "geometry"};

typedef struct {
    /* inputs */
    const unsigned char *data;
    size_t size;
    int strict;
    unsigned long long max_pixels;
    /* outputs */
    err_kind err;
    char message[JMSG_LENGTH_MAX + 128];
    int n_warnings;
    char warnings[MAX_WARNINGS][JMSG_LENGTH_MAX];
    int n_warnings_dropped;
    int width, height, num_components, progressive, arithmetic;
    int restart_interval, saw_adobe, adobe_transform;
    J_COLOR_SPACE colorspace;
    int h_samp[MAX_COMPONENTS], v_samp[MAX_COMPONENTS];
    int w_blocks[MAX_COMPONENTS], h_blocks[MAX_COMPONENTS];
    unsigned short qt[MAX_COMPONENTS][DCTSIZE2];
    struct decoder *decoder; /* coefficients: the live decompressor they sit in */
    JCOEF *planes[MAX_COMPONENTS]; /* first block of each component */
    size_t row_stride[MAX_COMPONENTS]; /* bytes from one block row to the next */
    void *out;            /* pixels, or coefficients copied out; malloc'd */
    size_t out_bytes;
    unsigned char *exif;  /* APP1 "Exif\0\0" payload, malloc'd, or NULL */
    size_t exif_bytes;
    int out_components;   /* pixels: 3 (RGB) or 4 (CMYK) */
    /* crop-aware reading: stop once this many iMCU rows are decoded (0: read all) */
    int stop_after_rows, stopped, rows_decoded, rows_total;
    jvirt_barray_ptr arrays[MAX_COMPONENTS]; /* the coefficient arrays, as requested */
    int n_arrays;
} job_t;

typedef struct {
    struct jpeg_error_mgr pub;
    struct jpeg_progress_mgr progress;
    jmp_buf escape;
    job_t *job;
    /* libjpeg's own request_virt_barray, which keep_arrays wraps */
    jvirt_barray_ptr (*request_virt_barray)(j_common_ptr, int, boolean, JDIMENSION, JDIMENSION, JDIMENSION);
} error_mgr_t;

/* A decompressor kept alive after jpeg_read_coefficients, so that Python can view
 * the coefficients in libjpeg's own arrays instead of copying them out. */
typedef struct decoder {
    struct jpeg_decompress_struct cinfo;
    error_mgr_t err;
} decoder_t;

static void fail(j_common_ptr cinfo, err_kind kind, const char *message) {
    error_mgr_t *err = (error_mgr_t *)cinfo->err;
    err->job->err = kind;
    snprintf(err->job->message, sizeof(err->job->message), "%s", message);
    longjmp(err->escape, 1);
}

static err_kind classify_libjpeg_error(j_common_ptr cinfo) {
    struct jpeg_error_mgr *e = cinfo->err;
    switch (e->msg_code) {
    case JERR_NO_SOI: return ERR_NOT_JPEG;
    case JERR_INPUT_EMPTY: return ERR_EMPTY;
    case JERR_BAD_PRECISION: return ERR_PRECISION;
    case JERR_SOF_UNSUPPORTED: {
        int sof = e->msg_parm.i[0];
        return (sof == 0xc3 || sof == 0xc7 || sof == 0xcb || sof == 0xcf)
                   ? ERR_LOSSLESS : ERR_PROCESS;
    }
    case JERR_ARITH_NOTIMPL:
    case JERR_NOTIMPL:
    case JERR_CONVERSION_NOTIMPL: return ERR_PROCESS;
    case JERR_OUT_OF_MEMORY: return ERR_NO_MEMORY;
    case JERR_IMAGE_TOO_BIG: return ERR_TOO_LARGE;
    default: return ERR_CORRUPT;
    }
}

static void on_error_exit(j_common_ptr cinfo) {
    char buffer[JMSG_LENGTH_MAX], message[JMSG_LENGTH_MAX + 96];
    err_kind kind = classify_libjpeg_error(cinfo);
    (*cinfo->err->format_message)(cinfo, buffer);
    if (kind == ERR_LOSSLESS)
        snprintf(message, sizeof(message),
                 "lossless JPEG stores no DCT coefficients (%s)", buffer);
    else if (kind == ERR_PRECISION)
        snprintf(message, sizeof(message), "%s; only 8-bit JPEG is supported", buffer);
    else
        snprintf(message, sizeof(message), "%s", buffer);
    fail(cinfo, kind, message);
}

static void on_message(j_common_ptr cinfo, int level) {
    error_mgr_t *err = (error_mgr_t *)cinfo->err;
    job_t *job = err->job;
    char buffer[JMSG_LENGTH_MAX];
    if (level >= 0)
        return; /* trace messages */
    (*cinfo->err->format_message)(cinfo, buffer);
    if (job->strict) {
        char message[JMSG_LENGTH_MAX + 64];
        snprintf(message, sizeof(message), "%s (strict=True)", buffer);
        fail(cinfo, ERR_STRICT, message);
    }
    if (job->n_warnings < MAX_WARNINGS)
        memcpy(job->warnings[job->n_warnings++], buffer, JMSG_LENGTH_MAX);
    else
        job->n_warnings_dropped++;
}

/* Called before each iMCU row that jpeg_read_coefficients decodes: a crop-aware read of a
 * sequential file whose one scan holds every component leaves here once the rows the box
 * needs are in (the arrays stay valid up to them). */
static void on_progress(j_common_ptr cinfo) {
    job_t *job = ((error_mgr_t *)cinfo->err)->job;
    if (cinfo->is_decompressor && job->stop_after_rows > 0) {
        j_decompress_ptr d = (j_decompress_ptr)cinfo;
        if (!d->progressive_mode && d->comps_in_scan == d->num_components &&
            d->input_iMCU_row >= (JDIMENSION)job->stop_after_rows && d->input_iMCU_row < d->total_iMCU_rows) {
            job->stopped = 1;
            job->rows_decoded = (int)d->input_iMCU_row;
            longjmp(((error_mgr_t *)cinfo->err)->escape, 1);
        }
    }
    if (cinfo->is_decompressor &&
        ((j_decompress_ptr)cinfo)->input_scan_number > MAX_SCANS) {
        char message[128];
        snprintf(message, sizeof(message),
                 "more than %d scans: refusing a file built to stall the decoder",
                 MAX_SCANS);
        fail(cinfo, ERR_TOO_MANY_SCANS, message);
    }
}

static void setup(j_decompress_ptr cinfo, error_mgr_t *err, job_t *job) {
    cinfo->err = jpeg_std_error(&err->pub);
    err->pub.error_exit = on_error_exit;
    err->pub.emit_message = on_message;
    err->job = job;
    jpeg_create_decompress(cinfo);
    err->progress.progress_monitor = on_progress;
    cinfo->progress = &err->progress;
}

static void *checked_malloc(j_common_ptr cinfo, size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p)
        fail(cinfo, ERR_NO_MEMORY, "out of memory for the output arrays");
    return p;
}

/* Reads markers up to the first SOS and records what the header says. */
static void read_header_into(j_decompress_ptr cinfo, job_t *job, int keep_exif) {
    int c;
    if (job->size == 0)
        fail((j_common_ptr)cinfo, ERR_EMPTY, "empty input (0 bytes)");
    jpeg_mem_src(cinfo, job->data, (unsigned long)job->size);
    if (keep_exif)
        jpeg_save_markers(cinfo, JPEG_APP0 + 1, 0xFFFF);
    jpeg_read_header(cinfo, TRUE);
    job->width = (int)cinfo->image_width;
    job->height = (int)cinfo->image_height;
    job->num_components = cinfo->num_components;
    job->progressive = cinfo->progressive_mode;
    job->arithmetic = cinfo->arith_code;
    job->restart_interval = (int)cinfo->restart_interval;
    job->colorspace = cinfo->jpeg_color_space;
    job->saw_adobe = cinfo->saw_Adobe_marker;
    job->adobe_transform = cinfo->Adobe_transform;
    for (c = 0; c < cinfo->num_components && c < MAX_COMPONENTS; c++) {
        job->h_samp[c] = cinfo->comp_info[c].h_samp_factor;
        job->v_samp[c] = cinfo->comp_info[c].v_samp_factor;
        job->w_blocks[c] = (int)cinfo->comp_info[c].width_in_blocks;
        job->h_blocks[c] = (int)cinfo->comp_info[c].height_in_blocks;
    }
    if (cinfo->data_precision != 8) {
        char message[128];
        snprintf(message, sizeof(message),
                 "%d-bit sample precision; only 8-bit JPEG has int16 DCT coefficients here",
                 cinfo->data_precision);
        fail((j_common_ptr)cinfo, ERR_PRECISION, message);
    }
}

static void check_size(j_decompress_ptr cinfo, job_t *job) {
    unsigned long long pixels =
        (unsigned long long)cinfo->image_width * cinfo->image_height;
    if (job->max_pixels && pixels > job->max_pixels) {
        char message[192];
        snprintf(message, sizeof(message),
                 "header declares %ux%u = %llu pixels, more than max_pixels=%llu "
                 "(a possible decompression bomb)",
                 cinfo->image_width, cinfo->image_height, pixels, job->max_pixels);
        fail((j_common_ptr)cinfo, ERR_TOO_LARGE, message);
    }
}

static void keep_exif(j_decompress_ptr cinfo, job_t *job) {
    jpeg_saved_marker_ptr m;
    for (m = cinfo->marker_list; m; m = m->next) {
        if (m->marker == JPEG_APP0 + 1 && m->data_length >= 6 &&
            memcmp(m->data, "Exif\0\0", 6) == 0) {
            job->exif_bytes = m->data_length - 6;
            job->exif = checked_malloc((j_common_ptr)cinfo, job->exif_bytes);
            memcpy(job->exif, m->data + 6, job->exif_bytes);
            return;
        }
    }
}

static const char *colorspace_name(J_COLOR_SPACE cs) {
    switch (cs) {
    case JCS_GRAYSCALE: return "gray";
    case JCS_YCbCr: return "YCbCr";
    case JCS_RGB: return "RGB";
    case JCS_CMYK: return "CMYK";
    case JCS_YCCK: return "YCCK";
    default: return "unknown";
    }
}

/* Only YCbCr (3 components) and gray (1) files hold the coefficients dctload gives. */
static void require_ycbcr(j_decompress_ptr cinfo) {
    if (!((cinfo->jpeg_color_space == JCS_YCbCr && cinfo->num_components == 3) ||
          (cinfo->jpeg_color_space == JCS_GRAYSCALE && cinfo->num_components == 1))) {
        char message[160];
        snprintf(message, sizeof(message),
                 "%s JPEG with %d components has no YCbCr DCT coefficients "
                 "(fallback=\"pixels\" converts it)",
                 colorspace_name(cinfo->jpeg_color_space), cinfo->num_components);
        fail((j_common_ptr)cinfo, ERR_COLORSPACE, message);
    }
}

/* Component c's quantization table (natural order), once its first scan has latched it. */
static void copy_quant_table(j_decompress_ptr cinfo, int c, unsigned short *out) {
    JQUANT_TBL *table = cinfo->comp_info[c].quant_table;
    int k;
    if (!table)
        fail((j_common_ptr)cinfo, ERR_CORRUPT, "component has no quantization table");
    for (k = 0; k < DCTSIZE2; k++)
        out[k] = table->quantval[k];
}

/* Finds where each component's block rows lie in libjpeg's whole-image arrays.
 * libjpeg-turbo allocates an array in one chunk up to 1 GB, so rows are evenly
 * spaced (MCU-padded width); if they are not, the blocks are copied out. */
static void locate_or_copy(j_decompress_ptr cinfo, jvirt_barray_ptr *arrays, job_t *job) {
    int c, even = 1;
    for (c = 0; c < cinfo->num_components && even; c++) {
        jpeg_component_info *comp = &cinfo->comp_info[c];
        JDIMENSION row;
        char *first = NULL;
        for (row = 0; row < comp->height_in_blocks; row++) {
            char *p = (char *)(*cinfo->mem->access_virt_barray)(
                (j_common_ptr)cinfo, arrays[c], row, 1, FALSE)[0];
            if (row == 0) {
                first = p;
                job->planes[c] = (JCOEF *)p;
                job->row_stride[c] = (size_t)comp->width_in_blocks * sizeof(JBLOCK);
            } else if (row == 1) {
                job->row_stride[c] = (size_t)(p - first);
            }
            if (p != first + (size_t)row * job->row_stride[c] ||
                job->row_stride[c] < (size_t)comp->width_in_blocks * sizeof(JBLOCK)) {
                even = 0;
                break;
            }
        }
    }
    if (even)
        return;
    {
        size_t total = 0;
        JCOEF *dst;
        for (c = 0; c < cinfo->num_components; c++)
            total += (size_t)job->w_blocks[c] * job->h_blocks[c] * DCTSIZE2;
        job->out_bytes = total * sizeof(JCOEF);
        job->out = checked_malloc((j_common_ptr)cinfo, job->out_bytes);
        dst = (JCOEF *)job->out;
        for (c = 0; c < cinfo->num_components; c++) {
            jpeg_component_info *comp = &cinfo->comp_info[c];
            size_t row_bytes = (size_t)comp->width_in_blocks * sizeof(JBLOCK);
            JDIMENSION row;
            job->planes[c] = dst;
            job->row_stride[c] = row_bytes;
            for (row = 0; row < comp->height_in_blocks; row++) {
                memcpy(dst, (*cinfo->mem->access_virt_barray)(
                                (j_common_ptr)cinfo, arrays[c], row, 1, FALSE)[0], row_bytes);
                dst += row_bytes / sizeof(JCOEF);
            }
        }
    }
}

static int run_read_coefficients(job_t *job) {
    decoder_t *dec = calloc(1, sizeof(decoder_t));
    j_decompress_ptr cinfo;
    jvirt_barray_ptr *arrays;
    int c;

    if (!dec) {
        job->err = ERR_NO_MEMORY;
        snprintf(job->message, sizeof(job->message), "out of memory for a decompressor");
        return -1;
    }
    cinfo = &dec->cinfo;
    setup(cinfo, &dec->err, job);
    if (setjmp(dec->err.escape)) { /* job->out and job->exif: free_job's */
        jpeg_destroy_decompress(cinfo);
        free(dec);
        return -1;
    }
    read_header_into(cinfo, job, 1);
    require_ycbcr(cinfo);
    check_size(cinfo, job);
    arrays = jpeg_read_coefficients(cinfo);
    for (c = 0; c < cinfo->num_components; c++)
        copy_quant_table(cinfo, c, job->qt[c]);
    locate_or_copy(cinfo, arrays, job);
    keep_exif(cinfo, job);
    /* Not jpeg_finish_decompress: it would free the arrays. The whole input up to
     * EOI has been consumed; jpeg_destroy_decompress runs when Python lets go. */
    job->decoder = dec;
    return 0;
}

static int run_read_header(job_t *job) {
    struct jpeg_decompress_struct cinfo;
    error_mgr_t err;
    setup(&cinfo, &err, job);
    if (setjmp(err.escape)) {
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    read_header_into(&cinfo, job, 0);
    jpeg_destroy_decompress(&cinfo);
    return 0;
}

/* Full decode to pixels: RGB for YCbCr/RGB/gray files, CMYK for CMYK/YCCK
 * (libjpeg converts YCCK to CMYK but not CMYK to RGB). */
static int run_decode_pixels(job_t *job) {
    struct jpeg_decompress_struct cinfo;
    error_mgr_t err;
    size_t stride;

    setup(&cinfo, &err, job);
    if (setjmp(err.escape)) { /* job->out and job->exif: free_job's */
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    read_header_into(&cinfo, job, 1);
    check_size(&cinfo, job);
    cinfo.out_color_space =
        (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK)
            ? JCS_CMYK : JCS_RGB;
    jpeg_start_decompress(&cinfo);
    job->out_components = cinfo.output_components;
    stride = (size_t)cinfo.output_width * cinfo.output_components;
    job->out_bytes = stride * cinfo.output_height;
    job->out = checked_malloc((j_common_ptr)&cinfo, job->out_bytes);
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = (JSAMPROW)job->out + stride * cinfo.output_scanline;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    keep_exif(&cinfo, job);
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    return 0;
}

/* ---- Python glue ------------------------------------------------------ */

/* Memory exposed through the buffer protocol (numpy views it without a copy and
 * keeps this object alive). It either owns a malloc'd block (`owned`) or lies
 * inside another object (`owner`: a Decoder, or a buffer that owns the block). */
typedef struct {
    PyObject_HEAD
    void *data;
    Py_ssize_t size;
    void *owned;
    PyObject *owner;
} Memory;

static void memory_dealloc(Memory *self) {
    free(self->owned);
    Py_XDECREF(self->owner);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int memory_getbuffer(Memory *self, Py_buffer *view, int flags) {
    return PyBuffer_FillInfo(view, (PyObject *)self, self->data, self->size, 0, flags);
}

static PyBufferProcs memory_as_buffer = {(getbufferproc)memory_getbuffer, NULL};

static PyTypeObject MemoryType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "dctload._reader.Memory",
    .tp_basicsize = sizeof(Memory),
    .tp_dealloc = (destructor)memory_dealloc,
    .tp_as_buffer = &memory_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Memory filled by the reader, freed with the last view of it.",
};

/* The decompressor whose arrays hold an image's coefficients. */
typedef struct {
    PyObject_HEAD
    decoder_t *decoder;
} Decoder;

static void decoder_dealloc(Decoder *self) {
    if (self->decoder) {
        jpeg_destroy_decompress(&self->decoder->cinfo);
        free(self->decoder);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject DecoderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "dctload._reader.Decoder",
    .tp_basicsize = sizeof(Decoder),
    .tp_dealloc = (destructor)decoder_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "libjpeg's decompressor, kept while views of its coefficients live.",
};

/* A Memory over `size` bytes at `data`; takes `owned` (freed with it) or a new
 * reference to `owner`. */
static PyObject *new_memory(void *data, Py_ssize_t size, void *owned, PyObject *owner) {
    Memory *m = PyObject_New(Memory, &MemoryType);
    if (!m) {
        free(owned);
        return NULL;
    }
    m->data = data;
    m->size = size;
    m->owned = owned;
    Py_XINCREF(owner);
    m->owner = owner;
    return (PyObject *)m;
}

static PyObject *take_buffer(job_t *job) {
    void *out = job->out;
    job->out = NULL;
    return new_memory(out, (Py_ssize_t)job->out_bytes, out, NULL);
}

/* [(memory, row_stride_bytes)] per component, viewing the job's coefficients. */
static PyObject *coefficient_views(job_t *job) {
    PyObject *owner, *list = NULL;
    int c;
    if (job->out) {
        owner = take_buffer(job);
    } else {
        Decoder *d = PyObject_New(Decoder, &DecoderType);
        if (d) {
            d->decoder = job->decoder;
            job->decoder = NULL;
        }
        owner = (PyObject *)d;
    }
    if (!owner)
        return NULL;
    list = PyList_New(job->num_components);
    for (c = 0; list && c < job->num_components; c++) {
        size_t bytes = (size_t)(job->h_blocks[c] - 1) * job->row_stride[c] +
                       (size_t)job->w_blocks[c] * sizeof(JBLOCK);
        PyObject *m = new_memory(job->planes[c], (Py_ssize_t)bytes, NULL, owner);
        PyObject *item = m ? Py_BuildValue("(Nn)", m, (Py_ssize_t)job->row_stride[c]) : NULL;
        if (!item) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, c, item);
    }
    Py_DECREF(owner);
    return list;
}

static PyObject *JPEGError, *UnsupportedJPEGError;

/* The job's error as a new JPEGError or UnsupportedJPEGError naming `source`. */
static PyObject *job_exception(job_t *job, PyObject *source) {
    PyObject *cls = (job->err == ERR_CORRUPT || job->err == ERR_STRICT ||
                     job->err == ERR_NO_MEMORY || job->err == ERR_TOO_MANY_SCANS)
                        ? JPEGError : UnsupportedJPEGError;
    return PyObject_CallFunction(cls, "sOs", job->message, source, ERR_CODES[job->err]);
}

static PyObject *raise_job_error(job_t *job, PyObject *source) {
    PyObject *exc = job_exception(job, source);
    if (exc) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
    }
    return NULL;
}

static PyObject *warnings_list(job_t *job) {
    int i;
    PyObject *list = PyList_New(0);
    if (!list)
        return NULL;
    for (i = 0; i < job->n_warnings; i++) {
        PyObject *s = PyUnicode_DecodeLatin1(job->warnings[i], strlen(job->warnings[i]), "replace");
        if (!s || PyList_Append(list, s) < 0) {
            Py_XDECREF(s);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(s);
    }
    if (job->n_warnings_dropped) {
        PyObject *s = PyUnicode_FromFormat("... and %d more warnings", job->n_warnings_dropped);
        if (!s || PyList_Append(list, s) < 0) {
            Py_XDECREF(s);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(s);
    }
    return list;
}

static PyObject *header_dict(job_t *job) {
    int c;
    PyObject *sampling = PyTuple_New(job->num_components);
    PyObject *blocks = PyTuple_New(job->num_components);
    if (!sampling || !blocks) {
        Py_XDECREF(sampling);
        Py_XDECREF(blocks);
        return NULL;
    }
    for (c = 0; c < job->num_components; c++) {
        PyTuple_SET_ITEM(sampling, c, Py_BuildValue("(ii)", job->h_samp[c], job->v_samp[c]));
        PyTuple_SET_ITEM(blocks, c, Py_BuildValue("(ii)", job->h_blocks[c], job->w_blocks[c]));
    }
    return Py_BuildValue(
        "{s:i,s:i,s:i,s:N,s:N,s:s,s:O,s:O,s:i,s:O,s:i}",
        "width", job->width, "height", job->height,
        "num_components", job->num_components, "sampling", sampling,
        "blocks", blocks, "colorspace", colorspace_name(job->colorspace),
        "progressive", job->progressive ? Py_True : Py_False,
        "arithmetic", job->arithmetic ? Py_True : Py_False,
        "restart_interval", job->restart_interval,
        "adobe", job->saw_adobe ? Py_True : Py_False,
        "adobe_transform", job->adobe_transform);
}

/* Parses (data, source, strict, max_pixels) and fills the job's inputs. */
static int parse_job(PyObject *args, PyObject *kwargs, Py_buffer *view,
                     PyObject **source, job_t *job) {
    static char *kwlist[] = {"data", "source", "strict", "max_pixels", NULL};
    int strict = 0;
    unsigned long long max_pixels = 0;
    *source = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*|OpK", kwlist, view,
                                     source, &strict, &max_pixels))
        return -1;
    memset(job, 0, sizeof(*job));
    job->data = view->buf;
    job->size = (size_t)view->len;
    job->strict = strict;
    job->max_pixels = max_pixels;
    return 0;
}

static job_t *new_job(void) {
    job_t *job = PyMem_Calloc(1, sizeof(job_t));
    if (!job)
        PyErr_NoMemory();
    return job;
}

static void free_job(job_t *job) {
    if (job->decoder) {
        jpeg_destroy_decompress(&job->decoder->cinfo);
        free(job->decoder);
    }
    free(job->out);
    free(job->exif);
    PyMem_Free(job);
}

PyDoc_STRVAR(read_coefficients_doc,
"read_coefficients(data, source=None, strict=False, max_pixels=0)\n"
"-> (header: dict, [(memory, row_stride)] per component, qt: bytes, exif: bytes|None, warnings: list)\n\n"
"Entropy-decodes a JPEG held in `data`. Each component's blocks lie in rows\n"
"row_stride bytes apart (libjpeg's MCU-padded arrays, viewed without a copy),\n"
"64 int16 coefficients a block in natural order. max_pixels=0 disables the\n"
"size check. Raises dctload.JPEGError or UnsupportedJPEGError.");

/* The shape of every entry point: parse the arguments, run the libjpeg step with
 * the GIL released, then raise the job's error or build the result from it. */
static PyObject *call_reader(PyObject *args, PyObject *kwargs, int (*run)(job_t *),
                             PyObject *(*build)(job_t *)) {
    Py_buffer view;
    PyObject *source, *result = NULL;
    job_t *job = new_job();
    int status;
    if (!job)
        return NULL;
    if (parse_job(args, kwargs, &view, &source, job) < 0) {
        PyMem_Free(job);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    status = run(job);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    if (status < 0)
        raise_job_error(job, source);
    else
        result = build(job);
    free_job(job);
    return result;
}

static PyObject *exif_bytes(job_t *job) {
    if (!job->exif)
        Py_RETURN_NONE;
    return PyBytes_FromStringAndSize((const char *)job->exif, (Py_ssize_t)job->exif_bytes);
}

static PyObject *build_coefficients(job_t *job) {
    PyObject *result = NULL;
    PyObject *header = header_dict(job);
    PyObject *warnings = warnings_list(job);
    PyObject *qt = PyBytes_FromStringAndSize(
        (const char *)job->qt, (Py_ssize_t)job->num_components * DCTSIZE2 * 2);
    PyObject *exif = exif_bytes(job);
    PyObject *coefs = coefficient_views(job);
    if (header && warnings && qt && exif && coefs)
        result = PyTuple_Pack(5, header, coefs, qt, exif, warnings);
    Py_XDECREF(header);
    Py_XDECREF(warnings);
    Py_XDECREF(qt);
    Py_XDECREF(exif);
    Py_XDECREF(coefs);
    return result;
}

static PyObject *build_pixels(job_t *job) {
    PyObject *result = NULL;
    PyObject *header = header_dict(job);
    PyObject *warnings = warnings_list(job);
    PyObject *exif = exif_bytes(job);
    PyObject *pixels = take_buffer(job);
    if (header && warnings && exif && pixels)
        result = Py_BuildValue("(OOiOO)", header, pixels, job->out_components, exif, warnings);
    Py_XDECREF(header);
    Py_XDECREF(warnings);
    Py_XDECREF(exif);
    Py_XDECREF(pixels);
    return result;
}

static PyObject *py_read_coefficients(PyObject *self, PyObject *args, PyObject *kwargs) {
    return call_reader(args, kwargs, run_read_coefficients, build_coefficients);
}

PyDoc_STRVAR(read_header_doc,
"read_header(data, source=None) -> dict\n\n"
"Reads the markers up to the first scan, without entropy decoding.");

static PyObject *py_read_header(PyObject *self, PyObject *args, PyObject *kwargs) {
    return call_reader(args, kwargs, run_read_header, header_dict);
}

PyDoc_STRVAR(decode_pixels_doc,
"decode_pixels(data, source=None, strict=False, max_pixels=0)\n"
"-> (header: dict, pixels: buffer of uint8 (height, width, channels), channels: 3 or 4,\n"
"    exif: bytes|None, warnings: list)\n\n"
"Full libjpeg decode: RGB, or CMYK (as stored) for CMYK/YCCK files.");

static PyObject *py_decode_pixels(PyObject *self, PyObject *args, PyObject *kwargs) {
    return call_reader(args, kwargs, run_decode_pixels, build_pixels);
}

/* ---- Read, crop, resize and flip a batch in one call (crop-aware) ---------- */

/* Keeps the coefficient arrays that the coefficient controller requests (one per
 * component, in order), so that a read stopped early can still reach them. */
static jvirt_barray_ptr keep_arrays(j_common_ptr cinfo, int pool_id, boolean pre_zero, JDIMENSION blocks_per_row,
                                    JDIMENSION num_rows, JDIMENSION max_access) {
    error_mgr_t *err = (error_mgr_t *)cinfo->err;
    jvirt_barray_ptr array = err->request_virt_barray(cinfo, pool_id, pre_zero, blocks_per_row, num_rows, max_access);
    if (err->job->n_arrays < MAX_COMPONENTS)
        err->job->arrays[err->job->n_arrays++] = array;
    return array;
}

/* Where one image of the batch goes: its geometry (3 planes x (rows, cols)) and its
 * output planes. */
typedef struct {
    dl_axis axes[3][2];
    float *y, *cbcr;
    ptrdiff_t y_channel, y_row, c_channel, c_row;
} target_t;

static int resample_from_arrays(j_decompress_ptr cinfo, job_t *job, const target_t *t, dl_workspace *ws) {
    int c;
    for (c = 0; c < cinfo->num_components; c++) {
        jpeg_component_info *comp = &cinfo->comp_info[c];
        const dl_axis *rows = &t->axes[c][0], *cols = &t->axes[c][1];
        const int16_t *block_rows[1024], **rows_at = block_rows;
        uint16_t table[DCTSIZE2];
        int r0, r1, r, status;
        char message[200];
        float *out = c == 0 ? t->y : t->cbcr + (c - 1) * 64 * t->c_channel;
        if (dl_axis_blocks(rows, &r0, &r1, message, sizeof(message)) < 0 || r0 < 0 ||
            r1 > (int)comp->height_in_blocks) {
            job->err = ERR_GEOMETRY;
            snprintf(job->message, sizeof(job->message), "component %d: %s", c,
                     r1 > (int)comp->height_in_blocks ? "the box is outside the image" : message);
            return -1;
        }
        copy_quant_table(cinfo, c, table);
        if (comp->height_in_blocks > 1024) {
            rows_at = malloc(sizeof(*rows_at) * comp->height_in_blocks);
            if (!rows_at) {
                job->err = ERR_NO_MEMORY;
                snprintf(job->message, sizeof(job->message), "out of memory");
                return -1;
            }
        }
        for (r = r0; r < r1; r++)
            rows_at[r] = (const int16_t *)(*cinfo->mem->access_virt_barray)(
                (j_common_ptr)cinfo, job->arrays[c], (JDIMENSION)r, 1, FALSE)[0];
        status = dl_resample_plane(rows_at, (int)comp->height_in_blocks, (int)comp->width_in_blocks, table, rows, cols,
                                   out, c == 0 ? t->y_channel : t->c_channel, c == 0 ? t->y_row : t->c_row,
                                   ws, message, sizeof(message));
        if (rows_at != block_rows)
            free((void *)rows_at);
        if (status < 0) {
            job->err = ERR_GEOMETRY;
            snprintf(job->message, sizeof(job->message), "component %d: %s", c, message);
            return -1;
        }
    }
    if (cinfo->num_components == 1)
        memset(t->cbcr, 0, sizeof(float) * 128 * t->c_channel);
    return 0;
}

/* Where one image of a packed batch goes (read_packed): the blocks [r0, r1) x [c0, c1) of
 * each component, each written as a mask of its nonzero coefficients (8 bytes, bit k of
 * byte k / 8 for coefficient k) into its plane's padded grid, and its nonzero values, in
 * block order, from `values` (room for every block's 64). */
typedef struct {
    int range[3][4];
    uint8_t *masks[3];
    ptrdiff_t mask_row[3];     /* blocks from one padded row to the next */
    int16_t *values[3];
    float *tables;             /* 3 x 64 */
    Py_ssize_t counts[3];      /* out: the nonzero values written */
} pack_t;

/* Bit k set where coefficient k of a block is nonzero. */
static uint64_t nonzero_bits_generic(const JCOEF *block) {
    uint64_t bits = 0;
    int k;
    for (k = 0; k < DCTSIZE2; k++)
        bits |= (uint64_t)(block[k] != 0) << k;
    return bits;
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
/* AVX2: compare 16 coefficients at a time, narrow the results to bytes, one movemask. */
__attribute__((target("avx2"))) static uint64_t nonzero_bits_avx2(const JCOEF *block) {
    const __m256i zero = _mm256_setzero_si256();
    uint64_t bits = 0;
    int half;
    for (half = 0; half < 2; half++) {
        __m256i a = _mm256_cmpeq_epi16(_mm256_loadu_si256((const __m256i *)(block + 32 * half)), zero);
        __m256i b = _mm256_cmpeq_epi16(_mm256_loadu_si256((const __m256i *)(block + 32 * half + 16)), zero);
        /* packs interleaves 128-bit lanes: a0 b0 a1 b1; the permute puts them back in order */
        __m256i zeros = _mm256_permute4x64_epi64(_mm256_packs_epi16(a, b), 0xD8);
        bits |= (uint64_t)(uint32_t)~_mm256_movemask_epi8(zeros) << (32 * half);
    }
    return bits;
}
#endif

typedef uint64_t (*nonzero_bits_fn)(const JCOEF *);

static nonzero_bits_fn nonzero_bits = nonzero_bits_generic;

__attribute__((constructor)) static void choose_nonzero_bits(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    if (getenv("DCTLOAD_NO_SIMD")) /* the portable path, for tests and for comparison */
        return;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2"))
        nonzero_bits = nonzero_bits_avx2;
#endif
}

static int pack_from_arrays(j_decompress_ptr cinfo, job_t *job, pack_t *p) {
    int c;
    for (c = 0; c < cinfo->num_components; c++) {
        jpeg_component_info *comp = &cinfo->comp_info[c];
        const int *range = p->range[c];
        int16_t *out = p->values[c];
        uint16_t table[DCTSIZE2];
        int r, col, k;
        if (range[0] < 0 || range[1] > (int)comp->height_in_blocks || range[0] >= range[1] || range[2] < 0 ||
            range[3] > (int)comp->width_in_blocks || range[2] >= range[3]) {
            job->err = ERR_GEOMETRY;
            snprintf(job->message, sizeof(job->message), "component %d: the box's blocks [%d, %d) x [%d, %d) are "
                     "outside its %u x %u blocks", c, range[0], range[1], range[2], range[3],
                     comp->height_in_blocks, comp->width_in_blocks);
            return -1;
        }
        copy_quant_table(cinfo, c, table);
        for (k = 0; k < DCTSIZE2; k++)
            p->tables[c * DCTSIZE2 + k] = (float)table[k];
        for (r = range[0]; r < range[1]; r++) {
            const JCOEF *row = (*cinfo->mem->access_virt_barray)((j_common_ptr)cinfo, job->arrays[c], (JDIMENSION)r,
                                                                  1, FALSE)[0][range[2]];
            uint8_t *mask = p->masks[c] + 8 * (r - range[0]) * p->mask_row[c];
            for (col = range[2]; col < range[3]; col++, row += DCTSIZE2, mask += 8) {
                uint64_t bits = nonzero_bits(row), left;
                for (left = bits; left; left &= left - 1)  /* the nonzeros: about a third of a block */
                    *out++ = row[__builtin_ctzll(left)];
                for (k = 0; k < 8; k++)
                    mask[k] = (uint8_t)(bits >> (8 * k));
            }
        }
        p->counts[c] = out - p->values[c];
    }
    return 0;
}

static int run_read_resampled(job_t *job, const target_t *t, pack_t *pack, int decode_only, int crop_aware,
                              dl_workspace *ws) {
    struct jpeg_decompress_struct cinfo;
    error_mgr_t err;
    int c, needed = 0;

    setup(&cinfo, &err, job);
    err.request_virt_barray = cinfo.mem->request_virt_barray;
    cinfo.mem->request_virt_barray = keep_arrays;
    if (setjmp(err.escape)) {
        if (!job->stopped) {
            jpeg_destroy_decompress(&cinfo);
            return -1;
        }
    } else {
        read_header_into(&cinfo, job, 0);
        require_ycbcr(&cinfo);
        check_size(&cinfo, job);
        /* The iMCU rows that hold the last block row each component's box reads. */
        for (c = 0; c < cinfo.num_components; c++) {
            int first, end, v = cinfo.comp_info[c].v_samp_factor, rows;
            char message[160];
            if (pack)
                end = pack->range[c][1];
            else if (dl_axis_blocks(&t->axes[c][0], &first, &end, message, sizeof(message)) < 0)
                fail((j_common_ptr)&cinfo, ERR_GEOMETRY, message);
            rows = cinfo.num_components == 1 ? end : (end + v - 1) / v;
            if (rows > needed)
                needed = rows;
        }
        job->rows_total = (int)((cinfo.image_height + cinfo.max_v_samp_factor * DCTSIZE - 1) /
                                (cinfo.max_v_samp_factor * DCTSIZE));
        job->rows_decoded = job->rows_total;
        job->stop_after_rows = crop_aware && needed < job->rows_total ? needed : 0;
        jpeg_read_coefficients(&cinfo);
    }
    job->stop_after_rows = 0;
    job->stopped = 0;
    if (setjmp(err.escape)) { /* access_virt_barray's errors */
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    if (job->n_arrays != cinfo.num_components) {
        snprintf(job->message, sizeof(job->message), "libjpeg kept %d coefficient arrays for %d components",
                 job->n_arrays, cinfo.num_components);
        job->err = ERR_CORRUPT;
        jpeg_destroy_decompress(&cinfo);
        return -1;
    }
    c = decode_only ? 0 : pack ? pack_from_arrays(&cinfo, job, pack) : resample_from_arrays(&cinfo, job, t, ws);
    jpeg_destroy_decompress(&cinfo);
    return c;
}

typedef struct {
    job_t **jobs;
    const target_t *targets; /* read_resampled's, or NULL */
    pack_t *packs;           /* read_packed's, or NULL */
    Py_ssize_t n;
    Py_ssize_t next; /* the next image to take, shared by the threads (atomic) */
    int decode_only, crop_aware;
} batch_t;

static void *batch_worker(void *arg) {
    batch_t *b = arg;
    dl_workspace ws = {0};
    Py_ssize_t i;
    while ((i = __atomic_fetch_add(&b->next, 1, __ATOMIC_RELAXED)) < b->n)
        run_read_resampled(b->jobs[i], b->targets ? &b->targets[i] : NULL, b->packs ? &b->packs[i] : NULL,
                           b->decode_only, b->crop_aware, &ws);
    dl_workspace_free(&ws);
    return NULL;
}

/* Runs a batch on num_threads threads (this one among them), the GIL released. */
static void run_batch(batch_t *b, int num_threads) {
    Py_BEGIN_ALLOW_THREADS
    {
        pthread_t threads[64];
        int started = 0, k;
        if (num_threads > 64)
            num_threads = 64;
        for (k = 1; k < num_threads && k < b->n; k++)
            if (pthread_create(&threads[started], NULL, batch_worker, b) == 0)
                started++;
        batch_worker(b);
        for (k = 0; k < started; k++)
            pthread_join(threads[k], NULL);
    }
    Py_END_ALLOW_THREADS
}

/* (errors, warnings, (rows decoded, rows total)) of a batch's jobs, errors naming sources[i]. */
static PyObject *batch_outcomes(job_t **jobs, Py_ssize_t n, PyObject *sources) {
    PyObject *errors = PyList_New(n), *warnings = PyList_New(n), *rows = PyList_New(n);
    PyObject *result = errors && warnings && rows ? PyTuple_Pack(3, errors, warnings, rows) : NULL;
    Py_ssize_t i;
    for (i = 0; result && i < n; i++) {
        job_t *job = jobs[i];
        PyObject *source = sources == Py_None ? Py_NewRef(Py_None) : PySequence_GetItem(sources, i);
        PyObject *error = !source ? NULL : job->err == ERR_NONE ? Py_NewRef(Py_None) : job_exception(job, source);
        Py_XDECREF(source);
        PyObject *w = warnings_list(job);
        PyObject *r = Py_BuildValue("(ii)", job->rows_decoded, job->rows_total);
        if (!error || !w || !r) {
            Py_XDECREF(error);
            Py_XDECREF(w);
            Py_XDECREF(r);
            Py_CLEAR(result);
            break;
        }
        PyList_SET_ITEM(errors, i, error);
        PyList_SET_ITEM(warnings, i, w);
        PyList_SET_ITEM(rows, i, r);
    }
    Py_XDECREF(errors);
    Py_XDECREF(warnings);
    Py_XDECREF(rows);
    return result;
}

/* The inputs of a batch call: a view of each bytes-like of `datas` and a job reading it. */
typedef struct {
    Py_buffer *views;
    job_t **jobs;
    Py_ssize_t n, got; /* got: the views taken, to release */
} inputs_t;

static int open_inputs(inputs_t *in, PyObject *datas, PyObject *sources, int strict, unsigned long long max_pixels) {
    Py_ssize_t i, n = PySequence_Fast_GET_SIZE(datas);
    in->n = n;
    if (sources != Py_None && (!PySequence_Check(sources) || PySequence_Size(sources) != n)) {
        PyErr_SetString(PyExc_ValueError, "sources must be None or one name per input");
        return -1;
    }
    in->views = PyMem_Calloc(n ? n : 1, sizeof(Py_buffer));
    in->jobs = PyMem_Calloc(n ? n : 1, sizeof(job_t *));
    if (!in->views || !in->jobs) {
        PyErr_NoMemory();
        return -1;
    }
    for (i = 0; i < n; i++) {
        if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(datas, i), &in->views[i], PyBUF_SIMPLE) < 0)
            return -1;
        in->got = i + 1;
        if (!(in->jobs[i] = new_job()))
            return -1;
        in->jobs[i]->data = in->views[i].buf;
        in->jobs[i]->size = (size_t)in->views[i].len;
        in->jobs[i]->strict = strict;
        in->jobs[i]->max_pixels = max_pixels;
    }
    return 0;
}

static void close_inputs(inputs_t *in) {
    Py_ssize_t i;
    for (i = 0; i < in->got; i++)
        PyBuffer_Release(&in->views[i]);
    for (i = 0; in->jobs && i < in->n; i++)
        if (in->jobs[i])
            free_job(in->jobs[i]);
    PyMem_Free(in->views);
    PyMem_Free(in->jobs);
}

PyDoc_STRVAR(read_resampled_doc,
"read_resampled(datas, geometry, y, cbcr, num_threads=1, strict=False, max_pixels=0, decode_only=False,\n"
"               crop_aware=True, sources=None)\n"
"-> [None or JPEGError], [warnings], [(iMCU rows decoded, of total)] per image\n\n"
"Entropy-decodes each JPEG of `datas` (bytes-like) only as far as its box needs (sequential\n"
"files), then crops, resizes and flips each component exactly into y[i] (float32\n"
"(N, 64, H/8, W/8)) and cbcr[i] ((N, 128, H/16, W/16), Cb then Cr; zeros for grayscale),\n"
"on num_threads threads with the GIL released. geometry: float64 (N, 3, 2, 6), the\n"
"(start, scale, lo, hi, size, flip) of the rows and columns of Y, Cb and Cr in each plane's\n"
"own samples. An image that fails leaves its slots unspecified; its error (naming sources[i])\n"
"takes its place in the first list.\n"
"decode_only: stop after the entropy decoding (the floor, for benchmarks); crop_aware=False:\n"
"decode every row (to measure what stopping early saves).");

static PyObject *py_read_resampled(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"datas", "geometry", "y", "cbcr", "num_threads", "strict", "max_pixels", "decode_only", "crop_aware", "sources", NULL};
    PyObject *datas_obj, *geometry_obj, *y_obj, *cbcr_obj, *sources = Py_None, *datas = NULL, *result = NULL;
    Py_buffer geometry = {0}, y = {0}, cbcr = {0};
    int num_threads = 1, strict = 0, decode_only = 0, crop_aware = 1;
    unsigned long long max_pixels = 0;
    Py_ssize_t n = 0, i;
    inputs_t in = {0};
    target_t *targets = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOO|ipKppO", kwlist, &datas_obj, &geometry_obj, &y_obj, &cbcr_obj,
                                     &num_threads, &strict, &max_pixels, &decode_only, &crop_aware, &sources))
        return NULL;
    datas = PySequence_Fast(datas_obj, "datas must be a sequence of bytes-like objects");
    if (!datas)
        return NULL;
    n = PySequence_Fast_GET_SIZE(datas);
    if (PyObject_GetBuffer(geometry_obj, &geometry, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0 ||
        PyObject_GetBuffer(y_obj, &y, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) < 0 ||
        PyObject_GetBuffer(cbcr_obj, &cbcr, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) < 0)
        goto done;
    if (geometry.ndim != 4 || strcmp(geometry.format, "d") || geometry.shape[0] != n || geometry.shape[1] != 3 ||
        geometry.shape[2] != 2 || geometry.shape[3] != 6) {
        PyErr_SetString(PyExc_ValueError, "geometry must be float64 (N, 3, 2, 6)");
        goto done;
    }
    if (y.ndim != 4 || cbcr.ndim != 4 || strcmp(y.format, "f") || strcmp(cbcr.format, "f") || y.shape[0] != n ||
        cbcr.shape[0] != n || y.shape[1] != 64 || cbcr.shape[1] != 128 || y.shape[2] != 2 * cbcr.shape[2] ||
        y.shape[3] != 2 * cbcr.shape[3]) {
        PyErr_SetString(PyExc_ValueError, "y and cbcr must be C-contiguous float32 (N, 64, H/8, W/8) and (N, 128, H/16, W/16)");
        goto done;
    }
    if (!(targets = PyMem_Calloc(n ? n : 1, sizeof(target_t)))) {
        PyErr_NoMemory();
        goto done;
    }
    for (i = 0; i < n; i++) {
        const double *g = (const double *)geometry.buf + i * 36;
        target_t *t = &targets[i];
        int c, a;
        for (c = 0; c < 3; c++)
            for (a = 0; a < 2; a++) {
                const double *v = g + 12 * c + 6 * a;
                dl_axis *axis = &t->axes[c][a];
                axis->start = v[0], axis->scale = v[1], axis->lo = v[2], axis->hi = v[3];
                axis->size = v[4] >= 0 && v[4] <= (1 << 20) ? (int)v[4] : -1, axis->flip = v[5] != 0.0;
                if (axis->size != 8 * (c ? cbcr.shape[2 + a] : y.shape[2 + a])) {
                    PyErr_Format(PyExc_ValueError, "image %zd: component %d's output size %d does not fit the batch", i, c, axis->size);
                    goto done;
                }
            }
        t->y_channel = y.shape[2] * y.shape[3];
        t->y_row = y.shape[3];
        t->c_channel = cbcr.shape[2] * cbcr.shape[3];
        t->c_row = cbcr.shape[3];
        t->y = (float *)y.buf + i * 64 * t->y_channel;
        t->cbcr = (float *)cbcr.buf + i * 128 * t->c_channel;
    }
    if (open_inputs(&in, datas, sources, strict, max_pixels) < 0)
        goto done;
    {
        batch_t b = {in.jobs, targets, NULL, n, 0, decode_only, crop_aware};
        run_batch(&b, num_threads);
    }
    result = batch_outcomes(in.jobs, n, sources);
done:
    close_inputs(&in);
    PyMem_Free(targets);
    if (geometry.obj)
        PyBuffer_Release(&geometry);
    if (y.obj)
        PyBuffer_Release(&y);
    if (cbcr.obj)
        PyBuffer_Release(&cbcr);
    Py_DECREF(datas);
    return result;
}

PyDoc_STRVAR(read_packed_doc,
"read_packed(datas, ranges, mask_at, mask_row, value_at, masks, values, tables, num_threads=1, strict=False,\n"
"            max_pixels=0, crop_aware=True, sources=None)\n"
"-> ([None or JPEGError], [warnings], [(iMCU rows decoded, of total)], [(nonzeros of Y, Cb, Cr)])\n\n"
"The GPU path's packets of a batch (dctload.packets), in one call: entropy-decodes each JPEG of\n"
"`datas` only as far as the blocks it ships (sequential files), then writes, for each\n"
"component c, the blocks ranges[i, c] = (r0, r1, c0, c1) as masks of their nonzero\n"
"coefficients (8 bytes a block, bit k of byte k / 8 for coefficient k) into masks (uint8\n"
"(M, 8)) from block mask_at[i, c] on, mask_row[i, c] blocks a row, and their nonzero values\n"
"(int16, block order) into values from value_at[i, c] on (room for all 64 of each block),\n"
"and the component's quantization table into tables[i, c] (float32 (N, 3, 64)); on\n"
"num_threads threads with the GIL released. Components a file lacks (grayscale) are left\n"
"as they are. An image that fails leaves its slots unspecified; its error names sources[i].");

static int int64_matrix(Py_buffer *view, PyObject *obj, Py_ssize_t n, const char *name) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    if (view->ndim != 2 || view->itemsize != 8 || (strcmp(view->format, "q") && strcmp(view->format, "l")) ||
        view->shape[0] != n || view->shape[1] != 3) {
        PyErr_Format(PyExc_ValueError, "%s must be int64 (N, 3)", name);
        return -1;
    }
    return 0;
}

static PyObject *py_read_packed(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"datas", "ranges", "mask_at", "mask_row", "value_at", "masks", "values", "tables",
                             "num_threads", "strict", "max_pixels", "crop_aware", "sources", NULL};
    PyObject *datas_obj, *ranges_obj, *mask_at_obj, *mask_row_obj, *value_at_obj, *masks_obj, *values_obj, *tables_obj;
    PyObject *sources = Py_None, *datas = NULL, *result = NULL, *outcomes = NULL, *counts = NULL;
    Py_buffer ranges = {0}, mask_at = {0}, mask_row = {0}, value_at = {0}, masks = {0}, values = {0}, tables = {0};
    int num_threads = 1, strict = 0, crop_aware = 1;
    unsigned long long max_pixels = 0;
    Py_ssize_t n = 0, i;
    inputs_t in = {0};
    pack_t *packs = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOOOOO|ipKpO", kwlist, &datas_obj, &ranges_obj, &mask_at_obj,
                                     &mask_row_obj, &value_at_obj, &masks_obj, &values_obj, &tables_obj, &num_threads,
                                     &strict, &max_pixels, &crop_aware, &sources))
        return NULL;
    datas = PySequence_Fast(datas_obj, "datas must be a sequence of bytes-like objects");
    if (!datas)
        return NULL;
    n = PySequence_Fast_GET_SIZE(datas);
    if (PyObject_GetBuffer(ranges_obj, &ranges, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        goto done;
    if (ranges.ndim != 3 || strcmp(ranges.format, "i") || ranges.shape[0] != n || ranges.shape[1] != 3 ||
        ranges.shape[2] != 4) {
        PyErr_SetString(PyExc_ValueError, "ranges must be int32 (N, 3, 4)");
        goto done;
    }
    if (int64_matrix(&mask_at, mask_at_obj, n, "mask_at") < 0 || int64_matrix(&mask_row, mask_row_obj, n, "mask_row") < 0 ||
        int64_matrix(&value_at, value_at_obj, n, "value_at") < 0)
        goto done;
    if (PyObject_GetBuffer(masks_obj, &masks, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) < 0 ||
        PyObject_GetBuffer(values_obj, &values, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) < 0 ||
        PyObject_GetBuffer(tables_obj, &tables, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) < 0)
        goto done;
    if (masks.ndim != 2 || strcmp(masks.format, "B") || masks.shape[1] != 8 || values.ndim != 1 ||
        strcmp(values.format, "h") || tables.ndim != 3 || strcmp(tables.format, "f") || tables.shape[0] != n ||
        tables.shape[1] != 3 || tables.shape[2] != 64) {
        PyErr_SetString(PyExc_ValueError, "masks must be uint8 (M, 8), values int16 (V,), tables float32 (N, 3, 64)");
        goto done;
    }
    if (!(packs = PyMem_Calloc(n ? n : 1, sizeof(pack_t)))) {
        PyErr_NoMemory();
        goto done;
    }
    for (i = 0; i < n; i++) {
        pack_t *p = &packs[i];
        int c, k;
        for (c = 0; c < 3; c++) {
            const int *r = (const int *)ranges.buf + 12 * i + 4 * c;
            long long at = ((const long long *)mask_at.buf)[3 * i + c];
            long long row = ((const long long *)mask_row.buf)[3 * i + c];
            long long value = ((const long long *)value_at.buf)[3 * i + c];
            long long height = (long long)r[1] - r[0], width = (long long)r[3] - r[2];
            long long blocks = masks.shape[0], room = values.shape[0];
            for (k = 0; k < 4; k++)
                p->range[c][k] = r[k];
            /* every write must land inside the buffers: checked here, before any is made, in
             * divisions that cannot overflow */
            if (height <= 0 || width <= 0 || width > row || at < 0 || value < 0 || at > blocks || value > room ||
                width > blocks - at || height - 1 > (blocks - at - width) / row ||
                height > (room - value) / 64 / width) {
                PyErr_Format(PyExc_ValueError, "image %zd, component %d: blocks [%d, %d) x [%d, %d) do not fit the "
                             "masks or values given", i, c, r[0], r[1], r[2], r[3]);
                goto done;
            }
            p->masks[c] = (uint8_t *)masks.buf + 8 * at;
            p->mask_row[c] = (ptrdiff_t)row;
            p->values[c] = (int16_t *)values.buf + value;
        }
        p->tables = (float *)tables.buf + 192 * i;
    }
    if (open_inputs(&in, datas, sources, strict, max_pixels) < 0)
        goto done;
    {
        batch_t b = {in.jobs, NULL, packs, n, 0, 0, crop_aware};
        run_batch(&b, num_threads);
    }
    outcomes = batch_outcomes(in.jobs, n, sources);
    counts = outcomes ? PyList_New(n) : NULL;
    for (i = 0; counts && i < n; i++) {
        PyObject *item = Py_BuildValue("(nnn)", packs[i].counts[0], packs[i].counts[1], packs[i].counts[2]);
        if (!item) {
            Py_CLEAR(counts);
            break;
        }
        PyList_SET_ITEM(counts, i, item);
    }
    if (counts)
        result = Py_BuildValue("(OOOO)", PyTuple_GET_ITEM(outcomes, 0), PyTuple_GET_ITEM(outcomes, 1),
                               PyTuple_GET_ITEM(outcomes, 2), counts);
done:
    Py_XDECREF(outcomes);
    Py_XDECREF(counts);
    close_inputs(&in);
    PyMem_Free(packs);
    {
        Py_buffer *held[] = {&ranges, &mask_at, &mask_row, &value_at, &masks, &values, &tables};
        for (i = 0; i < 7; i++)
            if (held[i]->obj)
                PyBuffer_Release(held[i]);
    }
    Py_DECREF(datas);
    return result;
}

/* ---- Writing coefficients (jpeg_write_coefficients) ------------------- */


static int round_up(int x, int to) { return (x + to - 1) / to * to; }

/* A destination that grows one buffer this code owns (libjpeg's jpeg_mem_dest frees and
 * replaces its buffers itself, which an error path cannot then free safely). */
typedef struct {
    struct jpeg_destination_mgr pub;
    unsigned char *buffer;
    size_t capacity, size;
} grow_dest_t;

static void grow_init(j_compress_ptr cinfo) {
    grow_dest_t *d = (grow_dest_t *)cinfo->dest;
    d->pub.next_output_byte = d->buffer;
    d->pub.free_in_buffer = d->capacity;
}

static boolean grow_empty(j_compress_ptr cinfo) { /* called with the whole buffer full */
    grow_dest_t *d = (grow_dest_t *)cinfo->dest;
    unsigned char *bigger = realloc(d->buffer, 2 * d->capacity);
    if (!bigger)
        ERREXIT1(cinfo, JERR_OUT_OF_MEMORY, 10);
    d->buffer = bigger;
    d->pub.next_output_byte = bigger + d->capacity;
    d->pub.free_in_buffer = d->capacity;
    d->capacity *= 2;
    return TRUE;
}

static void grow_term(j_compress_ptr cinfo) {
    grow_dest_t *d = (grow_dest_t *)cinfo->dest;
    d->size = d->capacity - d->pub.free_in_buffer;
}

#define MAX_MARKERS 260 /* an ICC profile's 255 APP2 chunks, EXIF and a few more */

typedef struct {
    int n, width, height, h[3], v[3], w_blocks[3], h_blocks[3], slot[3];
    const int16_t *planes[3];
    const uint16_t *tables[3];
    int progressive, optimize;
    int n_markers, marker_codes[MAX_MARKERS];
    Py_buffer markers[MAX_MARKERS];
    grow_dest_t dest;
} write_t;

/* libjpeg from the coefficients on: the job carries the error, as the reader's do. */
static int run_write(write_t *w, job_t *job) {
    struct jpeg_compress_struct cinfo;
    error_mgr_t err;
    jvirt_barray_ptr arrays[3];
    int c, r, k;
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = on_error_exit;
    err.pub.emit_message = on_message;
    err.job = job;
    w->dest.capacity = 1 << 16;
    if (!(w->dest.buffer = malloc(w->dest.capacity))) {
        job->err = ERR_NO_MEMORY;
        snprintf(job->message, sizeof(job->message), "out of memory");
        return -1;
    }
    w->dest.pub.init_destination = grow_init;
    w->dest.pub.empty_output_buffer = grow_empty;
    w->dest.pub.term_destination = grow_term;
    if (setjmp(err.escape)) {
        jpeg_destroy_compress(&cinfo);
        return -1; /* the caller frees the buffer */
    }
    jpeg_create_compress(&cinfo);
    cinfo.dest = &w->dest.pub;
    cinfo.image_width = (JDIMENSION)w->width;
    cinfo.image_height = (JDIMENSION)w->height;
    cinfo.input_components = w->n;
    cinfo.in_color_space = w->n == 1 ? JCS_GRAYSCALE : JCS_YCbCr;
    jpeg_set_defaults(&cinfo);
    jpeg_set_colorspace(&cinfo, cinfo.in_color_space);
    for (c = 0; c < w->n; c++) {
        jpeg_component_info *comp = &cinfo.comp_info[c];
        JQUANT_TBL **table = &cinfo.quant_tbl_ptrs[w->slot[c]];
        comp->h_samp_factor = w->h[c];
        comp->v_samp_factor = w->v[c];
        comp->quant_tbl_no = w->slot[c];
        if (!*table)
            *table = jpeg_alloc_quant_table((j_common_ptr)&cinfo);
        for (k = 0; k < DCTSIZE2; k++)
            (*table)->quantval[k] = w->tables[c][k]; /* natural order, as libjpeg keeps them */
        (*table)->sent_table = FALSE;
    }
    cinfo.optimize_coding = w->optimize ? TRUE : FALSE;
    if (w->progressive)
        jpeg_simple_progression(&cinfo);
    /* whole MCUs, as jpegtran requests them; the blocks past the image's are never read */
    for (c = 0; c < w->n; c++)
        arrays[c] = (*cinfo.mem->request_virt_barray)((j_common_ptr)&cinfo, JPOOL_IMAGE, TRUE,
                                                      (JDIMENSION)round_up(w->w_blocks[c], w->h[c]),
                                                      (JDIMENSION)round_up(w->h_blocks[c], w->v[c]),
                                                      (JDIMENSION)w->v[c]);
    jpeg_write_coefficients(&cinfo, arrays);
    for (k = 0; k < w->n_markers; k++)
        jpeg_write_marker(&cinfo, w->marker_codes[k], w->markers[k].buf, (unsigned int)w->markers[k].len);
    for (c = 0; c < w->n; c++)
        for (r = 0; r < w->h_blocks[c]; r++)
            memcpy((*cinfo.mem->access_virt_barray)((j_common_ptr)&cinfo, arrays[c], (JDIMENSION)r, 1, TRUE)[0],
                   w->planes[c] + (size_t)r * w->w_blocks[c] * DCTSIZE2,
                   sizeof(JCOEF) * (size_t)w->w_blocks[c] * DCTSIZE2);
    jpeg_finish_compress(&cinfo);
    jpeg_destroy_compress(&cinfo);
    return 0;
}

PyDoc_STRVAR(write_coefficients_doc,
"write_coefficients(planes, tables, width, height, sampling, progressive=False, optimize=True, markers=())\n"
"-> bytes\n\n"
"A JPEG of quantized DCT coefficients, written by libjpeg's jpeg_write_coefficients: planes,\n"
"1 (grayscale) or 3 (YCbCr) C-contiguous int16 (h_blocks, w_blocks, 64) arrays covering the\n"
"image's blocks, natural order; tables, uint16 (n, 64) steps 1..32767, natural order;\n"
"sampling, the (h, v) factors 1..4 of each component, dividing the largest. Baseline\n"
"(progressive=False) or libjpeg's simple progression; optimize: Huffman tables optimized for\n"
"the image, else the standard ones (progressive files are always optimized). Coefficients\n"
"outside 8-bit JPEG's range raise ValueError. markers: (code, payload) pairs written after the\n"
"header (APPn 0xE0-0xEF or COM 0xFE, payloads of at most 65533 bytes). The GIL is released\n"
"while libjpeg works.");

static PyObject *py_write_coefficients(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"planes", "tables", "width", "height", "sampling", "progressive", "optimize", "markers",
                             NULL};
    PyObject *planes_obj, *tables_obj, *sampling_obj, *markers_obj = NULL, *planes = NULL, *sampling = NULL,
             *markers = NULL, *result = NULL;
    Py_buffer views[3] = {{0}}, tables = {0};
    write_t w = {0};
    job_t *job = NULL;
    int c, k, h_max = 1, v_max = 1, status;
    w.optimize = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOiiO|ppO", kwlist, &planes_obj, &tables_obj, &w.width, &w.height,
                                     &sampling_obj, &w.progressive, &w.optimize, &markers_obj))
        return NULL;
    if (markers_obj) {
        if (!(markers = PySequence_Fast(markers_obj, "markers must be a sequence of (code, bytes) pairs")))
            return NULL;
        if (PySequence_Fast_GET_SIZE(markers) > MAX_MARKERS) {
            PyErr_Format(PyExc_ValueError, "at most %d markers", MAX_MARKERS);
            goto done;
        }
        for (k = 0; k < PySequence_Fast_GET_SIZE(markers); k++) {
            int code;
            if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(markers, k), "iy*;a marker is (code, bytes)", &code,
                                  &w.markers[k]))
                goto done;
            w.n_markers = k + 1;
            if (!((code >= 0xE0 && code <= 0xEF) || code == 0xFE) || w.markers[k].len > 65533) {
                PyErr_Format(PyExc_ValueError, "marker %d: an APPn (0xE0-0xEF) or COM (0xFE) marker of at most 65533 "
                             "bytes, not code 0x%X of %zd bytes", k, code, w.markers[k].len);
                goto done;
            }
            w.marker_codes[k] = code;
        }
    }
    planes = PySequence_Fast(planes_obj, "planes must be a sequence of arrays");
    sampling = planes ? PySequence_Fast(sampling_obj, "sampling must be a sequence of (h, v) pairs") : NULL;
    if (!planes || !sampling)
        goto done;
    w.n = (int)PySequence_Fast_GET_SIZE(planes);
    if ((w.n != 1 && w.n != 3) || PySequence_Fast_GET_SIZE(sampling) != w.n) {
        PyErr_SetString(PyExc_ValueError, "give 1 (grayscale) or 3 (YCbCr) planes and one (h, v) pair for each");
        goto done;
    }
    if (w.width < 1 || w.height < 1 || w.width > (int)JPEG_MAX_DIMENSION || w.height > (int)JPEG_MAX_DIMENSION) {
        PyErr_Format(PyExc_ValueError, "a JPEG is 1..%d pixels a side, not %dx%d", (int)JPEG_MAX_DIMENSION, w.width,
                     w.height);
        goto done;
    }
    for (c = 0; c < w.n; c++) {
        PyObject *pair = PySequence_Fast_GET_ITEM(sampling, c);
        if (!PyArg_ParseTuple(pair, "ii", &w.h[c], &w.v[c]))
            goto done;
        if (w.h[c] < 1 || w.h[c] > 4 || w.v[c] < 1 || w.v[c] > 4) {
            PyErr_Format(PyExc_ValueError, "component %d: sampling factors are 1..4, not (%d, %d)", c, w.h[c], w.v[c]);
            goto done;
        }
        h_max = w.h[c] > h_max ? w.h[c] : h_max;
        v_max = w.v[c] > v_max ? w.v[c] : v_max;
    }
    {
        int blocks = 0;
        for (c = 0; c < w.n; c++) {
            blocks += w.h[c] * w.v[c];
            if (h_max % w.h[c] || v_max % w.v[c]) { /* libjpeg writes them; decoders refuse them */
                PyErr_Format(PyExc_ValueError, "component %d: sampling (%d, %d) does not divide the largest (%d, %d)",
                             c, w.h[c], w.v[c], h_max, v_max);
                goto done;
            }
        }
        if (w.n > 1 && blocks > 10) {
            PyErr_Format(PyExc_ValueError, "sampling factors give %d blocks an MCU; JPEG allows 10", blocks);
            goto done;
        }
    }
    if (PyObject_GetBuffer(tables_obj, &tables, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        goto done;
    if (tables.ndim != 2 || strcmp(tables.format, "H") || tables.shape[0] < w.n || tables.shape[1] != 64) {
        PyErr_SetString(PyExc_ValueError, "tables must be uint16 (n, 64), one table per component");
        goto done;
    }
    for (c = 0; c < w.n; c++) {
        w.tables[c] = (const uint16_t *)tables.buf + 64 * c;
        for (k = 0; k < 64; k++)
            if (w.tables[c][k] < 1 || w.tables[c][k] > 32767) {
                PyErr_Format(PyExc_ValueError, "component %d: quantization step %d is %d; steps are 1..32767",
                             c, k, w.tables[c][k]);
                goto done;
            }
        /* components with equal tables share one, as encoders write Cb and Cr */
        w.slot[c] = c;
        for (k = 0; k < c; k++)
            if (!memcmp(w.tables[k], w.tables[c], 64 * sizeof(uint16_t))) {
                w.slot[c] = w.slot[k];
                break;
            }
        w.w_blocks[c] = (int)(((long long)w.width * w.h[c] + 8LL * h_max - 1) / (8LL * h_max));
        w.h_blocks[c] = (int)(((long long)w.height * w.v[c] + 8LL * v_max - 1) / (8LL * v_max));
        if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(planes, c), &views[c], PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
            goto done;
        if (views[c].ndim != 3 || strcmp(views[c].format, "h") || views[c].shape[0] != w.h_blocks[c] ||
            views[c].shape[1] != w.w_blocks[c] || views[c].shape[2] != 64) {
            PyErr_Format(PyExc_ValueError, "component %d: expected C-contiguous int16 (%d, %d, 64) coefficients for a "
                         "%dx%d image sampled (%d, %d), got %s of %zd dimensions", c, w.h_blocks[c], w.w_blocks[c],
                         w.width, w.height, w.h[c], w.v[c], views[c].format, (Py_ssize_t)views[c].ndim);
            goto done;
        }
        w.planes[c] = views[c].buf;
        { /* what baseline 8-bit JPEG codes: DC -1024..1023 (differences of 11 bits), AC of 10 bits */
            const int16_t *q = w.planes[c];
            Py_ssize_t i, count = (Py_ssize_t)w.h_blocks[c] * w.w_blocks[c] * 64;
            int16_t low = 0, high = 0;
            for (i = 0; i < count; i++) { /* a branch-free pass first (vectorized): most planes are in range */
                low = q[i] < low ? q[i] : low;
                high = q[i] > high ? q[i] : high;
            }
            for (i = 0; (low < -1023 || high > 1023) && i < count; i++)
                if (q[i] < -1024 || q[i] > 1023 || (i % 64 && q[i] == -1024)) {
                    PyErr_Format(PyExc_ValueError, "component %d: coefficient %d of block %zd is %d, outside what "
                                 "8-bit JPEG codes (DC -1024..1023, AC -1023..1023)", c, (int)(i % 64), i / 64, q[i]);
                    goto done;
                }
        }
    }
    if (!(job = new_job()))
        goto done;
    Py_BEGIN_ALLOW_THREADS
    status = run_write(&w, job);
    Py_END_ALLOW_THREADS
    if (status < 0) {
        raise_job_error(job, Py_None);
        goto done;
    }
    result = PyBytes_FromStringAndSize((const char *)w.dest.buffer, (Py_ssize_t)w.dest.size);
done:
    free(w.dest.buffer);
    if (job)
        free_job(job);
    for (c = 0; c < 3; c++)
        if (views[c].obj)
            PyBuffer_Release(&views[c]);
    if (tables.obj)
        PyBuffer_Release(&tables);
    for (k = 0; k < w.n_markers; k++)
        PyBuffer_Release(&w.markers[k]);
    Py_XDECREF(markers);
    Py_XDECREF(planes);
    Py_XDECREF(sampling);
    return result;
}

/* ---- Exact resampling of one plane (csrc/resample.c) -------------------- */

static int parse_axis(PyObject *tuple, dl_axis *axis) {
    axis->valid = 0;
    axis->support = 0.0;
    return PyArg_ParseTuple(tuple, "ddddip|id;an axis is (start, scale, lo, hi, size, flip[, valid, support])",
                            &axis->start, &axis->scale, &axis->lo, &axis->hi, &axis->size, &axis->flip,
                            &axis->valid, &axis->support);
}

PyDoc_STRVAR(resample_doc,
"resample(coefs, table, rows, cols, out, quantize=None)\n\n"
"Exact crop + antialiased bilinear resize + flip of one plane: coefs (h_blocks, w_blocks, 64)\n"
"int16 (rows may be strided), table 64 uint16, rows/cols (start, scale, lo, hi, size, flip[, valid, support]),\n"
"out a writable float32 (64, rows.size / 8, cols.size / 8) array (any strides in the\n"
"first two axes). With quantize (64 uint16 steps), out is instead a C-contiguous int16\n"
"(rows.size / 8, cols.size / 8, 64) array of the result quantized to those steps\n"
"(dctload.coefficients.quantize). Raises ValueError for a box or size it cannot take.");

static PyObject *py_resample(PyObject *self, PyObject *args) {
    PyObject *coefs_obj, *table_obj, *rows_obj, *cols_obj, *out_obj, *steps_obj = Py_None;
    Py_buffer coefs = {0}, table = {0}, out = {0}, steps = {0};
    dl_axis rows, cols;
    dl_workspace ws = {0};
    const int16_t **block_rows = NULL;
    Py_ssize_t r;
    char message[256];
    int status = -1;
    if (!PyArg_ParseTuple(args, "OOOOO|O", &coefs_obj, &table_obj, &rows_obj, &cols_obj, &out_obj, &steps_obj) ||
        !parse_axis(rows_obj, &rows) || !parse_axis(cols_obj, &cols))
        return NULL;
    if (PyObject_GetBuffer(coefs_obj, &coefs, PyBUF_STRIDED_RO | PyBUF_FORMAT) < 0)
        return NULL;
    if (PyObject_GetBuffer(table_obj, &table, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        goto done;
    if (PyObject_GetBuffer(out_obj, &out, PyBUF_STRIDED | PyBUF_FORMAT) < 0)
        goto done;
    if (coefs.ndim != 3 || coefs.itemsize != 2 || coefs.shape[2] != 64 || coefs.strides[2] != 2 ||
        coefs.strides[1] != 128 || strcmp(coefs.format, "h")) {
        PyErr_SetString(PyExc_ValueError, "coefs must be int16 (h_blocks, w_blocks, 64) with whole blocks in a row");
        goto done;
    }
    if (table.len != 128 || table.itemsize != 2 || strcmp(table.format, "H")) {
        PyErr_SetString(PyExc_ValueError, "table must be 64 uint16 values");
        goto done;
    }
    if (steps_obj != Py_None) {
        if (PyObject_GetBuffer(steps_obj, &steps, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
            goto done;
        if (steps.len != 128 || steps.itemsize != 2 || strcmp(steps.format, "H")) {
            PyErr_SetString(PyExc_ValueError, "quantize must be 64 uint16 steps");
            goto done;
        }
        for (r = 0; r < 64; r++)
            if (((const uint16_t *)steps.buf)[r] == 0) {
                PyErr_SetString(PyExc_ValueError, "quantize: a step of 0");
                goto done;
            }
        if (out.ndim != 3 || strcmp(out.format, "h") || !PyBuffer_IsContiguous(&out, 'C') ||
            out.shape[0] != rows.size / 8 || out.shape[1] != cols.size / 8 || out.shape[2] != 64) {
            PyErr_Format(PyExc_ValueError, "out must be C-contiguous int16 (%d, %d, 64) when quantizing",
                         rows.size / 8, cols.size / 8);
            goto done;
        }
    } else if (out.ndim != 3 || out.itemsize != 4 || strcmp(out.format, "f") || out.strides[2] != 4 ||
        out.strides[0] % 4 || out.strides[1] % 4 || out.shape[0] != 64 ||
        out.shape[1] != rows.size / 8 || out.shape[2] != cols.size / 8) {
        PyErr_Format(PyExc_ValueError, "out must be float32 (64, %d, %d) with contiguous rows",
                     rows.size / 8, cols.size / 8);
        goto done;
    }
    block_rows = PyMem_Malloc(sizeof(*block_rows) * (coefs.shape[0] ? coefs.shape[0] : 1));
    if (!block_rows) {
        PyErr_NoMemory();
        goto done;
    }
    for (r = 0; r < coefs.shape[0]; r++)
        block_rows[r] = (const int16_t *)((const char *)coefs.buf + r * coefs.strides[0]);
    Py_BEGIN_ALLOW_THREADS
    if (steps.obj)
        status = dl_resample_quantized(block_rows, (int)coefs.shape[0], (int)coefs.shape[1], table.buf, &rows, &cols,
                                       steps.buf, out.buf, &ws, message, sizeof(message));
    else
        status = dl_resample_plane(block_rows, (int)coefs.shape[0], (int)coefs.shape[1], table.buf, &rows, &cols,
                                   out.buf, out.strides[0] / 4, out.strides[1] / 4, &ws, message, sizeof(message));
    Py_END_ALLOW_THREADS
    dl_workspace_free(&ws);
    PyMem_Free(block_rows);
    if (status < 0)
        PyErr_SetString(PyExc_ValueError, message);
done:
    if (steps.obj)
        PyBuffer_Release(&steps);
    PyBuffer_Release(&coefs);
    if (table.obj)
        PyBuffer_Release(&table);
    if (out.obj)
        PyBuffer_Release(&out);
    if (status < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"read_coefficients", (PyCFunction)(void (*)(void))py_read_coefficients,
     METH_VARARGS | METH_KEYWORDS, read_coefficients_doc},
    {"read_header", (PyCFunction)(void (*)(void))py_read_header,
     METH_VARARGS | METH_KEYWORDS, read_header_doc},
    {"decode_pixels", (PyCFunction)(void (*)(void))py_decode_pixels,
     METH_VARARGS | METH_KEYWORDS, decode_pixels_doc},
    {"resample", py_resample, METH_VARARGS, resample_doc},
    {"read_resampled", (PyCFunction)(void (*)(void))py_read_resampled, METH_VARARGS | METH_KEYWORDS,
     read_resampled_doc},
    {"read_packed", (PyCFunction)(void (*)(void))py_read_packed, METH_VARARGS | METH_KEYWORDS, read_packed_doc},
    {"write_coefficients", (PyCFunction)(void (*)(void))py_write_coefficients, METH_VARARGS | METH_KEYWORDS,
     write_coefficients_doc},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "dctload._reader",
    "libjpeg-backed reader of quantized DCT coefficients (see csrc/reader.c).",
    -1, methods};

PyMODINIT_FUNC PyInit__reader(void) {
    PyObject *m, *errors;
    if (PyType_Ready(&MemoryType) < 0 || PyType_Ready(&DecoderType) < 0)
        return NULL;
    errors = PyImport_ImportModule("dctload.errors");
    if (!errors)
        return NULL;
    JPEGError = PyObject_GetAttrString(errors, "JPEGError");
    UnsupportedJPEGError = PyObject_GetAttrString(errors, "UnsupportedJPEGError");
    Py_DECREF(errors);
    if (!JPEGError || !UnsupportedJPEGError)
        return NULL;
    m = PyModule_Create(&module);
    if (!m)
        return NULL;
    PyModule_AddIntConstant(m, "LIBJPEG_VERSION", JPEG_LIB_VERSION);
    PyModule_AddIntConstant(m, "MAX_SCANS", MAX_SCANS);
    return m;
}
