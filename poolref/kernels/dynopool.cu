// DynOPool on the GPU: the CUDA twin of poolref/ops/dynopool.py (read that file first).
//
// Same definition (DYNOPOOL.md), same names: along each axis an output line i reads the two query
// lines u(i, a) = (i + 1/4 + a/2) * cell - 1/2, a in {0, 1}, each the blend of the pixels `low` and
// `high` with weights 1 - t and t. The NumPy code gathers whole query rows and columns into a
// (N, C, 2Ho, 2Wo) tensor; here one thread owns one output element (n, c, i, j), computes its four
// query values in registers and keeps their max (or mean): no tensor of query values is ever
// written ("fused").
//
// Coordinates are computed in double, as NumPy does, from the cell sizes the host computed in
// double; values in the input's type T (float or double). Compile with --fmad=false so that every
// product and sum rounds as NumPy's do.
//
// A pixel is read by a query point where its bilinear weight is not zero (blend: a point lying on a
// pixel reads that pixel only), as in the array code; the max of the four points is PyTorch's
// running max (poolref/_running_max.py, rule "torch"), max_pool2d's.
//
// Backward, one thread per output element again:
//   d/dx     the output's gradient goes to its chosen query point (a quarter to each for "avg") and
//            from there to the pixels the point read, with the bilinear weights: a scatter, so the
//            adds are atomic (several outputs share pixels when cells overlap or enlarge).
//   d/dalpha each point adds  g * dq/du * phase_h  (and the v-twin); a warp sums its 32 threads'
//            terms with shuffles and one lane adds the sum to a global double accumulator. The
//            host multiplies by ds/dalpha (the straight-through factor) and adds the size's term.

