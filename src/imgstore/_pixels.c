/* Pixel loops numpy cannot do in one pass: OpenCV-exact BGR -> gray, R/B swap, gray -> BGR (uint8),
 * swscale-exact YUV 4:2:0 -> BGR (or straight to gray).
 *
 * imgstore.color uses these when the extension is built and falls back to numpy otherwise; both give
 * the same bytes. Each loop runs without the GIL. On x86-64 GCC/Clang build an AVX2 clone beside the
 * generic one and pick it at run time (the compiler vectorises the interleaved 3-channel loads):
 * 1280x1024 gray 3.2 -> 0.50 ms, swap 1.5 -> 0.51 ms, gray -> BGR 1.5 -> 0.11 ms (docs/design/pixels.md).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _WIN32
#include <malloc.h>
#else
#include <errno.h>
#include <limits.h>
#include <sys/mman.h>
#include <sys/uio.h>
#endif

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


/* swscale's unscaled YUV 4:2:0 -> BGR24 (its x86 SIMD path, bit for bit): each term is a pmulhw of a
 * <<3 sample; one chroma sample per 2x2 pixels. The coefficients come from Python, checked there against
 * swscale itself before use (imgstore.codecs.video.yuv). With to_gray, OpenCV's BGR2GRAY of that BGR. */
typedef struct { int32_t yoff, ycoef, coff, ub, ug, vg, vr; } yuv_coeffs;

static inline int32_t mulhi(int32_t a, int32_t b) { return (a * b) >> 16; }
static inline int32_t clamp255(int32_t v) { return v < 0 ? 0 : (v > 255 ? 255 : v); }

/* one row of planar B, G, R (or gray when g is NULL): scalar, for the row's tail and non-x86 builds */
static void yuv420_planar_scalar(const uint8_t *y, const uint8_t *u, const uint8_t *v, uint8_t *b, uint8_t *g,
                                 uint8_t *r, Py_ssize_t from, Py_ssize_t n, yuv_coeffs k) {
    for (Py_ssize_t i = from; i < n; i++) {
        int32_t cu = (u[i >> 1] << 3) - k.coff, cv = (v[i >> 1] << 3) - k.coff;
        int32_t yy = mulhi((y[i] << 3) - k.yoff, k.ycoef);
        uint32_t bb = clamp255(yy + mulhi(cu, k.ub));
        uint32_t gg = clamp255(yy + mulhi(cu, k.ug) + mulhi(cv, k.vg));
        uint32_t rr = clamp255(yy + mulhi(cv, k.vr));
        if (g == NULL)
            b[i] = (uint8_t)((bb * 3735u + gg * 19235u + rr * 9798u + 16384u) >> 15);
        else {
            b[i] = (uint8_t)bb;
            g[i] = (uint8_t)gg;
            r[i] = (uint8_t)rr;
        }
    }
}

#if defined(__SSE2__)
#include <emmintrin.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(__INTEL_COMPILER)
#include <immintrin.h>
#define YUV_AVX2 1
/* The SSE2 loop below on 32 pixels: the same int16 operations, lane by lane. Chroma is widened in
 * order (vpmovzxbw), so each 128-bit lane holds the chroma of its own 16 pixels, and every unpack
 * and pack, which work within lanes, leaves the pixels in order. Returns the pixels done. */
