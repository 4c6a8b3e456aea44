/* Per-pixel loops of the metrics that NumPy and OpenCV can only do in several passes.
 *
 * Every function takes contiguous buffers (NumPy arrays) that the Python side (cosalbench.metrics.kernels)
 * has allocated and checked; the C side checks each index it follows, so a wrong argument raises
 * ValueError instead of reading or writing outside a buffer. No NumPy C API: only the buffer protocol.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define LANES 4 /* independent partial histograms: repeated levels do not wait on one another's stores */

static int check_size(const Py_buffer *buffer, Py_ssize_t items, Py_ssize_t itemsize, const char *name)
{
    if (buffer->len != items * itemsize) {
        PyErr_Format(PyExc_ValueError, "%s: %zd bytes, expected %zd", name, buffer->len, items * itemsize);
        return -1;
    }
    return 0;
}

/* count_levels_u8(levels, index, n_bins, counts)
 *
 * counts[index[i] * 256 + levels[i]] += 1 for every pixel i (uint8 levels and index, float64 counts).
 */
static PyObject *count_levels_u8(PyObject *self, PyObject *args)
{
    Py_buffer levels, index, counts;
    Py_ssize_t n_bins;
    PyObject *result = NULL;
    uint32_t *lanes = NULL;
    if (!PyArg_ParseTuple(args, "y*y*nw*", &levels, &index, &n_bins, &counts))
        return NULL;
    const Py_ssize_t n = levels.len, table = n_bins * 256;
    if (n_bins < 1 || n_bins > 256 || n > (Py_ssize_t)UINT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "n_bins must be in 1..256, and the image under 2**32 pixels");
        goto done;
    }
    if (check_size(&index, n, 1, "index") || check_size(&counts, table, sizeof(double), "counts"))
        goto done;
    const uint8_t *lv = levels.buf, *ix = index.buf;
    uint8_t worst = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        worst = ix[i] > worst ? ix[i] : worst;
    if (n > 0 && worst >= n_bins) {
        PyErr_Format(PyExc_ValueError, "index holds bin %d, beyond n_bins %zd", worst, n_bins);
        goto done;
    }
    lanes = calloc((size_t)(LANES * table), sizeof(uint32_t));
    if (lanes == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    uint32_t *lane0 = lanes, *lane1 = lanes + table, *lane2 = lanes + 2 * table, *lane3 = lanes + 3 * table;
    Py_ssize_t i = 0;
    for (; i + LANES <= n; i += LANES) {
        lane0[(ix[i] << 8) | lv[i]]++;
        lane1[(ix[i + 1] << 8) | lv[i + 1]]++;
        lane2[(ix[i + 2] << 8) | lv[i + 2]]++;
        lane3[(ix[i + 3] << 8) | lv[i + 3]]++;
    }
    for (; i < n; i++)
        lane0[(ix[i] << 8) | lv[i]]++;
    double *out = counts.buf;
    for (Py_ssize_t j = 0; j < table; j++)
        out[j] = (double)((uint64_t)lane0[j] + lane1[j] + lane2[j] + lane3[j]);
    result = Py_NewRef(Py_None);
done:
    free(lanes);
    PyBuffer_Release(&levels);
    PyBuffer_Release(&index);
    PyBuffer_Release(&counts);
    return result;
}

/* window_sources(mask, near, windows, offsets, sources, fg)
 *
 * The weighted F's windows, filled in: for each window pixel, row by row, sources gets the image index
 * whose error it carries into the filter (int32): itself on the foreground (mask != 0), on the band
 * (near != 0: a foreground pixel within the filter radius) the first offset (int64 rows dy, dx) that
 * lands on the foreground, else -1; fg gets each window's window-local foreground indices (int32), and
 * the windows' fifth column (int64 rows top, left, height, width, n_fg) their count.
 */