namespace dynopool {

struct Query {
    int low;        // first pixel read: floor of the clamped coordinate
    int high;       // the next pixel, min(low + 1, length - 1)
    double t;       // weight of `high`; `low` gets 1 - t
    double inside;  // 1 where 0 < u < length - 1 (the slope is not zero), else 0
    double phase;   // i + 1/4 + a/2 = du/dcell
};

__device__ __forceinline__ Query query(int i, int a, int length, double cell) {
    Query q;
    q.phase = i + 0.25 + 0.5 * a;
    const double u = q.phase * cell - 0.5;
    const double clamped = fmin(fmax(u, 0.0), length - 1.0);
    q.low = static_cast<int>(floor(clamped));
    q.high = min(q.low + 1, length - 1);
    q.t = clamped - q.low;
    q.inside = (u > 0.0 && u < length - 1.0) ? 1.0 : 0.0;
    return q;
}

// (1 - t) a + t b, and exactly a where t == 0: a point lying on a pixel reads that pixel only, so a
// NaN or infinity in b is not multiplied by 0 (and -0 stays -0), as in the array code's _gather.
template <typename T>
__device__ __forceinline__ T blend(T a, T b, T t) {
    return t == T(0) ? a : a * (T(1) - t) + b * t;
}

// The row blend at one column: the query row's value there (NumPy's first gather).
template <typename T>
__device__ __forceinline__ T row_blend(const T* plane, int W, const Query& row, int column) {
    return blend(plane[row.low * W + column], plane[row.high * W + column], static_cast<T>(row.t));
}

// Value of one query point: blend the two rows first, then the two columns (NumPy's order).
template <typename T>
__device__ __forceinline__ T query_value(const T* plane, int W, const Query& row, const Query& column) {
    return blend(row_blend(plane, W, row, column.low), row_blend(plane, W, row, column.high), static_cast<T>(column.t));
}

template <typename T>
__device__ __forceinline__ bool is_nan(T v) { return v != v; }

// PyTorch's running max over the four points (poolref/_running_max.py, rule "torch", as max_pool2d):
// a later point is taken when it is greater or NaN, so ties go to the first and the last NaN wins.
template <typename T>
__device__ __forceinline__ int first_max(const T values[4]) {
    int best = 0;
    for (int p = 1; p < 4; ++p) {
        if (values[p] > values[best] || is_nan(values[p])) best = p;
    }
    return best;
}

template <typename T>
__device__ void forward(const T* __restrict__ x, T* __restrict__ y, signed char* __restrict__ choice,
                        int total, int H, int W, int out_h, int out_w, double cell_h, double cell_w,
                        int use_max) {
    const int index = blockIdx.x * blockDim.x + threadIdx.x;
    if (index >= total) return;
    const int j = index % out_w;
    const int i = (index / out_w) % out_h;
    const int plane_index = index / (out_w * out_h);  // n * C + c
    const T* plane = x + static_cast<long long>(plane_index) * H * W;

    T values[4];
    for (int a = 0; a < 2; ++a) {
        const Query row = query(i, a, H, cell_h);
        for (int b = 0; b < 2; ++b) values[a * 2 + b] = query_value(plane, W, row, query(j, b, W, cell_w));
    }
    if (use_max) {
        const int best = first_max(values);
        y[index] = values[best];
        choice[index] = static_cast<signed char>(best);
    } else {
        y[index] = (values[0] + values[1] + values[2] + values[3]) / T(4);  // summed in order, then divided, as the array code
    }
}

__device__ __forceinline__ double warp_sum(double v) {
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
    return v;
}

template <typename T>
__device__ void backward(const T* __restrict__ x, const T* __restrict__ grad_y,
                         const signed char* __restrict__ choice, T* __restrict__ grad_x,
                         double* __restrict__ grad_cell,  // [2]: sums of g * dq/du * phase, per axis
                         int total, int H, int W, int out_h, int out_w, double cell_h, double cell_w,
                         int use_max) {
    const int index = blockIdx.x * blockDim.x + threadIdx.x;
    double cell_terms[2] = {0.0, 0.0};
    if (index < total) {
        const int j = index % out_w;
        const int i = (index / out_w) % out_h;
        const int plane_index = index / (out_w * out_h);
        const long long plane_offset = static_cast<long long>(plane_index) * H * W;
        const T* plane = x + plane_offset;
        T* grad_plane = grad_x + plane_offset;
        const T g = grad_y[index];
        const int chosen = use_max ? choice[index] : -1;
        for (int a = 0; a < 2; ++a) {
            const Query row = query(i, a, H, cell_h);
            const T th = static_cast<T>(row.t);
            for (int b = 0; b < 2; ++b) {
                if (use_max && a * 2 + b != chosen) continue;
                const T g_point = use_max ? g : g / T(4);
                const Query column = query(j, b, W, cell_w);
                const T tw = static_cast<T>(column.t);
                // d/dx: the point's gradient, spread with its bilinear weights onto the pixels it
                // read (a pixel of weight 0 is not read, and gets nothing: no 0 * inf)
                const int rows_read[2] = {row.low, row.high};
                const T row_weights[2] = {T(1) - th, th};
                const int columns_read[2] = {column.low, column.high};
                const T column_weights[2] = {T(1) - tw, tw};
                for (int r = 0; r < 2; ++r) {
                    if (row_weights[r] == T(0)) continue;
                    for (int c = 0; c < 2; ++c) {
                        if (column_weights[c] == T(0)) continue;
                        atomicAdd(grad_plane + rows_read[r] * W + columns_read[c], g_point * (row_weights[r] * column_weights[c]));
                    }
                }
                // d/du: the row slope x[high] - x[low] at each column, blended along the columns
                // (exactly 0, not multiplied by 0, where the row coordinate is clamped)
                const bool row_slides = row.inside != 0.0, column_slides = column.inside != 0.0;
                const T slope_low_column = row_slides ? plane[row.high * W + column.low] - plane[row.low * W + column.low] : T(0);
                const T slope_high_column = row_slides ? plane[row.high * W + column.high] - plane[row.low * W + column.high] : T(0);
                const T d_query_d_u = blend(slope_low_column, slope_high_column, tw);
                // d/dv: the column slope of the row blends (exactly 0 where the column coordinate is clamped)
                const T d_query_d_v = column_slides ? row_blend(plane, W, row, column.high) - row_blend(plane, W, row, column.low) : T(0);
                cell_terms[0] += static_cast<double>(g_point * d_query_d_u) * row.phase;
                cell_terms[1] += static_cast<double>(g_point * d_query_d_v) * column.phase;
            }
        }
    }
    // every thread of the warp takes part in the shuffles, also those past the end (with zeros)
    for (int axis = 0; axis < 2; ++axis) {
        const double warp_total = warp_sum(cell_terms[axis]);
        if ((threadIdx.x & 31) == 0 && warp_total != 0.0) atomicAdd(grad_cell + axis, warp_total);
    }
}

}  // namespace dynopool

// Entry points, one per type (loaded by name from poolref/kernels/__init__.py).
#define DYNOPOOL_ENTRY_POINTS(T, SUFFIX)                                                                       \
    extern "C" __global__ void dynopool_forward_##SUFFIX(                                                      \
        const T* x, T* y, signed char* choice, int total, int H, int W, int out_h, int out_w,                  \
        double cell_h, double cell_w, int use_max) {                                                           \
        dynopool::forward<T>(x, y, choice, total, H, W, out_h, out_w, cell_h, cell_w, use_max);               \
    }                                                                                                          \
    extern "C" __global__ void dynopool_backward_##SUFFIX(                                                     \
        const T* x, const T* grad_y, const signed char* choice, T* grad_x, double* grad_cell, int total,      \
        int H, int W, int out_h, int out_w, double cell_h, double cell_w, int use_max) {                      \
        dynopool::backward<T>(x, grad_y, choice, grad_x, grad_cell, total, H, W, out_h, out_w, cell_h,        \
                              cell_w, use_max);                                                                \
    }

DYNOPOOL_ENTRY_POINTS(float, float32)
DYNOPOOL_ENTRY_POINTS(double, float64)