__attribute__((target("avx2"))) static Py_ssize_t yuv420_planar_avx2(
    const uint8_t *y, const uint8_t *u, const uint8_t *v, uint8_t *b, uint8_t *g, uint8_t *r, Py_ssize_t n,
    yuv_coeffs k) {
    const __m256i zero = _mm256_setzero_si256(), yoff = _mm256_set1_epi16((short)k.yoff),
                  ycoef = _mm256_set1_epi16((short)k.ycoef), coff = _mm256_set1_epi16((short)k.coff),
                  ub = _mm256_set1_epi16((short)k.ub), ug = _mm256_set1_epi16((short)k.ug),
                  vg = _mm256_set1_epi16((short)k.vg), vr = _mm256_set1_epi16((short)k.vr);
    const __m256i wbg = _mm256_set1_epi32((19235 << 16) | 3735), wr1 = _mm256_set1_epi32((16384 << 16) | 9798),
                  one = _mm256_set1_epi16(1);
    Py_ssize_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i yv = _mm256_loadu_si256((const __m256i *)(y + i));
        __m256i uv = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(u + i / 2)));
        __m256i vv = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(v + i / 2)));
        uv = _mm256_subs_epi16(_mm256_slli_epi16(uv, 3), coff);
        vv = _mm256_subs_epi16(_mm256_slli_epi16(vv, 3), coff);
        __m256i tb = _mm256_mulhi_epi16(uv, ub), tr = _mm256_mulhi_epi16(vv, vr);
        __m256i tg = _mm256_adds_epi16(_mm256_mulhi_epi16(uv, ug), _mm256_mulhi_epi16(vv, vg));
        __m256i y0 = _mm256_mulhi_epi16(_mm256_sub_epi16(_mm256_slli_epi16(_mm256_unpacklo_epi8(yv, zero), 3), yoff), ycoef);
        __m256i y1 = _mm256_mulhi_epi16(_mm256_sub_epi16(_mm256_slli_epi16(_mm256_unpackhi_epi8(yv, zero), 3), yoff), ycoef);
        __m256i b0 = _mm256_adds_epi16(y0, _mm256_unpacklo_epi16(tb, tb)), b1 = _mm256_adds_epi16(y1, _mm256_unpackhi_epi16(tb, tb));
        __m256i g0 = _mm256_adds_epi16(y0, _mm256_unpacklo_epi16(tg, tg)), g1 = _mm256_adds_epi16(y1, _mm256_unpackhi_epi16(tg, tg));
        __m256i r0 = _mm256_adds_epi16(y0, _mm256_unpacklo_epi16(tr, tr)), r1 = _mm256_adds_epi16(y1, _mm256_unpackhi_epi16(tr, tr));
        __m256i B = _mm256_packus_epi16(b0, b1), G = _mm256_packus_epi16(g0, g1), R = _mm256_packus_epi16(r0, r1);
        if (g == NULL) {
            __m256i bl = _mm256_unpacklo_epi8(B, zero), bh = _mm256_unpackhi_epi8(B, zero);
            __m256i gl = _mm256_unpacklo_epi8(G, zero), gh = _mm256_unpackhi_epi8(G, zero);
            __m256i rl = _mm256_unpacklo_epi8(R, zero), rh = _mm256_unpackhi_epi8(R, zero);
            __m256i s0 = _mm256_add_epi32(_mm256_madd_epi16(_mm256_unpacklo_epi16(bl, gl), wbg), _mm256_madd_epi16(_mm256_unpacklo_epi16(rl, one), wr1));
            __m256i s1 = _mm256_add_epi32(_mm256_madd_epi16(_mm256_unpackhi_epi16(bl, gl), wbg), _mm256_madd_epi16(_mm256_unpackhi_epi16(rl, one), wr1));
            __m256i s2 = _mm256_add_epi32(_mm256_madd_epi16(_mm256_unpacklo_epi16(bh, gh), wbg), _mm256_madd_epi16(_mm256_unpacklo_epi16(rh, one), wr1));
            __m256i s3 = _mm256_add_epi32(_mm256_madd_epi16(_mm256_unpackhi_epi16(bh, gh), wbg), _mm256_madd_epi16(_mm256_unpackhi_epi16(rh, one), wr1));
            __m256i lo = _mm256_packs_epi32(_mm256_srli_epi32(s0, 15), _mm256_srli_epi32(s1, 15));
            __m256i hi = _mm256_packs_epi32(_mm256_srli_epi32(s2, 15), _mm256_srli_epi32(s3, 15));
            _mm256_storeu_si256((__m256i *)(b + i), _mm256_packus_epi16(lo, hi));
        } else {
            _mm256_storeu_si256((__m256i *)(b + i), B);
            _mm256_storeu_si256((__m256i *)(g + i), G);
            _mm256_storeu_si256((__m256i *)(r + i), R);
        }
    }
    return i;
}

static int have_avx2(void) {
    static int known = -1;
    if (known < 0) {
        __builtin_cpu_init();
        known = __builtin_cpu_supports("avx2") ? 1 : 0;
    }
    return known;
}
#endif

