// Just enough of CUDA to compile a .cu kernel unchanged as C++20 and run it on the CPU, for tests.
//
// Loaded by tests/kernels/emulator.py, which compiles `#include "cuda_shim.hpp"`, then the kernel source
// as it is, then one launch wrapper per `extern "C" __global__` function, into a shared library.
//
// What is emulated, and how strictly:
//   * Every CUDA thread of a block is a std::thread (from a pool kept by the library), all of a block's threads run at once (so the
//     warps of a block are concurrent); blocks run one after another within one library, and the
//     emulator can run several copies of the library side by side for blocks that are concurrent too.
//   * Warps are 32 consecutive threads of the block (x fastest, then y, then z), as on the GPU.
//   * __shfl_sync, __shfl_up_sync, __shfl_down_sync, __shfl_xor_sync, __syncwarp, __ballot_sync,
//     __all_sync, __any_sync: full-warp only (mask 0xffffffff, width 32, every lane a real thread:
//     the block's size must be a multiple of 32 for a warp to use them). Each is a barrier of the
//     32 lanes: every lane writes its value, waits for the others, reads. A lane that returns from
//     the kernel, or calls another warp intrinsic, while its warp waits is a fault, reported as an
//     error instead of a hang; so is any state in which no thread can go on (a deadlock).
//   * __syncthreads: a barrier of the whole block, with the same checks (a thread that returns
//     while others wait there is a fault: CUDA allows the barrier only where the whole block
//     reaches it).
//   * atomicAdd on float, double, int, unsigned and unsigned long long: real atomic read-modify-
//     writes (std::atomic_ref). The float32 add flushes subnormal operands and results to zero,
//     keeping the sign, as the GPU's atomic add does whatever the compile options
//     (PTX ISA: "atom.add.f32 ... flushes subnormal inputs and results to sign-preserving zero").
//   * CUDA's launch limits (a block of at most 1024 threads, 1024 x 1024 x 64; a grid of at most
//     (2^31 - 1) x 65535 x 65535; every dimension at least 1), checked before anything runs.
//   * __shared__ variables are static (and the library is compiled with -fno-gnu-unique, so that each
//     copy of it keeps its own, even in template functions): shared by the threads of a block, and reused by the next
//     block (so a kernel that reads shared memory it did not write in this block reads stale values
//     here, and garbage on the GPU; the emulator does not catch that).
// Arithmetic is the host's IEEE arithmetic, subnormals kept (compiled with -ffp-contract=off: no
// fused multiply-adds, like nvcc --fmad=false). Nothing is fast, and it need not be.
#pragma once

#include <algorithm>
#include <atomic>
#include <barrier>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <limits>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)
#define __shared__ static

using std::floor;
using std::fmax;
using std::fmin;
using std::max;
using std::min;

struct uint3 {
    unsigned x, y, z;
};

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};

inline thread_local uint3 threadIdx, blockIdx;
inline thread_local dim3 blockDim, gridDim;
constexpr int warpSize = 32;

namespace poolref_emulator {

// Thrown in a thread whose block has failed (by a fault of its own or of another thread): unwinds it
// quietly. The fault itself is recorded in the Block.
struct Aborted {};

constexpr unsigned FULL_MASK = 0xffffffffu;

// The shared state of the block being run: who has returned, who waits where.
//
// Locks: each warp's shuffle rounds (and its lanes' `exited` flags) have the warp's mutex,
// __syncthreads has its own; no thread holds two at once. Deadlocks are found with one atomic count,
// `stuck`: the threads waiting in a round that has not completed, plus the threads that have
// returned. Only a running thread can complete a round, so when `stuck` reaches the block's size,
// no thread can go on.
struct Block {
    explicit Block(unsigned threads) : threads(threads), warps((threads + 31) / 32), exited(threads, 0), warp(warps) {}

