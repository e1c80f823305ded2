// DynOPool on the GPU: the CUDA twin of poolref/ops/dynopool.py (read that file first).
//
// Same definition (docs/dynopool.rst, "The definition"), same names. Along each axis an output
// line i reads two query lines q = 2i + a, a in {0, 1}; query line q blends the pixels low[q] and
// high[q] with weights 1 - t[q] and t[q]. The host computes these per-axis tables once (QueryAxis
// in ops/dynopool.py, the very arrays the array code uses; t already rounded to the input's type T)
// and hands them to the kernels: no coordinate is computed here, so there is nothing to round
// differently.
//
// Three kernels, each one thread per element, nothing shared between threads but the alpha sums:
//   forward    one thread per output y[n, c, i, j]: the four query values in registers, their max
//              (or mean); no tensor of query values is formed ("fused").
//   grad_x     one thread per input pixel x[n, c, k, l]: a GATHER. The pixel's gradient is the sum,
//              over the query lines that read row k and the query lines that read column l, of the
//              point gradient times the two weights. The host's `readers` tables list, per pixel,
//              the lines that read it, in the order the array code's scatter-add adds them, so the
//              sum is rounded exactly as NumPy's. No atomics, no clearing of grad_x beforehand.
//   grad_cell  one thread per output again (grid-stride): the terms g * dq/du * phase of the alpha
//              gradient, summed in double per warp (shuffles), then per block (shared memory), and
//              added to the two accumulators with one atomic per block and axis.
//
// Compile with --fmad=false (no fused multiply-adds) and -ftz=false (keep float32 subnormals), so
// that every product and sum rounds as NumPy's do, subnormals included; poolref/kernels/__init__.py
// calls NVRTC itself for that, since CuPy's RawModule appends -ftz=true to the caller's options.
//
// A pixel is read by a query point where its bilinear weight is not zero (a point lying on a pixel
// reads that pixel only), as in the array code; the max of the four points is PyTorch's running max
// (poolref/_running_max.py, rule "torch"), max_pool2d's.

namespace dynopool {

// One query line of one axis, read from the host's tables.
template <typename T>
struct Line {
    int low;   // first pixel read
    int high;  // the next pixel, min(low + 1, length - 1)
    T t;       // weight of `high` (as the array code rounds it to T); `low` gets 1 - t
};

template <typename T>
__device__ __forceinline__ Line<T> line(const int* low, const int* high, const T* t, int q) {
    return Line<T>{low[q], high[q], t[q]};
}

// (1 - t) a + t b, and exactly a where t == 0: a point lying on a pixel reads that pixel only, so a
// NaN or infinity in b is not multiplied by 0 (and -0 stays -0), as in the array code's _gather.
template <typename T>
__device__ __forceinline__ T blend(T a, T b, T t) {
    return t == T(0) ? a : a * (T(1) - t) + b * t;
}

// The row blend at one column: the query row's value there (the array code's first gather).
template <typename T>
__device__ __forceinline__ T row_blend(const T* plane, int W, const Line<T>& row, int column) {
    const T a = plane[row.low * W + column];
    return row.t == T(0) ? a : blend(a, plane[row.high * W + column], row.t);
}

// Value of one query point: blend the two rows first, then the two columns (the array code's order).
template <typename T>
__device__ __forceinline__ T query_value(const T* plane, int W, const Line<T>& row, const Line<T>& column) {
    const T a = row_blend(plane, W, row, column.low);
    return column.t == T(0) ? a : blend(a, row_blend(plane, W, row, column.high), column.t);
}

template <typename T>
__device__ __forceinline__ bool is_nan(T v) { return v != v; }

// PyTorch's running max over the four points (poolref/_running_max.py, rule "torch", as max_pool2d):
// a later point is taken when it is greater or NaN, so ties go to the first and the last NaN wins.
// Returns the winner's number; `best_value` gets its value (kept in a register, not read back from
// values[best], which would put the array in local memory).
template <typename T>
__device__ __forceinline__ int first_max(const T values[4], T& best_value) {
    int best = 0;
    best_value = values[0];
    for (int p = 1; p < 4; ++p) {
        if (values[p] > best_value || is_nan(values[p])) {
            best = p;
            best_value = values[p];
        }
    }
    return best;
}

// y[n, c, i, j] (and the chosen point a*2 + b for "max"), one thread per output element.
template <typename T>
__device__ void forward(const T* __restrict__ x, T* __restrict__ y, signed char* __restrict__ choice,
                        const int* __restrict__ row_low, const int* __restrict__ row_high, const T* __restrict__ row_t,
                        const int* __restrict__ column_low, const int* __restrict__ column_high,
                        const T* __restrict__ column_t, int total, int H, int W, int out_h, int out_w, int use_max) {
    const int index = blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= total) return;
    const int output_row = index / out_w;  // n * C * out_h + c * out_h + i
    const int j = index - output_row * out_w;
    const int plane_index = output_row / out_h;  // n * C + c
    const int i = output_row - plane_index * out_h;
    const T* plane = x + static_cast<long long>(plane_index) * H * W;

