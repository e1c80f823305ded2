// Just enough of CUDA to compile a .cu kernel unchanged as C++20 and run it on the CPU, for tests.
//
// Each CUDA thread is a std::thread; a block's threads run together, so that the 32 lanes of a warp
// can meet at __shfl_down_sync (every lane writes its value, waits for the others at a barrier,
// reads its partner's, and waits again before the next shuffle). atomicAdd is a real atomic add.
// Nothing is fast, and it need not be: the tests launch a few blocks on small inputs.
#pragma once

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cmath>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__

using std::floor;
using std::fmax;
using std::fmin;
using std::min;

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};

inline thread_local dim3 threadIdx, blockIdx;
inline dim3 blockDim;

template <typename T>
inline T atomicAdd(T* address, T value) {
    return std::atomic_ref<T>(*address).fetch_add(value);
}

struct Warp {
    std::barrier<> meet{32};
    double lanes[32];
};

inline thread_local Warp* current_warp = nullptr;

inline double __shfl_down_sync(unsigned /*mask: every lane takes part*/, double value, int offset) {
    Warp& warp = *current_warp;
    const int lane = static_cast<int>(threadIdx.x & 31);
    warp.lanes[lane] = value;
    warp.meet.arrive_and_wait();
    const double received = lane + offset < 32 ? warp.lanes[lane + offset] : value;
    warp.meet.arrive_and_wait();  // nobody writes the next value before every lane has read this one
    return received;
}

// kernel<<<blocks, threads>>>(...): `kernel` is a callable taking no arguments
template <typename Kernel>
void launch(unsigned blocks, unsigned threads, Kernel kernel) {
    blockDim.x = threads;
    for (unsigned block = 0; block < blocks; ++block) {
        std::vector<Warp> warps((threads + 31) / 32);
        std::vector<std::thread> running;
        for (unsigned thread = 0; thread < threads; ++thread) {
            running.emplace_back([&, block, thread] {
                blockIdx.x = block;
                threadIdx.x = thread;
                current_warp = &warps[thread / 32];
                kernel();
            });
        }
        for (auto& t : running) t.join();
    }
}