/* 16 pixels at a time with swscale's own int16 operations (psllw, psubw, pmulhw, paddsw, packuswb) */
static void yuv420_planar(const uint8_t *y, const uint8_t *u, const uint8_t *v, uint8_t *b, uint8_t *g,
                          uint8_t *r, Py_ssize_t n, yuv_coeffs k) {
    const __m128i zero = _mm_setzero_si128(), yoff = _mm_set1_epi16((short)k.yoff),
                  ycoef = _mm_set1_epi16((short)k.ycoef), coff = _mm_set1_epi16((short)k.coff),
                  ub = _mm_set1_epi16((short)k.ub), ug = _mm_set1_epi16((short)k.ug),
                  vg = _mm_set1_epi16((short)k.vg), vr = _mm_set1_epi16((short)k.vr);
    const __m128i wbg = _mm_set_epi16(19235, 3735, 19235, 3735, 19235, 3735, 19235, 3735),
                  wr1 = _mm_set_epi16(16384, 9798, 16384, 9798, 16384, 9798, 16384, 9798),
                  one = _mm_set1_epi16(1);
    Py_ssize_t i = 0;
#ifdef YUV_AVX2
    if (have_avx2())
        i = yuv420_planar_avx2(y, u, v, b, g, r, n, k);
#endif
    for (; i + 16 <= n; i += 16) {
        __m128i yv = _mm_loadu_si128((const __m128i *)(y + i));
        __m128i uv = _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)(u + i / 2)), zero);
        __m128i vv = _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)(v + i / 2)), zero);
        uv = _mm_subs_epi16(_mm_slli_epi16(uv, 3), coff);
        vv = _mm_subs_epi16(_mm_slli_epi16(vv, 3), coff);
        __m128i tb = _mm_mulhi_epi16(uv, ub), tr = _mm_mulhi_epi16(vv, vr);
        __m128i tg = _mm_adds_epi16(_mm_mulhi_epi16(uv, ug), _mm_mulhi_epi16(vv, vg));
        __m128i y0 = _mm_mulhi_epi16(_mm_sub_epi16(_mm_slli_epi16(_mm_unpacklo_epi8(yv, zero), 3), yoff), ycoef);
        __m128i y1 = _mm_mulhi_epi16(_mm_sub_epi16(_mm_slli_epi16(_mm_unpackhi_epi8(yv, zero), 3), yoff), ycoef);
        __m128i b0 = _mm_adds_epi16(y0, _mm_unpacklo_epi16(tb, tb)), b1 = _mm_adds_epi16(y1, _mm_unpackhi_epi16(tb, tb));
        __m128i g0 = _mm_adds_epi16(y0, _mm_unpacklo_epi16(tg, tg)), g1 = _mm_adds_epi16(y1, _mm_unpackhi_epi16(tg, tg));
        __m128i r0 = _mm_adds_epi16(y0, _mm_unpacklo_epi16(tr, tr)), r1 = _mm_adds_epi16(y1, _mm_unpackhi_epi16(tr, tr));
        __m128i B = _mm_packus_epi16(b0, b1), G = _mm_packus_epi16(g0, g1), R = _mm_packus_epi16(r0, r1);
        if (g == NULL) { /* OpenCV's gray: (3735 b + 19235 g + 9798 r + 16384) >> 15 in 32 bits */
            __m128i bl = _mm_unpacklo_epi8(B, zero), bh = _mm_unpackhi_epi8(B, zero);
            __m128i gl = _mm_unpacklo_epi8(G, zero), gh = _mm_unpackhi_epi8(G, zero);
            __m128i rl = _mm_unpacklo_epi8(R, zero), rh = _mm_unpackhi_epi8(R, zero);
            __m128i s[4];
            s[0] = _mm_add_epi32(_mm_madd_epi16(_mm_unpacklo_epi16(bl, gl), wbg), _mm_madd_epi16(_mm_unpacklo_epi16(rl, one), wr1));
            s[1] = _mm_add_epi32(_mm_madd_epi16(_mm_unpackhi_epi16(bl, gl), wbg), _mm_madd_epi16(_mm_unpackhi_epi16(rl, one), wr1));
            s[2] = _mm_add_epi32(_mm_madd_epi16(_mm_unpacklo_epi16(bh, gh), wbg), _mm_madd_epi16(_mm_unpacklo_epi16(rh, one), wr1));
            s[3] = _mm_add_epi32(_mm_madd_epi16(_mm_unpackhi_epi16(bh, gh), wbg), _mm_madd_epi16(_mm_unpackhi_epi16(rh, one), wr1));
            for (int j = 0; j < 4; j++)
                s[j] = _mm_srli_epi32(s[j], 15);
            __m128i lo = _mm_packs_epi32(s[0], s[1]), hi = _mm_packs_epi32(s[2], s[3]);
            _mm_storeu_si128((__m128i *)(b + i), _mm_packus_epi16(lo, hi));
        } else {
            _mm_storeu_si128((__m128i *)(b + i), B);
            _mm_storeu_si128((__m128i *)(g + i), G);
            _mm_storeu_si128((__m128i *)(r + i), R);
        }
    }
    yuv420_planar_scalar(y, u, v, b, g, r, i, n, k);
}
#else
static void yuv420_planar(const uint8_t *y, const uint8_t *u, const uint8_t *v, uint8_t *b, uint8_t *g,
                          uint8_t *r, Py_ssize_t n, yuv_coeffs k) {
    yuv420_planar_scalar(y, u, v, b, g, r, 0, n, k);
}
#endif