    T values[4];  // point a*2 + b
    for (int a = 0; a < 2; ++a) {
        const Line<T> row = line(row_low, row_high, row_t, 2 * i + a);
        for (int b = 0; b < 2; ++b)
            values[a * 2 + b] = query_value(plane, W, row, line(column_low, column_high, column_t, 2 * j + b));
    }
    if (use_max) {
        T best_value;
        const int best = first_max(values, best_value);
        y[index] = best_value;
        choice[index] = static_cast<signed char>(best);
    } else {
        y[index] = (((values[0] + values[1]) + values[2]) + values[3]) / T(4);  // summed in order, then divided, as the array code
    }
}

// The gradient of query point (a, b) of output (i, j) (at flat output index `o`): all of g for the
// chosen point and +0 for the others ("max"), or g / 4 each ("avg"), as the array code's grad_query.
template <typename T>
__device__ __forceinline__ T point_gradient(const T* grad_y, const signed char* choice, int o, int point, int use_max) {
    if (use_max) return choice[o] == point ? grad_y[o] : T(0);
    return grad_y[o] / T(4);
}

// grad_x[n, c, k, l], one thread per input pixel: the transpose of the two gathers, as a gather.
//
// The array code scatters along the columns first (A[q_row, l] = sum over the column lines that read l
// of G[q_row, q_col] * weight), then along the rows (grad_x[k, l] = sum over the row lines that read k
// of A[q_row, l] * weight), each sum starting from +0 and adding in the order of its scatter-add: the
// lines that read the pixel as `low` in line order, then those that read it as `high`. The readers
// tables (readers_start[k] .. readers_start[k + 1] - 1 for pixel k) are in that order, so the sums
// below are NumPy's, operation for operation.
template <typename T>
__device__ void grad_x(const T* __restrict__ grad_y, const signed char* __restrict__ choice, T* __restrict__ grad_x,
                       const int* __restrict__ row_readers_start, const int* __restrict__ row_reader_line,
                       const T* __restrict__ row_reader_weight, const int* __restrict__ column_readers_start,
                       const int* __restrict__ column_reader_line, const T* __restrict__ column_reader_weight,
                       int total, int H, int W, int out_h, int out_w, int use_max) {
    const int index = blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= total) return;
    const int pixel_row = index / W;  // n * C * H + c * H + k
    const int l = index - pixel_row * W;
    const int plane_index = pixel_row / H;
    const int k = pixel_row - plane_index * H;
    const int out_plane = plane_index * out_h * out_w;

    T gradient = T(0);
    for (int e = row_readers_start[k]; e < row_readers_start[k + 1]; ++e) {
        const int q_row = row_reader_line[e], i = q_row >> 1, a = q_row & 1;
        T along_columns = T(0);  // A[q_row, l]
        for (int f = column_readers_start[l]; f < column_readers_start[l + 1]; ++f) {
            const int q_column = column_reader_line[f], j = q_column >> 1, b = q_column & 1;
            const T g = point_gradient(grad_y, choice, out_plane + i * out_w + j, a * 2 + b, use_max);
            along_columns += g * column_reader_weight[f];
        }
        gradient += along_columns * row_reader_weight[e];
    }
    grad_x[index] = gradient;
}

__device__ __forceinline__ double warp_sum(double v) {
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
    return v;
}

