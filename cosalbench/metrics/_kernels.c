/* Per-pixel loops of the metrics that NumPy and OpenCV can only do in several passes.
 *
 * Every function takes contiguous buffers (NumPy arrays) that its callers (cosalbench.metrics.histogram and
 * cosalbench.metrics.weighted_f) allocate; each checks the sizes and every index it follows, so a wrong
 * argument raises ValueError instead of reading or writing outside a buffer. No NumPy C API: only the
 * buffer protocol.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define TAPS 7 /* the weighted F's 7x7 Gaussian */
#define RADIUS (TAPS / 2)
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

/* window_sources(mask, near, windows, offsets, sources, fg, spans)
 *
 * The weighted F's windows, filled in: for each window pixel, row by row, sources gets the image index
 * whose error it carries into the filter (int32): itself on the foreground (mask != 0), on the band
 * (near != 0: a foreground pixel within the filter radius) the first offset (int64 rows dy, dx) that
 * lands on the foreground, else -1; fg gets each window's window-local foreground indices (int32), and
 * the windows' fifth column (int64 rows top, left, height, width, n_fg) their count; spans (int32, two
 * per window row, window by window) the columns [lo, hi) of the window's foreground in the rows within
 * the filter radius of that row: the only columns where its row pass is read.
 */
static PyObject *window_sources(PyObject *self, PyObject *args)
{
    Py_buffer mask, near, windows, offsets, sources, fg, spans;
    Py_ssize_t height, width;
    PyObject *result = NULL;
    int32_t *own_spans = NULL;
    if (!PyArg_ParseTuple(args, "y*y*nnw*y*w*w*w*", &mask, &near, &height, &width, &windows, &offsets, &sources,
                          &fg, &spans))
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
    Py_ssize_t area = 0, all_rows = 0;
    for (Py_ssize_t w = 0; w < n_windows; w++) {
        const int64_t top = box[5 * w], left = box[5 * w + 1], rows = box[5 * w + 2], cols = box[5 * w + 3];
        if (top < 0 || left < 0 || rows < 0 || cols < 0 || top + rows > height || left + cols > width) {
            PyErr_Format(PyExc_ValueError, "window %zd outside the image", w);
            goto done;
        }
        area += (Py_ssize_t)(rows * cols);
        all_rows += (Py_ssize_t)rows;
    }
    if (check_size(&sources, area, sizeof(int32_t), "sources") ||
        check_size(&spans, 2 * all_rows, sizeof(int32_t), "spans"))
        goto done;
    int32_t *span = spans.buf;
    own_spans = malloc(sizeof(int32_t) * (size_t)(2 * height + 1));
    if (own_spans == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    const uint8_t *m = mask.buf, *reach = near.buf;
    const int64_t *step = offsets.buf;
    int32_t *src = sources.buf, *own = fg.buf;
    Py_ssize_t listed = 0, missing = -1;
    for (Py_ssize_t w = 0; w < n_windows && missing < 0; w++) {
        const Py_ssize_t top = (Py_ssize_t)box[5 * w], left = (Py_ssize_t)box[5 * w + 1];
        const Py_ssize_t rows = (Py_ssize_t)box[5 * w + 2], cols = (Py_ssize_t)box[5 * w + 3];
        Py_ssize_t count = 0;
        for (Py_ssize_t y = 0; y < rows; y++) /* first each row's own foreground columns */
            span[2 * y] = (int32_t)cols, span[2 * y + 1] = 0;
        for (Py_ssize_t y = top; y < top + rows && missing < 0; y++)
            for (Py_ssize_t x = left; x < left + cols; x++, src++) {
                const Py_ssize_t at = y * width + x;
                *src = -1;
                if (m[at]) {
                    int32_t *own_span = span + 2 * (y - top);
                    own_span[0] = own_span[0] < x - left ? own_span[0] : (int32_t)(x - left);
                    own_span[1] = (int32_t)(x - left + 1); /* x grows along the row */
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
        /* then the union over the rows within the filter radius */
        memcpy(own_spans, span, sizeof(int32_t) * (size_t)(2 * rows));
        for (Py_ssize_t y = 0; y < rows; y++) {
            int32_t lo = (int32_t)cols, hi = 0;
            for (Py_ssize_t t = y - RADIUS; t <= y + RADIUS; t++)
                if (t >= 0 && t < rows) {
                    lo = own_spans[2 * t] < lo ? own_spans[2 * t] : lo;
                    hi = own_spans[2 * t + 1] > hi ? own_spans[2 * t + 1] : hi;
                }
            span[2 * y] = lo < hi ? lo : 0;
            span[2 * y + 1] = lo < hi ? hi : 0;
        }
        span += 2 * rows;
    }
    if (missing >= 0 || listed != n_fg) {
        PyErr_Format(PyExc_ValueError, "pixel %zd: the windows, offsets or foreground count do not match", missing);
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    free(own_spans);
    PyBuffer_Release(&spans);
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
    int64_t largest = 0;
    int no_foreground = 0;
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
    for (Py_ssize_t y = 0; y < height && !no_foreground; y++) {
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
        if (top < 0) { /* a row sees the foreground of every column that has any: none at all */
            no_foreground = 1;
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
    if (no_foreground) {
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


static inline Py_ssize_t level_at(const void *levels, int wide, Py_ssize_t i)
{
    return wide ? ((const uint16_t *)levels)[i] : ((const uint8_t *)levels)[i];
}

#define TILE 4096 /* pixels per tile of the false-positive sums: the weights' tile stays in cache */

/* fp[m] = sum over the image of values[m][level_m] * weights, for the maps of one GT: the weights are
 * read once per tile for all of them. Each map's sum runs over four lanes (pixel index mod 4), the last
 * pixels beyond a multiple of 4 into lane 0, so it does not depend on how many maps come together. */
static void weighted_level_sums(const Py_buffer *maps, Py_ssize_t n_maps, int wide, Py_ssize_t n,
                                const double *values, Py_ssize_t n_levels, const double *weights, double *part,
                                double *fp)
{
    memset(part, 0, sizeof(double) * (size_t)(4 * n_maps));
    for (Py_ssize_t start = 0; start < n; start += TILE) {
        const Py_ssize_t end = start + TILE < n ? start + TILE : n;
        for (Py_ssize_t m = 0; m < n_maps; m++) {
            const void *levels = maps[m].buf;
            const double *value = values + m * n_levels;
            double *lane = part + 4 * m;
            Py_ssize_t i = start;
            for (; i + 4 <= end; i += 4)
                for (int l = 0; l < 4; l++)
                    lane[l] += value[level_at(levels, wide, i + l)] * weights[i + l];
            for (; i < end; i++)
                lane[0] += value[level_at(levels, wide, i)] * weights[i];
        }
    }
    for (Py_ssize_t m = 0; m < n_maps; m++)
        fp[m] = (part[4 * m] + part[4 * m + 1]) + (part[4 * m + 2] + part[4 * m + 3]);
}

/* the weighted F's sum of min(E, EA) over one window's foreground. The row pass is kept for the last
 * TAPS rows only (ring), so the scratch (ring, a zero row and the padded error row: (TAPS + 2) * width
 * + 2 * RADIUS doubles) stays in the first-level cache. */
static inline double window_error(const void *levels, int wide, const double *errors, const int32_t *src,
                                  const int32_t *own, const int32_t *span, Py_ssize_t height, Py_ssize_t width,
                                  Py_ssize_t count, const double *k, double *scratch)
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
            /* only the columns the column pass reads (span), from the errors within the radius of them */
            const Py_ssize_t lo = span[2 * next], hi = span[2 * next + 1];
            const Py_ssize_t first = lo - RADIUS > 0 ? lo - RADIUS : 0;
            const Py_ssize_t last = hi + RADIUS < width ? hi + RADIUS : width;
            const int32_t *from = src + next * width;
            for (Py_ssize_t x = first; x < last; x++) { /* branch-free: band edges would mispredict */
                const int32_t at = from[x] < 0 ? 0 : from[x];
                row[RADIUS + x] = (double)(from[x] >= 0) * errors[level_at(levels, wide, at)];
            }
            double *out = ring + (next % TAPS) * width;
            /* every sum in tap order (one expression, so the loop over x vectorises) */
            for (Py_ssize_t x = lo; x < hi; x++)
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

/* weighted_f_terms(maps, itemsize, values, weights, windows, sources, fg, spans, kernel, out)
 *
 * The two sums of the weighted F of each map of one GT, into out (float64, per map: fp, fg_error): fp,
 * the false positives sum(values[m][level] * weights) over the image (weights: the importance, 0 on
 * the foreground), and fg_error, the sum over the foreground of min(E, EA): E a foreground pixel's
 * error 1 - values[m][level], EA the error image filtered by the 7-tap separable kernel (zeros outside
 * the image) where each background pixel near the foreground takes the error of its nearest
 * foreground pixel.
 *
 * maps: a sequence of contiguous level maps, all uint8 (itemsize 1) or all uint16 (itemsize 2);
 * values: float64, one row of per-level values per map; windows: int64 rows (top, left, height, width,
 * n_fg), disjoint image rectangles that hold every pixel the filter reads at their foreground pixels;
 * sources: int32, per window pixel row by row, the image index whose error it carries (-1: none,
 * error 0); fg: int32, per window, the window-local indices of its foreground pixels, row-major, none
 * within the filter radius of a window edge that is not the image's; spans: int32, per window row, the
 * columns [lo, hi) of the foreground within the filter radius (window_sources).
 */
static PyObject *weighted_f_terms(PyObject *self, PyObject *args)
{
    Py_buffer values, weights, windows, sources, fg, spans, kernel, out;
    PyObject *maps_obj, *sequence = NULL, *result = NULL;
    Py_buffer *maps = NULL;
    Py_ssize_t itemsize, n_maps = 0, acquired = 0;
    double *scratch = NULL, *errors = NULL, *part = NULL;
    if (!PyArg_ParseTuple(args, "Ony*y*y*y*y*y*y*w*", &maps_obj, &itemsize, &values, &weights, &windows, &sources,
                          &fg, &spans, &kernel, &out))
        return NULL;
    const int wide = itemsize == 2;
    const Py_ssize_t n_levels = wide ? 65536 : 256, n_pixels = weights.len / (Py_ssize_t)sizeof(double);
    const Py_ssize_t n_windows = windows.len / (Py_ssize_t)(5 * sizeof(int64_t));
    const int64_t *box = windows.buf;
    sequence = PySequence_Fast(maps_obj, "maps must be a sequence of arrays");
    if (sequence == NULL)
        goto done;
    n_maps = PySequence_Fast_GET_SIZE(sequence);
    maps = calloc((size_t)(n_maps > 0 ? n_maps : 1), sizeof(Py_buffer));
    if (maps == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (; acquired < n_maps; acquired++) {
        if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(sequence, acquired), &maps[acquired], PyBUF_SIMPLE) < 0)
            goto done;
        if (check_size(&maps[acquired], n_pixels, itemsize, "map")) {
            acquired++;
            goto done;
        }
    }
    Py_ssize_t area = 0, n_fg = 0, widest = 0, all_rows = 0;
    for (Py_ssize_t w = 0; w < n_windows; w++) {
        area += (Py_ssize_t)(box[5 * w + 2] * box[5 * w + 3]);
        all_rows += (Py_ssize_t)box[5 * w + 2];
        n_fg += (Py_ssize_t)box[5 * w + 4];
        widest = box[5 * w + 3] > widest ? (Py_ssize_t)box[5 * w + 3] : widest;
    }
    if ((itemsize != 1 && itemsize != 2) || check_size(&values, n_maps * n_levels, sizeof(double), "values") ||
        check_size(&kernel, TAPS, sizeof(double), "kernel") || check_size(&out, 2 * n_maps, sizeof(double), "out") ||
        check_size(&sources, area, sizeof(int32_t), "sources") || check_size(&fg, n_fg, sizeof(int32_t), "fg") ||
        check_size(&spans, 2 * all_rows, sizeof(int32_t), "spans")) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "levels must be uint8 or uint16");
        goto done;
    }
    /* every index the loops follow, checked once */
    const int32_t *src = sources.buf, *own = fg.buf;
    for (Py_ssize_t j = 0; j < area; j++)
        if (src[j] >= n_pixels) {
            PyErr_SetString(PyExc_ValueError, "a source index outside the image");
            goto done;
        }
    const int32_t *span = spans.buf;
    for (Py_ssize_t w = 0, start = 0, row0 = 0; w < n_windows; start += (Py_ssize_t)box[5 * w + 4], row0 += box[5 * w + 2], w++) {
        const Py_ssize_t width = (Py_ssize_t)box[5 * w + 3];
        for (Py_ssize_t f = start; f < start + (Py_ssize_t)box[5 * w + 4]; f++)
            if (own[f] < 0 || own[f] >= box[5 * w + 2] * width || (f > start && own[f] <= own[f - 1])) {
                PyErr_SetString(PyExc_ValueError, "a foreground index outside its window or out of order");
                goto done;
            }
        for (Py_ssize_t y = row0; y < row0 + box[5 * w + 2]; y++)
            if (span[2 * y] < 0 || span[2 * y] > span[2 * y + 1] || span[2 * y + 1] > width) {
                PyErr_SetString(PyExc_ValueError, "a row span outside its window");
                goto done;
            }
    }
    scratch = malloc(sizeof(double) * (size_t)((TAPS + 2) * widest + 2 * RADIUS));
    errors = malloc(sizeof(double) * (size_t)(n_maps * n_levels + 1));
    part = malloc(sizeof(double) * (size_t)(5 * n_maps + 1)); /* four lanes per map, then its fp */
    if (scratch == NULL || errors == NULL || part == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    const double *value = values.buf;
    for (Py_ssize_t j = 0; j < n_maps * n_levels; j++)
        errors[j] = 1.0 - value[j];
    double *sums = out.buf, *fps = part + 4 * n_maps;
    Py_BEGIN_ALLOW_THREADS
    weighted_level_sums(maps, n_maps, wide, n_pixels, value, n_levels, weights.buf, part, fps);
    for (Py_ssize_t m = 0; m < n_maps; m++) {
        const int32_t *from = src, *listed = own, *rows = span;
        const double *error = errors + m * n_levels;
        double fg_error = 0.0;
        for (Py_ssize_t w = 0; w < n_windows; w++) {
            const Py_ssize_t height = (Py_ssize_t)box[5 * w + 2], width = (Py_ssize_t)box[5 * w + 3];
            const Py_ssize_t count = (Py_ssize_t)box[5 * w + 4];
            fg_error += wide ? window_error(maps[m].buf, 1, error, from, listed, rows, height, width, count, kernel.buf, scratch)
                             : window_error(maps[m].buf, 0, error, from, listed, rows, height, width, count, kernel.buf, scratch);
            from += height * width;
            listed += count;
            rows += 2 * height;
        }
        sums[2 * m] = fps[m];
        sums[2 * m + 1] = fg_error;
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    for (Py_ssize_t m = 0; m < acquired; m++)
        PyBuffer_Release(&maps[m]);
    free(maps);
    Py_XDECREF(sequence);
    free(scratch);
    free(errors);
    free(part);
    PyBuffer_Release(&values);
    PyBuffer_Release(&weights);
    PyBuffer_Release(&windows);
    PyBuffer_Release(&sources);
    PyBuffer_Release(&fg);
    PyBuffer_Release(&spans);
    PyBuffer_Release(&kernel);
    PyBuffer_Release(&out);
    return result;
}

static PyMethodDef methods[] = {
    {"count_levels_u8", count_levels_u8, METH_VARARGS, "Joint (bin, level) counts of 8-bit maps."},
    {"window_sources", window_sources, METH_VARARGS, "The weighted F's window pixels and their sources."},
    {"squared_distances", squared_distances, METH_VARARGS, "Exact squared distances to the nearest nonzero pixel."},
    {"lookup_inplace", lookup_inplace, METH_VARARGS, "values[i] = table[values[i]], in place."},
    {"weighted_f_terms", weighted_f_terms, METH_VARARGS, "The weighted F's false positives and foreground error of each map of one GT."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_kernels", "cosalbench's compiled per-pixel loops.", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__kernels(void) { return PyModule_Create(&module); }
