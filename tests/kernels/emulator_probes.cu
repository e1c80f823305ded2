// Small kernels that test the emulator itself (test_emulator.py): that it runs CUDA's rules, and
// catches the kernels that break them instead of hanging. Valid CUDA: nvcc compiles this file too.

__device__ __forceinline__ double warp_sum(double v) {
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
    return v;
}

// Every thread writes where it is: threadIdx, blockIdx, blockDim, gridDim (12 unsigned per thread).
extern "C" __global__ void where_am_i(unsigned* out) {
    const unsigned block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    const unsigned thread = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    unsigned* mine = out + 12 * (block * blockDim.x * blockDim.y * blockDim.z + thread);
    const unsigned values[12] = {threadIdx.x, threadIdx.y, threadIdx.z, blockIdx.x, blockIdx.y, blockIdx.z,
                                 blockDim.x,  blockDim.y,  blockDim.z,  gridDim.x,  gridDim.y,  gridDim.z};
    for (int k = 0; k < 12; ++k) mine[k] = values[k];
}

// out[t] = the value thread t gets from a shuffle of in[] (kind 0: __shfl_sync, 1: up, 2: down, 3: xor).
extern "C" __global__ void shuffles(const double* in, double* out, int kind, int argument) {
    const int t = blockIdx.x * blockDim.x + threadIdx.x;
    const double v = in[t];
    double r = v;
    if (kind == 0) r = __shfl_sync(0xffffffffu, v, argument);
    if (kind == 1) r = __shfl_up_sync(0xffffffffu, v, argument);
    if (kind == 2) r = __shfl_down_sync(0xffffffffu, v, argument);
    if (kind == 3) r = __shfl_xor_sync(0xffffffffu, v, argument);
    out[t] = r;
}

// Warp sums of in[], written by lane 0; lane `skipping_lane` returns first (a bug, unless it is -1).
extern "C" __global__ void lane_skips_shuffle(const double* in, double* out, int skipping_lane) {
    const int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (static_cast<int>(threadIdx.x % 32) == skipping_lane) return;
    const double total = warp_sum(in[t]);
    if (threadIdx.x % 32 == 0) out[t / 32] = total;
}

// Thread `skipping_thread` returns before the block's barrier (a bug, unless it is -1).
extern "C" __global__ void thread_skips_syncthreads(int* out, int skipping_thread) {
    __shared__ int seen[1024];
    if (static_cast<int>(threadIdx.x) == skipping_thread) return;
    seen[threadIdx.x] = 1;
    __syncthreads();
    out[threadIdx.x] = seen[(threadIdx.x + 1) % blockDim.x];
}

// Half of each warp calls __shfl_xor_sync, the other half __shfl_down_sync (a bug).
extern "C" __global__ void lanes_in_different_shuffles(double* out) {
    double v = threadIdx.x;
    if (threadIdx.x % 32 < 16) v = __shfl_xor_sync(0xffffffffu, v, 1);
    else v = __shfl_down_sync(0xffffffffu, v, 1);
    out[threadIdx.x] = v;
}

// Lanes 0-15 of warp 0 wait in __syncthreads while lanes 16-31 wait in a shuffle: nobody can go on.
extern "C" __global__ void deadlock(double* out) {
    double v = threadIdx.x;
    if (threadIdx.x < 16) {
        __syncthreads();
        v = __shfl_xor_sync(0xffffffffu, v, 1);
    } else {
        v = __shfl_xor_sync(0xffffffffu, v, 1);
        __syncthreads();
    }
    out[threadIdx.x] = v;
}

// A shuffle with a partial mask (the emulator runs full-warp intrinsics only).
extern "C" __global__ void partial_mask(double* out) {
    out[threadIdx.x] = __shfl_xor_sync(0x0000ffffu, 1.0, 1);
}

// Every thread adds 1 to each counter, atomically (a plain += would lose counts when threads race).
extern "C" __global__ void count_atomically(double* total, float* total32, unsigned long long* count, int* icount) {
    for (int k = 0; k < 8; ++k) {
        atomicAdd(total, 1.0);
        atomicAdd(total32, 1.0f);
        atomicAdd(count, 1ull);
        atomicAdd(icount, 1);
    }
}

// target[0] += value[0], atomically (the GPU flushes float32 subnormals here).
extern "C" __global__ void add_float_atomically(float* target, const float* value) {
    if (threadIdx.x == 0) atomicAdd(target, value[0]);
}

// The sum of in[0..n) per block: warp sums, then the warps' sums in shared memory, one atomic per block.
extern "C" __global__ void block_sum(const double* in, double* out, int n) {
    __shared__ double warp_totals[32];
    const int t = blockIdx.x * blockDim.x + threadIdx.x;
    const double total = warp_sum(t < n ? in[t] : 0.0);
    if (threadIdx.x % 32 == 0) warp_totals[threadIdx.x / 32] = total;
    __syncthreads();
    if (threadIdx.x < 32) {
        const double block_total = warp_sum(threadIdx.x < blockDim.x / 32 ? warp_totals[threadIdx.x] : 0.0);
        if (threadIdx.x == 0) atomicAdd(out, block_total);
    }
}

// Parameters of every type the emulator passes; writes them back as doubles.
extern "C" __global__ void every_type(double* out, const float* f, float a, double b, int c, unsigned d, long long e,
                                      signed char g, unsigned char h, unsigned long long i) {
    if (threadIdx.x == 0) {
        out[0] = f[0]; out[1] = a; out[2] = b; out[3] = c; out[4] = d; out[5] = static_cast<double>(e);
        out[6] = g; out[7] = h; out[8] = static_cast<double>(i);
    }
}