// grad_cell[0] += sum over the points with a gradient of g * dq/du * phase_row (grad_cell[1]: the
// column twin), summed in double: the host turns these into the alpha gradient (times ds/dalpha).
// Grid-stride over the outputs, so that a grid of a fixed number of blocks covers any size; every
// thread of every block takes part in the sums (with zeros where it has no output), so the block
// size must be a multiple of 32 (a whole number of warps).
template <typename T>
__device__ void grad_cell(const T* __restrict__ x, const T* __restrict__ grad_y, const signed char* __restrict__ choice,
                          double* __restrict__ grad_cell,  // [2]: the two sums, added to
                          const int* __restrict__ row_low, const int* __restrict__ row_high, const T* __restrict__ row_t,
                          const signed char* __restrict__ row_inside, const double* __restrict__ row_phase,
                          const int* __restrict__ column_low, const int* __restrict__ column_high,
                          const T* __restrict__ column_t, const signed char* __restrict__ column_inside,
                          const double* __restrict__ column_phase, int total, int H, int W, int out_h, int out_w,
                          int use_max) {
    double cell_terms[2] = {0.0, 0.0};
    const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;  // long long: index + stride may pass 2^31
    for (long long next = blockIdx.x * blockDim.x + threadIdx.x; next < total; next += stride) {
        const int index = static_cast<int>(next);
        const int output_row = index / out_w;
        const int j = index - output_row * out_w;
        const int plane_index = output_row / out_h;
        const int i = output_row - plane_index * out_h;
        const T* plane = x + static_cast<long long>(plane_index) * H * W;
        const T g = grad_y[index];
        const int chosen = use_max ? choice[index] : -1;
        for (int a = 0; a < 2; ++a) {
            const int q_row = 2 * i + a;
            const Line<T> row = line(row_low, row_high, row_t, q_row);
            for (int b = 0; b < 2; ++b) {
                if (use_max && a * 2 + b != chosen) continue;  // the others get no gradient: no 0 * NaN
                const T g_point = use_max ? g : g / T(4);
                const int q_column = 2 * j + b;
                const Line<T> column = line(column_low, column_high, column_t, q_column);
                // d/du: the row slope x[high] - x[low] at each column read, blended along the columns
                // (exactly 0, not multiplied by 0, where the row coordinate is clamped)
                T d_query_d_u = T(0);
                if (row_inside[q_row]) {
                    const T slope_low = plane[row.high * W + column.low] - plane[row.low * W + column.low];
                    d_query_d_u = column.t == T(0)
                        ? slope_low
                        : blend(slope_low, plane[row.high * W + column.high] - plane[row.low * W + column.high], column.t);
                }
                // d/dv: the column slope of the row blends (exactly 0 where the column coordinate is clamped)
                const T d_query_d_v = column_inside[q_column]
                    ? row_blend(plane, W, row, column.high) - row_blend(plane, W, row, column.low) : T(0);
                cell_terms[0] += static_cast<double>(g_point * d_query_d_u) * row_phase[q_row];
                cell_terms[1] += static_cast<double>(g_point * d_query_d_v) * column_phase[q_column];
            }
        }
    }
    // per warp (shuffles), then per block (the warps' sums in shared memory), then one atomic per axis
    __shared__ double warp_totals[2][32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    for (int axis = 0; axis < 2; ++axis) {
        const double warp_total = warp_sum(cell_terms[axis]);
        if (lane == 0) warp_totals[axis][warp] = warp_total;
    }
    __syncthreads();
    if (warp == 0) {
        for (int axis = 0; axis < 2; ++axis) {
            const double block_total = warp_sum(lane < warps ? warp_totals[axis][lane] : 0.0);
            if (lane == 0 && block_total != 0.0) atomicAdd(grad_cell + axis, block_total);
        }
    }
}

}  // namespace dynopool

// Entry points, one per type (loaded by name from poolref/kernels/__init__.py).
#define DYNOPOOL_ENTRY_POINTS(T, SUFFIX)                                                                          \
    extern "C" __global__ void dynopool_forward_##SUFFIX(                                                         \
        const T* x, T* y, signed char* choice, const int* row_low, const int* row_high, const T* row_t,           \
        const int* column_low, const int* column_high, const T* column_t, int total, int H, int W, int out_h,    \
        int out_w, int use_max) {                                                                                 \
        dynopool::forward<T>(x, y, choice, row_low, row_high, row_t, column_low, column_high, column_t, total, H,  \
                             W, out_h, out_w, use_max);                                                           \
    }                                                                                                             \
    extern "C" __global__ void dynopool_grad_x_##SUFFIX(                                                          \
        const T* grad_y, const signed char* choice, T* grad_x, const int* row_readers_start,                      \
        const int* row_reader_line, const T* row_reader_weight, const int* column_readers_start,                  \
        const int* column_reader_line, const T* column_reader_weight, int total, int H, int W, int out_h,         \
        int out_w, int use_max) {                                                                                 \
        dynopool::grad_x<T>(grad_y, choice, grad_x, row_readers_start, row_reader_line, row_reader_weight,         \
                            column_readers_start, column_reader_line, column_reader_weight, total, H, W, out_h,    \
                            out_w, use_max);                                                                      \
    }                                                                                                             \
    extern "C" __global__ void dynopool_grad_cell_##SUFFIX(                                                       \
        const T* x, const T* grad_y, const signed char* choice, double* grad_cell, const int* row_low,            \
        const int* row_high, const T* row_t, const signed char* row_inside, const double* row_phase,              \
        const int* column_low, const int* column_high, const T* column_t, const signed char* column_inside,      \
        const double* column_phase, int total, int H, int W, int out_h, int out_w, int use_max) {                \
        dynopool::grad_cell<T>(x, grad_y, choice, grad_cell, row_low, row_high, row_t, row_inside, row_phase,      \
                               column_low, column_high, column_t, column_inside, column_phase, total, H, W, out_h, \
                               out_w, use_max);                                                                   \
    }

DYNOPOOL_ENTRY_POINTS(float, float32)
DYNOPOOL_ENTRY_POINTS(double, float64)