static PyObject *window_sources(PyObject *self, PyObject *args)
{
    Py_buffer mask, near, windows, offsets, sources, fg;
    Py_ssize_t height, width;
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "y*y*nnw*y*w*w*", &mask, &near, &height, &width, &windows, &offsets, &sources, &fg))
        return NULL;
    const Py_ssize_t n_windows = windows.len / (Py_ssize_t)(5 * sizeof(int64_t));
    const Py_ssize_t n_offsets = offsets.len / (Py_ssize_t)(2 * sizeof(int64_t));
    const Py_ssize_t n_fg = fg.len / (Py_ssize_t)sizeof(int32_t);
    int64_t *box = windows.buf;
    if (height < 0 || width < 0 || height * width > INT32_MAX || check_size(&mask, height * width, 1, "mask") ||
        check_size(&near, height * width, 1, "near")) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "the image must have under 2**31 pixels");
        goto done;
    }
    Py_ssize_t area = 0;
    for (Py_ssize_t w = 0; w < n_windows; w++) {
        const int64_t top = box[5 * w], left = box[5 * w + 1], rows = box[5 * w + 2], cols = box[5 * w + 3];
        if (top < 0 || left < 0 || rows < 0 || cols < 0 || top + rows > height || left + cols > width) {
            PyErr_Format(PyExc_ValueError, "window %zd outside the image", w);
            goto done;
        }
        area += (Py_ssize_t)(rows * cols);
    }
    if (check_size(&sources, area, sizeof(int32_t), "sources"))
        goto done;
    const uint8_t *m = mask.buf, *reach = near.buf;
    const int64_t *step = offsets.buf;
    int32_t *src = sources.buf, *own = fg.buf;
    Py_ssize_t listed = 0, missing = -1;
    for (Py_ssize_t w = 0; w < n_windows && missing < 0; w++) {
        const Py_ssize_t top = (Py_ssize_t)box[5 * w], left = (Py_ssize_t)box[5 * w + 1];
        const Py_ssize_t rows = (Py_ssize_t)box[5 * w + 2], cols = (Py_ssize_t)box[5 * w + 3];
        Py_ssize_t count = 0;
        for (Py_ssize_t y = top; y < top + rows && missing < 0; y++)
            for (Py_ssize_t x = left; x < left + cols; x++, src++) {
                const Py_ssize_t at = y * width + x;
                *src = -1;
                if (m[at]) {
                    *src = (int32_t)at;
                    if (listed + count >= n_fg) {
                        missing = at;
                        break;
                    }
                    own[listed + count++] = (int32_t)((y - top) * cols + (x - left));
                } else if (reach[at]) {
                    for (Py_ssize_t j = 0; j < n_offsets; j++) {
                        const Py_ssize_t ty = y + step[2 * j], tx = x + step[2 * j + 1];
                        if (ty >= 0 && ty < height && tx >= 0 && tx < width && m[ty * width + tx]) {
                            *src = (int32_t)(ty * width + tx);
                            break;
                        }
                    }
                    if (*src < 0) {
                        missing = at;
                        break;
                    }
                }
            }
        box[5 * w + 4] = count;
        listed += count;
    }
    if (missing >= 0 || listed != n_fg) {
        PyErr_Format(PyExc_ValueError, "pixel %zd: the windows, offsets or foreground count do not match", missing);
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&mask);
    PyBuffer_Release(&near);
    PyBuffer_Release(&windows);
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&sources);
    PyBuffer_Release(&fg);
    return result;
}

/* squared_distances(mask, height, width, out) -> int
 *
 * out[i] (float64, exact integers) = the squared Euclidean distance from pixel i to the nearest pixel
 * with mask != 0 (0 there); returns the largest. Felzenszwalb and Huttenlocher's two passes: the
 * distance to the nearest foreground pixel in the column, then per row the lower envelope of the
 * parabolas (x - x')^2 + g(x')^2, its breakpoints compared by cross-multiplication, without division.
 * The mask must hold a nonzero pixel.
 */