CLONES static void interleave3(const uint8_t *restrict b, const uint8_t *restrict g, const uint8_t *restrict r,
                               uint8_t *restrict dst, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++) {
        dst[3 * i] = b[i];
        dst[3 * i + 1] = g[i];
        dst[3 * i + 2] = r[i];
    }
}

/* yuv420_to_bgr(y, u, v, dst, width, height, y_stride, u_stride, v_stride, coeffs, to_gray) */
static PyObject *yuv420_to_bgr(PyObject *self, PyObject *args) {
    Py_buffer yb, ub, vb, db;
    Py_ssize_t w, h, ys, us, vs;
    yuv_coeffs k;
    int to_gray;
    if (!PyArg_ParseTuple(args, "y*y*y*w*nnnnn(iiiiiii)p", &yb, &ub, &vb, &db, &w, &h, &ys, &us, &vs, &k.yoff,
                          &k.ycoef, &k.coff, &k.ub, &k.ug, &k.vg, &k.vr, &to_gray))
        return NULL;
    const char *err = NULL;
    Py_ssize_t per = to_gray ? 1 : 3, ch = (h + 1) / 2;
    if (w <= 0 || h <= 0 || w % 2 || h % 2)
        err = "width and height must be even and positive";
    else if (ys < w || us < w / 2 || vs < w / 2 || yb.len < ys * (h - 1) + w || ub.len < us * (ch - 1) + w / 2 ||
             vb.len < vs * (ch - 1) + w / 2)
        err = "a plane is smaller than width, height and stride say";
    else if (db.len != w * h * per)
        err = "dst does not hold width x height pixels";
    if (err == NULL) {
        Py_BEGIN_ALLOW_THREADS
        const uint8_t *yp = yb.buf, *up = ub.buf, *vp = vb.buf;
        uint8_t *dp = db.buf;
        uint8_t *rows = to_gray ? NULL : PyMem_RawMalloc(3 * (size_t)w);
        if (!to_gray && rows == NULL)
            err = "out of memory";
        for (Py_ssize_t r = 0; err == NULL && r < h; r++) {
            const uint8_t *yr = yp + r * ys, *ur = up + (r / 2) * us, *vr = vp + (r / 2) * vs;
            if (to_gray)
                yuv420_planar(yr, ur, vr, dp + r * w, NULL, NULL, w, k);
            else {
                yuv420_planar(yr, ur, vr, rows, rows + w, rows + 2 * w, w, k);
                interleave3(rows, rows + w, rows + 2 * w, dp + r * w * 3, w);
            }
        }
        PyMem_RawFree(rows);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&yb);
    PyBuffer_Release(&ub);
    PyBuffer_Release(&vb);
    PyBuffer_Release(&db);
    if (err != NULL) {
        PyErr_SetString(PyExc_ValueError, err);
        return NULL;
    }
    Py_RETURN_NONE;
}


/* BGR24 -> YUV 4:2:0, BT.601 limited range (what swscale makes for H.264 input), 15-bit fixed point:
 * Y of each pixel, U and V of each 2x2 block's mean. Within 1 of swscale's values; 0.30 ms a 640x480
 * frame, where swscale's unscaled BGR24 -> YUV420P took 0.85 (a quarter of the CPU writing it took). */
#define RGB2YUV_SHIFT 15
enum { RY = 8414, GY = 16520, BY = 3208, RU = -4857, GU = -9535, BU = 14392, RV = 14392, GV = -12052,
       BV = -2340 };

CLONES static void bgr_rows_to_y(const uint8_t *restrict s, uint8_t *restrict y, Py_ssize_t w) {
    for (Py_ssize_t i = 0; i < w; i++) {
        uint32_t v = s[3 * i] * (uint32_t)BY + s[3 * i + 1] * (uint32_t)GY + s[3 * i + 2] * (uint32_t)RY +
                     (16u << RGB2YUV_SHIFT);
        y[i] = (uint8_t)(v >> RGB2YUV_SHIFT);
    }
}

/* the B, G and R samples of two rows added up, then weighted per pixel, then pixel pairs added: each
 * step a loop the compiler vectorises (one loop over 2x2 blocks took 3x as long as the Y plane) */