    struct WarpExchange {
        std::mutex mutex;
        std::condition_variable changed;           // the lanes of this warp wait here
        std::atomic<unsigned> arrived{0};          // lanes waiting in the current round
        unsigned long long round = 0;              // completed rounds; values[round & 1] is the current one
        const char* name = nullptr;                // the intrinsic of the current round
        unsigned long long values[2][32] = {};     // the lanes' values, by round parity
    };

    const unsigned threads, warps;
    std::vector<char> exited;  // per thread: returned from the kernel in this block (under its warp's mutex)
    std::vector<WarpExchange> warp;
    std::mutex sync_mutex;
    std::condition_variable sync_changed;  // threads waiting in __syncthreads wait here
    std::atomic<unsigned> sync_arrived{0};
    unsigned long long sync_round = 0;
    std::atomic<unsigned> exited_count{0};  // (changed under sync_mutex)
    std::atomic<unsigned> stuck{0};
    std::atomic<bool> failed{false};  // set once
    std::mutex fault_mutex;
    std::string fault;  // the first fault, read after the launch
    uint3 index{0, 0, 0};

    void next_block(uint3 next) {  // called by one thread while all others wait between blocks
        std::fill(exited.begin(), exited.end(), 0);
        exited_count = 0;
        stuck = 0;
        sync_arrived = 0;
        for (auto& w : warp) w.arrived = 0;
        index = next;
    }

    unsigned lanes_in_warp(unsigned w) const { return std::min(32u, threads - 32 * w); }

    std::string where(unsigned linear) const {
        char text[160];
        std::snprintf(text, sizeof text, "block (%u, %u, %u), thread %u (warp %u, lane %u)", index.x, index.y, index.z,
                      linear, linear / 32, linear % 32);
        return text;
    }

    // Record the first fault, wake everybody, unwind this thread.
    [[noreturn]] void fail(std::unique_lock<std::mutex>& held, const std::string& message) {
        if (held.owns_lock()) held.unlock();
        {
            std::lock_guard<std::mutex> lock(fault_mutex);
            if (!failed) {
                fault = message;
                failed = true;
            }
        }
        // take each mutex once before notifying: a thread that saw `failed` false is waiting by then
        { std::lock_guard<std::mutex> lock(sync_mutex); }
        sync_changed.notify_all();
        for (auto& w : warp) {
            { std::lock_guard<std::mutex> lock(w.mutex); }
            w.changed.notify_all();
        }
        throw Aborted{};
    }

    std::string describe_stuck() const {
        std::string text = std::to_string(sync_arrived.load()) + " thread(s) in __syncthreads()";
        for (unsigned w = 0; w < warps; ++w)
            if (const unsigned n = warp[w].arrived.load())
                text += ", " + std::to_string(n) + " lane(s) of warp " + std::to_string(w) + " in " + warp[w].name;
        return text + ", " + std::to_string(exited_count.load()) + " returned";
    }