static PyObject *squared_distances(PyObject *self, PyObject *args)
{
    Py_buffer mask, out;
    Py_ssize_t height, width;
    PyObject *result = NULL;
    int32_t *column = NULL, *vertex = NULL;
    int64_t *lifted = NULL;
    if (!PyArg_ParseTuple(args, "y*nnw*", &mask, &height, &width, &out))
        return NULL;
    if (height < 1 || width < 1 || height > INT32_MAX / 4 || width > INT32_MAX / 4 ||
        check_size(&mask, height * width, 1, "mask") || check_size(&out, height * width, sizeof(double), "out")) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "the image must be at least 1x1");
        goto done;
    }
    const int32_t far = (int32_t)(height + width); /* beyond any distance within the image: no foreground */
    const uint8_t *m = mask.buf;
    double *d = out.buf;
    column = malloc(sizeof(int32_t) * (size_t)(height * width));
    vertex = malloc(sizeof(int32_t) * (size_t)width);
    lifted = malloc(sizeof(int64_t) * (size_t)width);
    if (column == NULL || vertex == NULL || lifted == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    int64_t largest = -1;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t x = 0; x < width; x++)
        column[x] = m[x] ? 0 : far;
    for (Py_ssize_t y = 1; y < height; y++)
        for (Py_ssize_t x = 0; x < width; x++) {
            const int32_t above = column[(y - 1) * width + x] + 1;
            column[y * width + x] = m[y * width + x] ? 0 : (above < far ? above : far);
        }
    for (Py_ssize_t y = height - 2; y >= 0; y--)
        for (Py_ssize_t x = 0; x < width; x++) {
            const int32_t below = column[(y + 1) * width + x] + 1;
            int32_t *here = column + y * width + x;
            *here = below < *here ? below : *here;
        }
    for (Py_ssize_t y = 0; y < height && largest >= -1; y++) {
        const int32_t *g = column + y * width;
        Py_ssize_t top = -1; /* the envelope: parabolas vertex[0..top], lifted = g^2 + x^2 */
        for (int32_t q = 0; q < width; q++) {
            if (g[q] >= far)
                continue;
            const int64_t lift = (int64_t)g[q] * g[q] + (int64_t)q * q;
            /* drop the top parabola while the new one overtakes it no later than it overtook the one below */
            while (top >= 1 && (lift - lifted[top]) * (vertex[top] - vertex[top - 1]) <=
                                   (lifted[top] - lifted[top - 1]) * (q - vertex[top]))
                top--;
            vertex[++top] = q;
            lifted[top] = lift;
        }
        if (top < 0) {
            largest = -2; /* no foreground at all */
            break;
        }
        Py_ssize_t k = 0;
        for (int64_t x = 0; x < width; x++) {
            while (k < top && lifted[k + 1] - lifted[k] <= 2 * x * (vertex[k + 1] - vertex[k]))
                k++;
            const int64_t dx = x - vertex[k], dy = g[vertex[k]];
            const int64_t squared = dx * dx + dy * dy;
            d[y * width + x] = (double)squared;
            largest = squared > largest ? squared : largest;
        }
    }
    Py_END_ALLOW_THREADS
    if (largest < 0) {
        PyErr_SetString(PyExc_ValueError, "the mask has no foreground pixel");
        goto done;
    }
    result = PyLong_FromLongLong(largest);
done:
    free(column);
    free(vertex);
    free(lifted);
    PyBuffer_Release(&mask);
    PyBuffer_Release(&out);
    return result;
}

/* lookup_inplace(table, values): values[i] = table[values[i]] for float64 values holding table indices */
static PyObject *lookup_inplace(PyObject *self, PyObject *args)
{
    Py_buffer table, values;
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "y*w*", &table, &values))
        return NULL;
    const Py_ssize_t size = table.len / (Py_ssize_t)sizeof(double), n = values.len / (Py_ssize_t)sizeof(double);
    const double *t = table.buf;
    double *v = values.buf;
    Py_ssize_t beyond = -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!(v[i] >= 0.0 && v[i] < (double)size)) {
            beyond = i;
            break;
        }
        v[i] = t[(Py_ssize_t)v[i]];
    }
    if (beyond >= 0) {
        PyErr_Format(PyExc_ValueError, "entry %zd: not an index of the table", beyond);
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&table);
    PyBuffer_Release(&values);
    return result;
}

#define TAPS 7 /* the weighted F's 7x7 Gaussian */
#define RADIUS (TAPS / 2)

static inline Py_ssize_t level_at(const void *levels, int wide, Py_ssize_t i)
{
    return wide ? ((const uint16_t *)levels)[i] : ((const uint8_t *)levels)[i];
}

/* sum over the image of values[level] * weights: the weighted F's false positives */
static inline double weighted_level_sum(const void *levels, int wide, Py_ssize_t n, const double *values,
                                        const double *weights)
{
    double part[4] = {0.0, 0.0, 0.0, 0.0};
    Py_ssize_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int lane = 0; lane < 4; lane++)
            part[lane] += values[level_at(levels, wide, i + lane)] * weights[i + lane];
    for (; i < n; i++)
        part[0] += values[level_at(levels, wide, i)] * weights[i];
    return (part[0] + part[1]) + (part[2] + part[3]);
}