CLONES static void add_rows(const uint8_t *restrict s0, const uint8_t *restrict s1, uint16_t *restrict t,
                            Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++)
        t[i] = (uint16_t)(s0[i] + s1[i]);
}

CLONES static void weigh(const uint16_t *restrict t, int32_t *restrict acc, Py_ssize_t w, int32_t cb, int32_t cg,
                         int32_t cr) {
    for (Py_ssize_t i = 0; i < w; i++)
        acc[i] = cb * t[3 * i] + cg * t[3 * i + 1] + cr * t[3 * i + 2];
}

CLONES static void add_pairs(const int32_t *restrict acc, uint8_t *restrict out, Py_ssize_t cw) {
    for (Py_ssize_t i = 0; i < cw; i++)
        out[i] = (uint8_t)((acc[2 * i] + acc[2 * i + 1] + (128 << (RGB2YUV_SHIFT + 2))) >> (RGB2YUV_SHIFT + 2));
}

/* bgr_to_yuv420(src, width, height, src_stride, y, u, v, y_stride, u_stride, v_stride) */
static PyObject *bgr_to_yuv420(PyObject *self, PyObject *args) {
    Py_buffer sb, yb, ub, vb;
    Py_ssize_t w, h, ss, ys, us, vs;
    if (!PyArg_ParseTuple(args, "y*nnnw*w*w*nnn", &sb, &w, &h, &ss, &yb, &ub, &vb, &ys, &us, &vs))
        return NULL;
    const char *err = NULL;
    if (w <= 0 || h <= 0 || w % 2 || h % 2)
        err = "width and height must be even and positive";
    else if (ss < 3 * w || sb.len < ss * (h - 1) + 3 * w)
        err = "src is smaller than width, height and stride say";
    else if (ys < w || us < w / 2 || vs < w / 2 || yb.len < ys * (h - 1) + w || ub.len < us * (h / 2 - 1) + w / 2 ||
             vb.len < vs * (h / 2 - 1) + w / 2)
        err = "a plane is smaller than width, height and stride say";
    if (err == NULL) {
        Py_BEGIN_ALLOW_THREADS
        const uint8_t *sp = sb.buf;
        uint8_t *yp = yb.buf, *up = ub.buf, *vp = vb.buf;
        uint16_t *t = PyMem_RawMalloc(sizeof(uint16_t) * 3 * (size_t)w);
        int32_t *acc = PyMem_RawMalloc(sizeof(int32_t) * (size_t)w);
        if (t == NULL || acc == NULL)
            err = "out of memory";
        for (Py_ssize_t r = 0; err == NULL && r < h; r += 2) {
            const uint8_t *s0 = sp + r * ss, *s1 = s0 + ss;
            bgr_rows_to_y(s0, yp + r * ys, w);
            bgr_rows_to_y(s1, yp + (r + 1) * ys, w);
            add_rows(s0, s1, t, 3 * w);
            weigh(t, acc, w, BU, GU, RU);
            add_pairs(acc, up + (r / 2) * us, w / 2);
            weigh(t, acc, w, BV, GV, RV);
            add_pairs(acc, vp + (r / 2) * vs, w / 2);
        }
        PyMem_RawFree(t);
        PyMem_RawFree(acc);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&sb);
    PyBuffer_Release(&yb);
    PyBuffer_Release(&ub);
    PyBuffer_Release(&vb);
    if (err != NULL) {
        PyErr_SetString(PyExc_ValueError, err);
        return NULL;
    }
    Py_RETURN_NONE;
}


/* Frame memory that is used again: first-touched memory costs more than decoding a frame here (glibc
 * gives a freed frame-sized block back to the kernel, and the next frame faults its pages in again:
 * ~1 ms a 640x480 BGR frame on this VM), so blocks of frames that are freed go to a small cache and the
 * next frame of about the same size takes one. A Block exposes its bytes as a writable buffer; arrays
 * made on it (np.frombuffer) keep it alive. Alloc and free run with the GIL held. */
#define POOL_SLOTS 1024
/* bytes of freed blocks kept; pool_limit() raises it while chunks are decoded ahead: their frames are
 * all held at once, and a cache smaller than that missed 40% of the frames of a 3,000-frame
 * 1280x1024 store read on (593-679 fps; with room for them all 842-919 fps, 2026-12-03) */
static Py_ssize_t pool_max_bytes = (Py_ssize_t)96 << 20;
/* blocks start on a cache line: copies into a destination 16 bytes past one (malloc's header) ran
 * 2-3x slower here (reading a 1.3 MB file: 0.27 ms against 0.10 ms) */