    // Wait on `signal` until `done()`, having checked that some thread can still complete the round.
    template <typename Done>
    void wait(std::unique_lock<std::mutex>& lock, std::condition_variable& signal, unsigned linear, Done done) {
        if (stuck.fetch_add(1) + 1 == threads)
            fail(lock, "deadlock at " + where(linear) + ": no thread of the block can go on (" + describe_stuck() + ")");
        signal.wait(lock, [&] { return done() || failed; });
        if (!done()) throw Aborted{};
    }
};

struct Context {
    Block* block = nullptr;
    unsigned linear = 0;  // the thread's number in its block
};

inline thread_local Context context;

inline std::string hex(unsigned value) {
    char text[16];
    std::snprintf(text, sizeof text, "0x%08x", value);
    return text;
}

// One round of a full-warp exchange: every lane hands in `value` and gets all 32 values back.
// `name` is the intrinsic, for the messages.
template <typename T>
void exchange(const char* name, unsigned mask, T value, T (&all)[32]) {
    static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "warp exchange of a value of at most 8 bytes");
    Block& block = *context.block;
    const unsigned linear = context.linear, lane = linear % 32, w = linear / 32;
    auto& round = block.warp[w];
    std::unique_lock<std::mutex> lock(round.mutex);
    if (block.failed) throw Aborted{};
    if (mask != FULL_MASK)
        block.fail(lock, std::string(name) + " with mask " + hex(mask) + " at " + block.where(linear) +
                             ": the emulator runs full-warp intrinsics only (mask 0xffffffff)");
    if (block.lanes_in_warp(w) != 32)
        block.fail(lock, std::string(name) + " at " + block.where(linear) + ": warp " + std::to_string(w) + " has only " +
                             std::to_string(block.lanes_in_warp(w)) +
                             " threads, but the full mask names 32 lanes (make the block size a multiple of 32)");
    for (unsigned other = 32 * w; other < 32 * w + 32; ++other)
        if (block.exited[other])
            block.fail(lock, std::string(name) + " at " + block.where(linear) + ": lane " + std::to_string(other % 32) +
                                 " of this warp has returned from the kernel without calling it; every lane named in "
                                 "the mask must execute it");
    if (round.arrived == 0) {
        round.name = name;
    } else if (std::strcmp(round.name, name) != 0) {
        block.fail(lock, std::string(name) + " at " + block.where(linear) + " while " + std::to_string(round.arrived.load()) +
                             " lane(s) of this warp wait in " + round.name + ": the lanes of a warp must meet in the same intrinsic");
    }
    const unsigned long long my_round = round.round;
    std::memcpy(&round.values[my_round & 1][lane], &value, sizeof(T));
    if (round.arrived + 1 == 32) {
        round.arrived = 0;
        ++round.round;
        block.stuck -= 31;  // the others are released
        round.changed.notify_all();
    } else {
        ++round.arrived;
        block.wait(lock, round.changed, linear, [&] { return round.round != my_round; });
    }
    // the values of my round stay put until every lane has read them: the round after next, which
    // writes the same slots, cannot start before this thread has arrived at the next one
    for (unsigned l = 0; l < 32; ++l) std::memcpy(&all[l], &round.values[my_round & 1][l], sizeof(T));
}

template <typename T>
T shuffle(const char* name, unsigned mask, T value, int width, unsigned source_lane_from(unsigned lane, int), int arg) {
    if (width != 32) {
        std::unique_lock<std::mutex> none;
        context.block->fail(none, std::string(name) + ": the emulator runs full-warp shuffles only (width 32)");
    }
    T all[32];
    exchange(name, mask, value, all);
    const unsigned lane = context.linear % 32, source = source_lane_from(lane, arg);
    return source < 32 ? all[source] : value;
}

inline unsigned source_index(unsigned, int src) { return static_cast<unsigned>(src) % 32; }
inline unsigned source_down(unsigned lane, int delta) { return lane + static_cast<unsigned>(delta); }  // >= 32: own value
inline unsigned source_up(unsigned lane, int delta) { return delta > static_cast<int>(lane) ? 32u : lane - delta; }
inline unsigned source_xor(unsigned lane, int mask) { return lane ^ static_cast<unsigned>(mask); }

inline void syncthreads() {
    Block& block = *context.block;
    const unsigned linear = context.linear;
    std::unique_lock<std::mutex> lock(block.sync_mutex);
    if (block.failed) throw Aborted{};
    if (block.exited_count)
        block.fail(lock, "__syncthreads() at " + block.where(linear) + ": " + std::to_string(block.exited_count.load()) +
                             " thread(s) of the block have returned from the kernel without reaching it");
    const unsigned long long my_round = block.sync_round;
    if (block.sync_arrived + 1 == block.threads) {
        block.sync_arrived = 0;
        ++block.sync_round;
        block.stuck -= block.threads - 1;
        block.sync_changed.notify_all();
        return;
    }
    ++block.sync_arrived;
    block.wait(lock, block.sync_changed, linear, [&] { return block.sync_round != my_round; });
}