/* the weighted F's sum of min(E, EA) over one window's foreground. The row pass is kept for the last
 * TAPS rows only (ring), so the scratch (ring, a zero row and the padded error row: (TAPS + 2) * width
 * + 2 * RADIUS doubles) stays in the first-level cache. */
static inline double window_error(const void *levels, int wide, const double *errors, const int32_t *src,
                                  const int32_t *own, Py_ssize_t height, Py_ssize_t width, Py_ssize_t count,
                                  const double *k, double *scratch)
{
    const double k0 = k[0], k1 = k[1], k2 = k[2], k3 = k[3], k4 = k[4], k5 = k[5], k6 = k[6];
    double *ring = scratch, *zero = scratch + TAPS * width, *row = zero + width;
    memset(zero, 0, sizeof(double) * (size_t)width);
    for (Py_ssize_t x = 0; x < RADIUS; x++)
        row[x] = row[RADIUS + width + x] = 0.0;
    double part[2] = {0.0, 0.0}; /* two partial sums: the additions overlap */
    Py_ssize_t next = 0, f = 0;   /* the next row to filter across, the next foreground pixel */
    for (Py_ssize_t y = 0; y < height; y++) {
        for (; next <= y + RADIUS && next < height; next++) {
            const int32_t *from = src + next * width;
            for (Py_ssize_t x = 0; x < width; x++) { /* branch-free: band edges would mispredict */
                const int32_t at = from[x] < 0 ? 0 : from[x];
                row[RADIUS + x] = (double)(from[x] >= 0) * errors[level_at(levels, wide, at)];
            }
            double *out = ring + (next % TAPS) * width;
            /* every sum in tap order (one expression, so the loop over x vectorises) */
            for (Py_ssize_t x = 0; x < width; x++)
                out[x] = k0 * row[x] + k1 * row[x + 1] + k2 * row[x + 2] + k3 * row[x + 3] + k4 * row[x + 4] +
                         k5 * row[x + 5] + k6 * row[x + 6];
        }
        const double *r[TAPS]; /* the filtered rows y - RADIUS .. y + RADIUS, zeros outside the window */
        for (Py_ssize_t t = 0; t < TAPS; t++) {
            const Py_ssize_t at = y - RADIUS + t;
            r[t] = at < 0 || at >= height ? zero : ring + (at % TAPS) * width;
        }
        for (; f < count && own[f] < (y + 1) * width; f++) { /* own: row-major, so row y's come now */
            const Py_ssize_t x = own[f] - y * width;
            const double filtered = k0 * r[0][x] + k1 * r[1][x] + k2 * r[2][x] + k3 * r[3][x] + k4 * r[4][x] +
                                    k5 * r[5][x] + k6 * r[6][x];
            const double error = errors[level_at(levels, wide, src[own[f]])];
            part[f & 1] += filtered < error ? filtered : error;
        }
    }
    return part[0] + part[1];
}

/* weighted_f_terms(levels, itemsize, values, weights, windows, sources, fg, kernel) -> (fp, fg_error)
 *
 * The two sums of the weighted F of one map: fp, the false positives sum(values[level] * weights) over
 * the image (weights: the importance, 0 on the foreground), and fg_error, the sum over the foreground
 * of min(E, EA): E a foreground pixel's error 1 - values[level], EA the error image filtered by the
 * 7-tap separable kernel (zeros outside the image) where each background pixel near the foreground
 * takes the error of its nearest foreground pixel.
 *
 * windows: int64 rows (top, left, height, width, n_fg), disjoint image rectangles that hold every pixel
 * the filter reads at their foreground pixels; sources: int32, per window pixel row by row, the image
 * index whose error it carries (-1: none, error 0); fg: int32, per window, the window-local indices of
 * its foreground pixels, none within the filter radius of a window edge that is not the image's.
 * levels: the map, uint8 (itemsize 1) or uint16 (itemsize 2).
 */