#define BLOCK_ALIGN 64

#if defined(__linux__) && defined(MAP_POPULATE)
/* blocks of a frame or more (glibc maps blocks from 128 KiB anyway) are mapped with their pages
 * faulted in by the kernel at once: 150 fresh 640x480 BGR frames written once, 0.55 -> 0.33 ms a frame;
 * 640x480 gray 0.22 -> 0.11 ms (2026-12-03) */
#define POPULATE_FROM ((size_t)128 << 10)
#endif

static char *aligned_alloc64(size_t n) {
#ifdef _WIN32
    return (char *)_aligned_malloc(n, BLOCK_ALIGN);
#else
#ifdef POPULATE_FROM
    if (n >= POPULATE_FROM) {
        void *m = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        return m == MAP_FAILED ? NULL : (char *)m;
    }
#endif
    void *p = NULL;
    return posix_memalign(&p, BLOCK_ALIGN, n) == 0 ? (char *)p : NULL;
#endif
}

static void aligned_free64(char *p, size_t n) {
#ifdef _WIN32
    (void)n;
    _aligned_free(p);
#else
#ifdef POPULATE_FROM
    if (n >= POPULATE_FROM) {
        munmap(p, n);
        return;
    }
#endif
    (void)n;
    free(p);
#endif
}

typedef struct {
    PyObject_HEAD
    char *buf;
    Py_ssize_t len, cap;
} Block;

static char *pool_buf[POOL_SLOTS];
static Py_ssize_t pool_cap[POOL_SLOTS];
static int pool_n = 0;
static Py_ssize_t pool_bytes = 0;
static long long pool_hits = 0, pool_misses = 0;

/* a freed block is kept in place of the oldest ones kept where there is no room for it: a cache full of
 * blocks of another frame size (another store read before) would otherwise keep out every frame of
 * this one (a 1280x1024 MJPEG store after a 640x480 one: a page fault for every frame) */
static void Block_dealloc(Block *self) {
    if (self->buf != NULL) {
        if (self->cap <= pool_max_bytes) {
            while (pool_n > 0 && (pool_n >= POOL_SLOTS || pool_bytes + self->cap > pool_max_bytes)) {
                aligned_free64(pool_buf[0], (size_t)pool_cap[0]);
                pool_bytes -= pool_cap[0];
                memmove(pool_buf, pool_buf + 1, (size_t)(pool_n - 1) * sizeof(pool_buf[0]));
                memmove(pool_cap, pool_cap + 1, (size_t)(pool_n - 1) * sizeof(pool_cap[0]));
                pool_n--;
            }
            pool_buf[pool_n] = self->buf;
            pool_cap[pool_n++] = self->cap;
            pool_bytes += self->cap;
        } else
            aligned_free64(self->buf, (size_t)self->cap);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Block_getbuffer(Block *self, Py_buffer *view, int flags) {
    return PyBuffer_FillInfo(view, (PyObject *)self, self->buf, self->len, 0, flags);
}

static PyBufferProcs Block_as_buffer = {(getbufferproc)Block_getbuffer, NULL};

static PyTypeObject BlockType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "imgstore._pixels.Block",
    .tp_basicsize = sizeof(Block),
    .tp_dealloc = (destructor)Block_dealloc,
    .tp_as_buffer = &Block_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "frame memory taken from (and given back to) a small cache",
};

/* block(nbytes): a Block of nbytes (uninitialised), from the cache if one of 1x..1.25x that size is there */
static PyObject *block(PyObject *self, PyObject *args) {
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "n", &n))
        return NULL;
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "negative size");
        return NULL;
    }
    Block *b = PyObject_New(Block, &BlockType);
    if (b == NULL)
        return NULL;
    b->buf = NULL;
    b->len = n;
    for (int i = pool_n - 1; i >= 0; i--) {
        if (pool_cap[i] >= n && pool_cap[i] - n <= n / 4) {
            b->buf = pool_buf[i];
            b->cap = pool_cap[i];
            pool_bytes -= pool_cap[i];
            pool_buf[i] = pool_buf[--pool_n];
            pool_cap[i] = pool_cap[pool_n];
            pool_hits++;
            break;
        }
    }
    if (b->buf == NULL) {
        pool_misses++;
        b->cap = n > 0 ? n : 1;
        b->buf = aligned_alloc64((size_t)b->cap);
        if (b->buf == NULL) {
            Py_DECREF(b);
            return PyErr_NoMemory();
        }
    }
    return (PyObject *)b;
}

