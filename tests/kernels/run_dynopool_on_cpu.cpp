// Runs poolref/kernels/dynopool.cu on the CPU through cuda_shim.hpp (see test_dynopool_kernel.py).
//
// usage: run_dynopool_on_cpu forward|backward float32|float64 DIR total H W out_h out_w cell_h cell_w use_max
// Reads DIR/x.bin (and DIR/grad_y.bin, DIR/choice.bin for backward); writes DIR/y.bin, DIR/choice.bin
// (forward) or DIR/grad_x.bin, DIR/grad_cell.bin (backward). Arrays are raw, C order.
#include "cuda_shim.hpp"
#include DYNOPOOL_CU

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

template <typename V>
static std::vector<V> read(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::vector<V> values(bytes.size() / sizeof(V));
    std::copy(bytes.begin(), bytes.begin() + values.size() * sizeof(V), reinterpret_cast<char*>(values.data()));
    return values;
}

template <typename V>
static void write(const std::string& path, const std::vector<V>& values) {
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(V));
}

template <typename T, typename Forward, typename Backward>
static int run(const std::string& mode, const std::string& dir, int total, int H, int W, int out_h, int out_w,
               double cell_h, double cell_w, int use_max, Forward forward, Backward backward) {
    const unsigned threads = 256, blocks = (total + threads - 1) / threads;
    std::vector<T> x = read<T>(dir + "/x.bin");
    if (mode == "forward") {
        std::vector<T> y(total);
        std::vector<signed char> choice(total);
        launch(blocks, threads, [&] { forward(x.data(), y.data(), choice.data(), total, H, W, out_h, out_w, cell_h, cell_w, use_max); });
        write(dir + "/y.bin", y);
        write(dir + "/choice.bin", choice);
    } else {
        std::vector<T> grad_y = read<T>(dir + "/grad_y.bin");
        std::vector<signed char> choice = read<signed char>(dir + "/choice.bin");
        std::vector<T> grad_x(x.size(), T(0));
        std::vector<double> grad_cell(2, 0.0);
        launch(blocks, threads, [&] {
            backward(x.data(), grad_y.data(), choice.data(), grad_x.data(), grad_cell.data(), total, H, W, out_h, out_w,
                     cell_h, cell_w, use_max);
        });
        write(dir + "/grad_x.bin", grad_x);
        write(dir + "/grad_cell.bin", grad_cell);
    }
    return 0;
}

int main(int argc, char** argv) {
    if (argc != 12) {
        std::fprintf(stderr, "usage: %s forward|backward float32|float64 DIR total H W out_h out_w cell_h cell_w use_max\n", argv[0]);
        return 2;
    }
    const std::string mode = argv[1], dtype = argv[2], dir = argv[3];
    const int total = std::atoi(argv[4]), H = std::atoi(argv[5]), W = std::atoi(argv[6]);
    const int out_h = std::atoi(argv[7]), out_w = std::atoi(argv[8]);
    const double cell_h = std::strtod(argv[9], nullptr), cell_w = std::strtod(argv[10], nullptr);
    const int use_max = std::atoi(argv[11]);
    if (dtype == "float32")
        return run<float>(mode, dir, total, H, W, out_h, out_w, cell_h, cell_w, use_max, dynopool_forward_float32, dynopool_backward_float32);
    return run<double>(mode, dir, total, H, W, out_h, out_w, cell_h, cell_w, use_max, dynopool_forward_float64, dynopool_backward_float64);
}