// The thread has returned from the kernel: nobody may still be waiting for it.
inline void thread_returns() {
    Block& block = *context.block;
    const unsigned linear = context.linear;
    auto& round = block.warp[linear / 32];
    {
        std::unique_lock<std::mutex> lock(round.mutex);
        if (block.failed) return;
        block.exited[linear] = 1;
        if (round.arrived)
            block.fail(lock, block.where(linear) + " returned from the kernel while " + std::to_string(round.arrived.load()) +
                                 " lane(s) of its warp wait in " + round.name + ": every lane named in the mask must execute it");
    }
    {
        std::unique_lock<std::mutex> lock(block.sync_mutex);
        ++block.exited_count;
        if (block.sync_arrived)
            block.fail(lock, block.where(linear) + " returned from the kernel while " +
                                 std::to_string(block.sync_arrived.load()) +
                                 " thread(s) wait in __syncthreads(): every thread of the block must reach it");
    }
    if (block.stuck.fetch_add(1) + 1 == block.threads && block.exited_count < block.threads) {
        std::unique_lock<std::mutex> none;
        block.fail(none, "deadlock after " + block.where(linear) + " returned: no thread of the block can go on (" +
                             block.describe_stuck() + ")");
    }
}

// The threads that run the emulated threads, made once per library and reused by every launch
// (making 256 threads per launch costs more than the kernels).
class Pool {
public:
    ~Pool() {
        {
            std::lock_guard<std::mutex> lock(mutex);
            stopping = true;
        }
        start.notify_all();
        for (auto& worker : workers) worker.join();
    }

    // job(0), ..., job(count - 1), each on its own thread, all at once; returns when all have returned
    void run(unsigned count, const std::function<void(unsigned)>& job) {
        std::unique_lock<std::mutex> lock(mutex);
        while (workers.size() < count) {
            const unsigned number = static_cast<unsigned>(workers.size());
            workers.emplace_back([this, number] { work(number); });
        }
        current = &job;
        active = remaining = count;
        ++generation;
        start.notify_all();
        done.wait(lock, [&] { return remaining == 0; });
        current = nullptr;
    }

private:
    void work(unsigned number) {
        unsigned long long seen = 0;
        std::unique_lock<std::mutex> lock(mutex);
        for (;;) {
            start.wait(lock, [&] { return stopping || generation != seen; });
            if (stopping) return;
            seen = generation;
            if (number >= active) continue;
            const std::function<void(unsigned)>* job = current;
            lock.unlock();
            (*job)(number);
            lock.lock();
            if (--remaining == 0) done.notify_one();
        }
    }

    std::mutex mutex;
    std::condition_variable start, done;
    std::vector<std::thread> workers;
    const std::function<void(unsigned)>* current = nullptr;
    unsigned active = 0, remaining = 0;
    unsigned long long generation = 0;
    bool stopping = false;
};

inline Pool& pool() {
    static Pool threads;  // one per library (-fno-gnu-unique: one per copy)
    return threads;
}

inline bool subnormal(float v) { return std::fpclassify(v) == FP_SUBNORMAL; }
inline float flush(float v) { return subnormal(v) ? std::copysign(0.0f, v) : v; }