static PyObject *pool_stats(PyObject *self, PyObject *noargs) {
    return Py_BuildValue("{s:i,s:n,s:L,s:L}", "blocks", pool_n, "bytes", pool_bytes, "hits", pool_hits,
                         "misses", pool_misses);
}

static void pool_trim(Py_ssize_t max_bytes) {
    while (pool_n > 0 && pool_bytes > max_bytes) {
        --pool_n;
        pool_bytes -= pool_cap[pool_n];
        aligned_free64(pool_buf[pool_n], (size_t)pool_cap[pool_n]);
    }
}

static PyObject *pool_clear(PyObject *self, PyObject *noargs) {
    pool_trim(0);
    Py_RETURN_NONE;
}

/* pool_limit(nbytes): keep at most nbytes of freed blocks from now on (fewer at once) */
static PyObject *pool_limit(PyObject *self, PyObject *args) {
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "n", &n))
        return NULL;
    pool_max_bytes = n > 0 ? n : 0;
    pool_trim(pool_max_bytes);
    Py_RETURN_NONE;
}

#ifndef _WIN32
/* A file's bytes mapped copy-on-write: writable, never written back, and without a file descriptor
 * held open (Python's mmap keeps one per mapping, so a few thousand frames held would run out of them).
 * Faulting in page-cache pages costs about what copying them does, so a frame that is read whole costs
 * the same and a frame of which a part is used is cheaper (docs/design/pixels.md). */
typedef struct {
    PyObject_HEAD
    char *buf;
    Py_ssize_t len;
} Mapped;

static void Mapped_dealloc(Mapped *self) {
    if (self->buf != NULL)
        munmap(self->buf, (size_t)self->len);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Mapped_getbuffer(Mapped *self, Py_buffer *view, int flags) {
    return PyBuffer_FillInfo(view, (PyObject *)self, self->buf, self->len, 0, flags);
}

static PyBufferProcs Mapped_as_buffer = {(getbufferproc)Mapped_getbuffer, NULL};

static PyTypeObject MappedType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "imgstore._pixels.Mapped",
    .tp_basicsize = sizeof(Mapped),
    .tp_dealloc = (destructor)Mapped_dealloc,
    .tp_as_buffer = &Mapped_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "a file's bytes mapped copy-on-write",
};

/* map_private(fd, nbytes): the first nbytes (> 0) of open file fd, mapped copy-on-write */
static PyObject *map_private(PyObject *self, PyObject *args) {
    int fd;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "in", &fd, &n))
        return NULL;
    if (n <= 0) {
        PyErr_SetString(PyExc_ValueError, "nothing to map");
        return NULL;
    }
    void *m = mmap(NULL, (size_t)n, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED)
        return PyErr_SetFromErrno(PyExc_OSError);
    Mapped *b = PyObject_New(Mapped, &MappedType);
    if (b == NULL) {
        munmap(m, (size_t)n);
        return NULL;
    }
    b->buf = (char *)m;
    b->len = n;
    return (PyObject *)b;
}
#endif

#ifndef _WIN32
/* pread_rows(fd, head, dst, rows, row_bytes, stride, bottom_up): from offset 0 of open file fd,
 * len(head) bytes into head, then the rows of dst (rows x row_bytes, C-contiguous), file rows stride
 * bytes apart (the bytes between rows are skipped), the file's last row first if bottom_up; one preadv
 * per batch of rows, without the GIL. Returns the bytes placed in head and dst (fewer: the file ended).
 * One copy of a bottom-up BMP's rows, where reading the file and flipping it made two (0.21 against
 * 0.23 ms a 640x480 BGR frame from the page cache, 2026-12-03). */
