/* Pixel loops numpy cannot do in one pass: OpenCV-exact BGR -> gray, R/B swap, gray -> BGR (uint8).
 *
 * imgstore.color uses these when the extension is built and falls back to numpy otherwise; both give
 * the same bytes. Each loop runs without the GIL. On x86-64 GCC/Clang build an AVX2 clone beside the
 * generic one and pick it at run time (the compiler vectorises the interleaved 3-channel loads):
 * 1280x1024 gray 3.2 -> 0.50 ms, swap 1.5 -> 0.51 ms, gray -> BGR 1.5 -> 0.11 ms (docs/design/pixels.md).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(__INTEL_COMPILER)
#define CLONES __attribute__((target_clones("avx2", "default")))
#else
#define CLONES
#endif

/* OpenCV's COLOR_BGR2GRAY for uint8: 15-bit fixed point, weights summing to 2**15 */
CLONES static void weighted_gray(const uint8_t *restrict src, uint8_t *restrict dst, Py_ssize_t n,
                                 uint32_t w0, uint32_t w1, uint32_t w2) {
    for (Py_ssize_t i = 0; i < n; i++) {
        uint32_t v = src[3 * i] * w0 + src[3 * i + 1] * w1 + src[3 * i + 2] * w2 + 16384u;
        dst[i] = (uint8_t)(v >> 15);
    }
}

CLONES static void swap_outer(const uint8_t *restrict src, uint8_t *restrict dst, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) {
        dst[3 * i] = src[3 * i + 2];
        dst[3 * i + 1] = src[3 * i + 1];
        dst[3 * i + 2] = src[3 * i];
    }
}

CLONES static void replicate3(const uint8_t *restrict src, uint8_t *restrict dst, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) {
        uint8_t v = src[i];
        dst[3 * i] = v;
        dst[3 * i + 1] = v;
        dst[3 * i + 2] = v;
    }
}

/* src (read) and dst (written) buffers, C-contiguous, of *src_per* and *dst_per* bytes per pixel */
static int get_buffers(PyObject *args, Py_buffer *src, Py_buffer *dst, int src_per, int dst_per,
                       Py_ssize_t *n) {
    if (!PyArg_ParseTuple(args, "y*w*", src, dst))
        return -1;
    if (src->len % src_per || dst->len % dst_per || src->len / src_per != dst->len / dst_per) {
        PyErr_Format(PyExc_ValueError, "buffers of %zd and %zd bytes do not hold the same number of pixels",
                     src->len, dst->len);
        PyBuffer_Release(src);
        PyBuffer_Release(dst);
        return -1;
    }
    *n = src->len / src_per;
    return 0;
}

static PyObject *py_gray(PyObject *args, uint32_t w0, uint32_t w1, uint32_t w2) {
    Py_buffer src, dst;
    Py_ssize_t n;
    if (get_buffers(args, &src, &dst, 3, 1, &n) < 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    weighted_gray(src.buf, dst.buf, n, w0, w1, w2);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&src);
    PyBuffer_Release(&dst);
    Py_RETURN_NONE;
}

static PyObject *bgr_to_gray(PyObject *self, PyObject *args) { return py_gray(args, 3735u, 19235u, 9798u); }

static PyObject *rgb_to_gray(PyObject *self, PyObject *args) { return py_gray(args, 9798u, 19235u, 3735u); }

static PyObject *swap_rb(PyObject *self, PyObject *args) {
    Py_buffer src, dst;
    Py_ssize_t n;
    if (get_buffers(args, &src, &dst, 3, 3, &n) < 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    swap_outer(src.buf, dst.buf, n);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&src);
    PyBuffer_Release(&dst);
    Py_RETURN_NONE;
}

static PyObject *gray_to_bgr(PyObject *self, PyObject *args) {
    Py_buffer src, dst;
    Py_ssize_t n;
    if (get_buffers(args, &src, &dst, 1, 3, &n) < 0)
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    replicate3(src.buf, dst.buf, n);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&src);
    PyBuffer_Release(&dst);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"bgr_to_gray", bgr_to_gray, METH_VARARGS, "bgr_to_gray(src, dst): OpenCV's BGR2GRAY of uint8 pixels"},
    {"rgb_to_gray", rgb_to_gray, METH_VARARGS, "rgb_to_gray(src, dst): the same gray from RGB pixels"},
    {"swap_rb", swap_rb, METH_VARARGS, "swap_rb(src, dst): BGR <-> RGB"},
    {"gray_to_bgr", gray_to_bgr, METH_VARARGS, "gray_to_bgr(src, dst): each gray value in 3 channels"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_pixels", "uint8 pixel loops (see imgstore.color)",
                                    -1, methods};

PyMODINIT_FUNC PyInit__pixels(void) { return PyModule_Create(&module); }