// The launch of one kernel over the blocks first_block, first_block + block_stride, ... (the emulator
// gives each concurrent copy of the library its own share). Returns 0, or 1 with `error` filled.
// (Not a template: one copy of this machinery however many kernels a source has, which keeps the
// compile short.)
inline int launch(const unsigned dims[6], unsigned long long shared_mem, unsigned long long first_block,
                  unsigned long long block_stride, char* error, unsigned long long error_size,
                  const std::function<void()>& kernel) {
    auto refuse = [&](const std::string& message) {
        std::snprintf(error, error_size, "%s", message.c_str());
        return 1;
    };
    const dim3 grid{dims[0], dims[1], dims[2]}, block_shape{dims[3], dims[4], dims[5]};
    const std::string shape = "grid (" + std::to_string(grid.x) + ", " + std::to_string(grid.y) + ", " + std::to_string(grid.z) +
                              "), block (" + std::to_string(block_shape.x) + ", " + std::to_string(block_shape.y) + ", " +
                              std::to_string(block_shape.z) + ")";
    if (!grid.x || !grid.y || !grid.z || !block_shape.x || !block_shape.y || !block_shape.z)
        return refuse("invalid launch configuration " + shape + ": every dimension must be at least 1");
    if (grid.x > 2147483647u || grid.y > 65535u || grid.z > 65535u)
        return refuse("invalid launch configuration " + shape + ": a grid is at most (2^31 - 1) x 65535 x 65535 blocks");
    if (block_shape.x > 1024u || block_shape.y > 1024u || block_shape.z > 64u)
        return refuse("invalid launch configuration " + shape + ": a block is at most 1024 x 1024 x 64 threads");
    const unsigned long long threads = 1ull * block_shape.x * block_shape.y * block_shape.z;
    if (threads > 1024u)
        return refuse("invalid launch configuration " + shape + ": " + std::to_string(threads) + " threads per block, at most 1024");
    if (shared_mem > 48u * 1024u)
        return refuse("invalid launch configuration: " + std::to_string(shared_mem) + " bytes of dynamic shared memory, at most 49152");
    if (shared_mem)
        return refuse("dynamic shared memory (extern __shared__) is not emulated; launch with shared_mem=0");
    const unsigned long long blocks = 1ull * grid.x * grid.y * grid.z;

    Block block(static_cast<unsigned>(threads));
    auto block_index = [&](unsigned long long id) {
        return uint3{static_cast<unsigned>(id % grid.x), static_cast<unsigned>(id / grid.x % grid.y),
                     static_cast<unsigned>(id / grid.x / grid.y)};
    };
    unsigned long long current = first_block;
    block.next_block(block_index(current));
    std::barrier between_blocks(static_cast<std::ptrdiff_t>(threads), [&]() noexcept {
        current += block_stride;
        block.next_block(block_index(current));
    });
    auto run_thread = [&](unsigned linear) {
        context = Context{&block, linear};
        threadIdx = uint3{linear % block_shape.x, linear / block_shape.x % block_shape.y, linear / block_shape.x / block_shape.y};
        blockDim = block_shape;
        gridDim = grid;
        for (unsigned long long id = first_block; id < blocks; id += block_stride) {
            blockIdx = block_index(id);
            if (!block.failed) {
                try {
                    kernel();
                    thread_returns();
                } catch (const Aborted&) {
                } catch (const std::exception& e) {
                    std::unique_lock<std::mutex> none;
                    try {
                        block.fail(none, block.where(linear) + ": C++ exception " + e.what());
                    } catch (const Aborted&) {
                    }
                }
            }
            between_blocks.arrive_and_wait();  // everything written before is seen by the next block
            if (block.failed) break;
        }
    };
    pool().run(static_cast<unsigned>(threads), std::function<void(unsigned)>(run_thread));
    if (block.failed) return refuse(block.fault);
    return 0;
}

// ---- signatures: a code per kernel parameter, checked by the emulator against what it is handed ----
template <typename T>
constexpr const char* scalar_code() {
    using U = std::remove_cv_t<T>;
    if constexpr (std::is_same_v<U, void>) return "v";
    else if constexpr (std::is_same_v<U, bool>) return "b1";
    else if constexpr (std::is_floating_point_v<U>) return sizeof(U) == 4 ? "f4" : sizeof(U) == 8 ? "f8" : "f?";
    else if constexpr (std::is_integral_v<U> && std::is_signed_v<U>)
        return sizeof(U) == 1 ? "i1" : sizeof(U) == 2 ? "i2" : sizeof(U) == 4 ? "i4" : "i8";
    else if constexpr (std::is_integral_v<U>)
        return sizeof(U) == 1 ? "u1" : sizeof(U) == 2 ? "u2" : sizeof(U) == 4 ? "u4" : "u8";
    else return "?";
}