#ifndef IOV_MAX
#define IOV_MAX 1024
#endif
static PyObject *pread_rows(PyObject *self, PyObject *args) {
    int fd, bottom_up;
    Py_buffer head, dst;
    Py_ssize_t stride, rows, row_bytes;
    if (!PyArg_ParseTuple(args, "iw*w*nnnp", &fd, &head, &dst, &rows, &row_bytes, &stride, &bottom_up))
        return NULL;
    if (rows < 0 || row_bytes <= 0 || stride < row_bytes || stride - row_bytes > 64 ||
        dst.len < rows * row_bytes || !PyBuffer_IsContiguous(&dst, 'C')) {
        PyBuffer_Release(&head);
        PyBuffer_Release(&dst);
        PyErr_SetString(PyExc_ValueError, "pread_rows: rows do not fit the destination");
        return NULL;
    }
    char gap[64];
    Py_ssize_t pad = stride - row_bytes, done = 0, want = head.len + rows * row_bytes;
    off_t at = 0;
    int err = 0;
    struct iovec iov[IOV_MAX];
    Py_BEGIN_ALLOW_THREADS
    Py_ssize_t h = 0, r = 0; /* bytes of head placed, rows placed */
    while (done < want) {
        int n = 0;
        Py_ssize_t row_part = 0; /* bytes of the current row already placed (a short read) */
        if (h < head.len) {
            iov[n].iov_base = (char *)head.buf + h;
            iov[n++].iov_len = (size_t)(head.len - h);
        } else {
            row_part = (done - head.len) - r * row_bytes;
        }
        for (Py_ssize_t k = r; k < rows && n < IOV_MAX - 1; k++) {
            char *row = (char *)dst.buf + (bottom_up ? rows - 1 - k : k) * row_bytes;
            Py_ssize_t skip = k == r ? row_part : 0;
            iov[n].iov_base = row + skip;
            iov[n++].iov_len = (size_t)(row_bytes - skip);
            if (pad && k + 1 < rows) {
                iov[n].iov_base = gap;
                iov[n++].iov_len = (size_t)pad;
            }
        }
        ssize_t got = preadv(fd, iov, n, at);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            err = errno;
            break;
        }
        if (got == 0)
            break; /* end of file */
        at += got;
        /* account for what arrived: head first, then rows and their gaps */
        Py_ssize_t left = got;
        if (h < head.len) {
            Py_ssize_t t = left < head.len - h ? left : head.len - h;
            h += t;
            done += t;
            left -= t;
        }
        while (left > 0 && r < rows) {
            Py_ssize_t part = (done - head.len) - r * row_bytes, need = row_bytes - part;
            Py_ssize_t t = left < need ? left : need;
            done += t;
            left -= t;
            if (t == need) {
                r++;
                if (pad && r < rows) {
                    if (left >= pad) {
                        left -= pad;
                    } else { /* the read ended inside a gap: skip the rest of it next time */
                        at += pad - left;
                        left = 0;
                    }
                }
            }
        }
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&head);
    PyBuffer_Release(&dst);
    if (err) {
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromSsize_t(done);
}
#endif

static PyMethodDef methods[] = {
    {"bgr_to_gray", bgr_to_gray, METH_VARARGS, "bgr_to_gray(src, dst): OpenCV's BGR2GRAY of uint8 pixels"},
    {"rgb_to_gray", rgb_to_gray, METH_VARARGS, "rgb_to_gray(src, dst): the same gray from RGB pixels"},
    {"swap_rb", swap_rb, METH_VARARGS, "swap_rb(src, dst): BGR <-> RGB"},
    {"gray_to_bgr", gray_to_bgr, METH_VARARGS, "gray_to_bgr(src, dst): each gray value in 3 channels"},
    {"yuv420_to_bgr", yuv420_to_bgr, METH_VARARGS,
     "yuv420_to_bgr(y, u, v, dst, w, h, ys, us, vs, coeffs, to_gray): swscale's YUV420P -> BGR24 (or gray)"},
    {"bgr_to_yuv420", bgr_to_yuv420, METH_VARARGS,
     "bgr_to_yuv420(src, w, h, src_stride, y, u, v, ys, us, vs): BT.601 limited-range YUV 4:2:0 of BGR24"},
    {"block", block, METH_VARARGS, "block(nbytes): frame memory from a small cache of freed frames"},
    {"pool_stats", pool_stats, METH_NOARGS, "pool_stats(): blocks and bytes cached, hits and misses"},
    {"pool_clear", pool_clear, METH_NOARGS, "pool_clear(): free the cached blocks"},
    {"pool_limit", pool_limit, METH_VARARGS, "pool_limit(nbytes): cache at most nbytes of freed blocks"},
#ifndef _WIN32
    {"map_private", map_private, METH_VARARGS, "map_private(fd, nbytes): a file's bytes mapped copy-on-write"},
    {"pread_rows", pread_rows, METH_VARARGS,
     "pread_rows(fd, head, dst, rows, row_bytes, stride, bottom_up): a header, then rows, in one preadv"},
#endif
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_pixels", "uint8 pixel loops (see imgstore.color)",
                                    -1, methods};

PyMODINIT_FUNC PyInit__pixels(void) {
    if (PyType_Ready(&BlockType) < 0)
        return NULL;
#ifndef _WIN32
    if (PyType_Ready(&MappedType) < 0)
        return NULL;
#endif
    return PyModule_Create(&module);
}