static PyObject *weighted_f_terms(PyObject *self, PyObject *args)
{
    Py_buffer levels, values, weights, windows, sources, fg, kernel;
    Py_ssize_t itemsize;
    PyObject *result = NULL;
    double *scratch = NULL, *errors = NULL;
    if (!PyArg_ParseTuple(args, "y*ny*y*y*y*y*y*", &levels, &itemsize, &values, &weights, &windows, &sources,
                          &fg, &kernel))
        return NULL;
    const Py_ssize_t n_levels = values.len / (Py_ssize_t)sizeof(double);
    const Py_ssize_t n_windows = windows.len / (Py_ssize_t)(5 * sizeof(int64_t));
    const Py_ssize_t n_pixels = itemsize > 0 ? levels.len / itemsize : 0;
    const int wide = itemsize == 2;
    const int64_t *box = windows.buf;
    Py_ssize_t area = 0, n_fg = 0, widest = 0;
    for (Py_ssize_t w = 0; w < n_windows; w++) {
        area += (Py_ssize_t)(box[5 * w + 2] * box[5 * w + 3]);
        n_fg += (Py_ssize_t)box[5 * w + 4];
        widest = box[5 * w + 3] > widest ? (Py_ssize_t)box[5 * w + 3] : widest;
    }
    if ((itemsize != 1 && itemsize != 2) || n_levels != (wide ? 65536 : 256) ||
        check_size(&kernel, TAPS, sizeof(double), "kernel") ||
        check_size(&weights, n_pixels, sizeof(double), "weights") ||
        check_size(&sources, area, sizeof(int32_t), "sources") || check_size(&fg, n_fg, sizeof(int32_t), "fg")) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "levels must be uint8 or uint16, with one value per level");
        goto done;
    }
    /* every index the loops follow, checked once */
    const int32_t *src = sources.buf, *own = fg.buf;
    for (Py_ssize_t j = 0; j < area; j++)
        if (src[j] >= n_pixels) {
            PyErr_SetString(PyExc_ValueError, "a source index outside the image");
            goto done;
        }
    for (Py_ssize_t w = 0, start = 0; w < n_windows; start += (Py_ssize_t)box[5 * w + 4], w++)
        for (Py_ssize_t f = start; f < start + (Py_ssize_t)box[5 * w + 4]; f++)
            if (own[f] < 0 || own[f] >= box[5 * w + 2] * box[5 * w + 3]) {
                PyErr_SetString(PyExc_ValueError, "a foreground index outside its window");
                goto done;
            }
    scratch = malloc(sizeof(double) * (size_t)((TAPS + 2) * widest + 2 * RADIUS));
    errors = malloc(sizeof(double) * (size_t)n_levels);
    if (scratch == NULL || errors == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    const double *value = values.buf;
    for (Py_ssize_t level = 0; level < n_levels; level++)
        errors[level] = 1.0 - value[level];
    double fp, fg_error = 0.0;
    Py_BEGIN_ALLOW_THREADS
    fp = wide ? weighted_level_sum(levels.buf, 1, n_pixels, value, weights.buf)
              : weighted_level_sum(levels.buf, 0, n_pixels, value, weights.buf);
    for (Py_ssize_t w = 0; w < n_windows; w++) {
        const Py_ssize_t height = (Py_ssize_t)box[5 * w + 2], width = (Py_ssize_t)box[5 * w + 3];
        const Py_ssize_t count = (Py_ssize_t)box[5 * w + 4];
        fg_error += wide ? window_error(levels.buf, 1, errors, src, own, height, width, count, kernel.buf, scratch)
                         : window_error(levels.buf, 0, errors, src, own, height, width, count, kernel.buf, scratch);
        src += height * width;
        own += count;
    }
    Py_END_ALLOW_THREADS
    result = Py_BuildValue("(dd)", fp, fg_error);
done:
    free(scratch);
    free(errors);
    PyBuffer_Release(&levels);
    PyBuffer_Release(&values);
    PyBuffer_Release(&weights);
    PyBuffer_Release(&windows);
    PyBuffer_Release(&sources);
    PyBuffer_Release(&fg);
    PyBuffer_Release(&kernel);
    return result;
}

static PyMethodDef methods[] = {
    {"count_levels_u8", count_levels_u8, METH_VARARGS, "Joint (bin, level) counts of 8-bit maps."},
    {"window_sources", window_sources, METH_VARARGS, "The weighted F's window pixels and their sources."},
    {"squared_distances", squared_distances, METH_VARARGS, "Exact squared distances to the nearest nonzero pixel."},
    {"lookup_inplace", lookup_inplace, METH_VARARGS, "values[i] = table[values[i]], in place."},
    {"weighted_f_terms", weighted_f_terms, METH_VARARGS, "The weighted F's false positives and foreground error."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_kernels", "cosalbench's compiled per-pixel loops.", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&module); }