template <typename P>
std::string parameter_code() {
    if constexpr (std::is_pointer_v<P>) {
        using Pointee = std::remove_pointer_t<P>;
        return std::string("p") + (std::is_const_v<Pointee> ? "c" : "") + ":" + scalar_code<Pointee>();
    } else {
        return scalar_code<P>();
    }
}

template <typename... P>
const char* signature(void (*)(P...)) {
    static const std::string text = [] {
        std::string codes;
        ((codes += parameter_code<P>() + ","), ...);
        return codes;
    }();
    return text.c_str();
}

// Call `kernel` with the arguments CUDA-style: args[i] points at the value of parameter i.
template <typename... P, std::size_t... I>
void call(void (*kernel)(P...), void** args, std::index_sequence<I...>) {
    kernel(*static_cast<std::remove_cv_t<P>*>(args[I])...);
}

template <typename... P>
void call(void (*kernel)(P...), void** args) {
    call(kernel, args, std::index_sequence_for<P...>{});
}

}  // namespace poolref_emulator

// ---- the CUDA built-ins ----
inline void __syncthreads() { poolref_emulator::syncthreads(); }

inline void __syncwarp(unsigned mask = 0xffffffffu) {
    int all[32];
    poolref_emulator::exchange("__syncwarp", mask, 0, all);
}

template <typename T>
T __shfl_sync(unsigned mask, T value, int source_lane, int width = 32) {
    return poolref_emulator::shuffle("__shfl_sync", mask, value, width, poolref_emulator::source_index, source_lane);
}

template <typename T>
T __shfl_down_sync(unsigned mask, T value, unsigned delta, int width = 32) {
    return poolref_emulator::shuffle("__shfl_down_sync", mask, value, width, poolref_emulator::source_down, static_cast<int>(delta));
}

template <typename T>
T __shfl_up_sync(unsigned mask, T value, unsigned delta, int width = 32) {
    return poolref_emulator::shuffle("__shfl_up_sync", mask, value, width, poolref_emulator::source_up, static_cast<int>(delta));
}

template <typename T>
T __shfl_xor_sync(unsigned mask, T value, int lane_mask, int width = 32) {
    return poolref_emulator::shuffle("__shfl_xor_sync", mask, value, width, poolref_emulator::source_xor, lane_mask);
}

inline unsigned __ballot_sync(unsigned mask, int predicate) {
    int all[32];
    poolref_emulator::exchange("__ballot_sync", mask, predicate, all);
    unsigned bits = 0;
    for (unsigned lane = 0; lane < 32; ++lane) bits |= (all[lane] != 0 ? 1u : 0u) << lane;
    return bits;
}

inline int __all_sync(unsigned mask, int predicate) { return __ballot_sync(mask, predicate) == 0xffffffffu; }
inline int __any_sync(unsigned mask, int predicate) { return __ballot_sync(mask, predicate) != 0u; }

template <typename T>
inline T __ldg(const T* address) { return *address; }

inline float atomicAdd(float* address, float value) {
    // the GPU's float32 atomic add flushes subnormal operands and results to sign-preserving zero
    std::atomic_ref<float> target(*address);
    float old = target.load();
    while (!target.compare_exchange_weak(old, poolref_emulator::flush(poolref_emulator::flush(old) + poolref_emulator::flush(value)))) {
    }
    return old;
}

inline double atomicAdd(double* address, double value) { return std::atomic_ref<double>(*address).fetch_add(value); }
inline int atomicAdd(int* address, int value) { return std::atomic_ref<int>(*address).fetch_add(value); }
inline unsigned atomicAdd(unsigned* address, unsigned value) { return std::atomic_ref<unsigned>(*address).fetch_add(value); }
inline unsigned long long atomicAdd(unsigned long long* address, unsigned long long value) {
    return std::atomic_ref<unsigned long long>(*address).fetch_add(value);
}
